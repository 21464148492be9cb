"""Helpers shared by the simulator tests: HTTPS clients that verify the
simulator's CA, real msal clients, the documented example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import msal
import requests

from mde_simulator import Simulator

SEED_PAGE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "get-alert-related-files.en.md"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "documented_example.json"


class PinnedSession(requests.Session):
    """A session whose CA file cannot be overridden by REQUESTS_CA_BUNDLE /
    CURL_CA_BUNDLE (requests lets them win over ``Session.verify`` whenever a
    call passes no ``verify``, which is what msal does)."""

    def __init__(self, ca_bundle: Path) -> None:
        super().__init__()
        self.verify = str(ca_bundle)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self.verify
        kwargs.setdefault("timeout", 10)
        return super().request(method, url, *args, **kwargs)


def documented_response() -> dict[str, Any]:
    """Microsoft's documented example response, parsed from the seed page
    (its "..." placeholder line removed); the test fixture copy otherwise."""
    if SEED_PAGE.exists():
        text = SEED_PAGE.read_text(encoding="utf-8")
        block = re.search(r"```json\n(.*?)```", text, re.S)
        assert block, "the seed page has no JSON example"
        lines = [line for line in block.group(1).splitlines() if line.strip() != "..."]
        return json.loads("\n".join(lines))
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def msal_app(sim: Simulator, credential: Any, client_id: str | None = None) -> msal.ConfidentialClientApplication:
    """A real msal confidential client against the simulator's authority."""
    return msal.ConfidentialClientApplication(
        client_id or sim.client_id,
        client_credential=credential,
        authority=sim.authority_url,
        instance_discovery=False,
        verify=str(sim.ca_bundle),
        http_client=PinnedSession(sim.ca_bundle),
    )


def acquire(sim: Simulator, credential: Any, client_id: str | None = None) -> dict[str, Any]:
    """msal's token result (a dict with access_token, or error)."""
    return msal_app(sim, credential, client_id).acquire_token_for_client([sim.token_scope])


class Api:
    """Authenticated GETs against one simulator over one keep-alive session."""

    def __init__(self, sim: Simulator, token: str) -> None:
        self.sim = sim
        self.token = token
        self.session = PinnedSession(sim.ca_bundle)

    def get(self, path: str, params: dict[str, Any] | None = None, token: str | None = None,
            **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{self.sim.api_base_url}{path}"
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.session.get(url, params=params, headers=headers, **kwargs)
