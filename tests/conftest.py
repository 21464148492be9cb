"""Shared fixtures: the simulator on loopback, recorded-HTTP plumbing, helpers.

Recorded tests (``@pytest.mark.vcr``) replay cassettes under
``tests/cassettes/<module>/<test>.yaml``. They were recorded from the simulator:

    pytest tests/test_recorded.py --record-mode=rewrite

While recording, every simulator URL (``https://127.0.0.1:<port>``) is
rewritten to the stable ``https://mde-simulator.test`` in requests and
responses, and secrets are scrubbed before anything is written: the
Authorization header, ``client_secret``/``client_assertion`` form fields and
access tokens in token responses. ``tests/test_cassettes_scrubbed.py`` fails
the build if a cassette still holds any of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import settings

# No per-example deadline: on a loaded 2-core CI machine a slow example is
# not a failure. Under CI the examples are derandomized, so a run is
# repeatable; locally every run explores new ones.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

FIXTURES = Path(__file__).parent / "fixtures"
CANONICAL_BASE = "https://mde-simulator.test"
# Five characters: short enough that no secret-shaped pattern (>= 6) matches it.
SCRUBBED = "SCRUB"
SCRUBBED_TOKEN = "scrubbed-access-token"


def documented_example() -> dict[str, Any]:
    """Microsoft's documented example response for GET /api/alerts/{id}/files."""
    return json.loads((FIXTURES / "documented_example.json").read_text(encoding="utf-8"))


# -- the live simulator --------------------------------------------------------


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One simulator on loopback for the session (default options)."""
    from mde_simulator import Simulator

    with Simulator(tmp_path_factory.mktemp("simulator")) as sim:
        yield sim


@pytest.fixture
def fresh_simulator(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Factory for a simulator with custom options, stopped after the test."""
    from mde_simulator import Simulator, SimulatorOptions

    started: list[Any] = []

    def make(**options: Any) -> Any:
        sim = Simulator(tmp_path / f"sim{len(started)}", SimulatorOptions(**options)).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def make_config(values: dict[str, Any], state_dir: Path) -> Any:
    """A resolved Config from plain values, its state in ``state_dir``."""
    from connector.config import resolve

    return resolve({**values, "state_dir": str(state_dir)})


@pytest.fixture
def sim_config(simulator: Any, tmp_path: Path) -> Any:
    """A Config for the session simulator with a fresh state directory."""
    return make_config(simulator.connector_config(), tmp_path / "state")


class NoSleep:
    """An injected sleep that records what it was asked to wait, and a clock
    that advances by it, so retry tests never sleep."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def no_sleep() -> NoSleep:
    return NoSleep()


def make_context(config: Any, *, sleeper: NoSleep | None = None, store: bool = True, **client_kwargs: Any) -> Any:
    """An ActionContext whose client uses the injected sleep/clock."""
    from connector.actions import ActionContext
    from connector.http.client import DefenderClient
    from connector.runtime.store import Store

    if sleeper is not None:
        client_kwargs.setdefault("sleep", sleeper.sleep)
        client_kwargs.setdefault("clock", sleeper.clock)

    def factory(cfg: Any) -> Any:
        return DefenderClient.from_config(cfg, **client_kwargs)

    return ActionContext(config=config, store=Store.open(config.state_dir) if store else None,
                         client_factory=factory)


# -- recorded HTTP ---------------------------------------------------------------

_live_bases: list[str] = []


def _canonical(text: str) -> str:
    for base in _live_bases:
        text = text.replace(base, CANONICAL_BASE)
    # A configured secret a server echoed back (in an error message, say) is
    # scrubbed wherever it appears, not only in the fields known to hold one.
    from connector.errors import _registered_secrets

    for secret in _registered_secrets:
        text = text.replace(secret, SCRUBBED)
    return text


def _scrub_request(request: Any) -> Any:
    request.uri = _canonical(request.uri)
    body = request.body
    if body:
        raw = body.decode() if isinstance(body, bytes) else body
        if "client_secret=" in raw or "client_assertion=" in raw:
            pairs = [(k, SCRUBBED if k in {"client_secret", "client_assertion"} else v)
                     for k, v in parse_qsl(raw, keep_blank_values=True)]
            raw = urlencode(pairs)
        request.body = _canonical(raw).encode()
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("body", {}).get("string")
    if body:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        text = _canonical(text)
        if '"access_token"' in text:
            try:
                data = json.loads(text)
                data["access_token"] = SCRUBBED_TOKEN
                text = json.dumps(data)
            except ValueError:
                text = re.sub(r'"access_token"\s*:\s*"[^"]*"', f'"access_token": "{SCRUBBED_TOKEN}"', text)
        response["body"]["string"] = text.encode("utf-8")
    headers = response.get("headers", {})
    for key in list(headers):
        if key.lower() in {"set-cookie", "date"}:
            headers.pop(key)
        else:
            headers[key] = [_canonical(v) for v in headers[key]]
    return response


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "filter_headers": ["authorization", "cookie", "client-request-id", "x-client-current-telemetry",
                           "x-client-last-telemetry"],
        "before_record_request": _scrub_request,
        "before_record_response": _scrub_response,
        "decode_compressed_response": True,
        "match_on": ["method", "scheme", "host", "port", "path", "query"],
    }


class Recorded:
    """What a recorded test talks to: the live simulator while recording, the
    canonical URLs while replaying (``sim`` is None then)."""

    def __init__(self, sim: Any, state_dir: Path) -> None:
        self.sim = sim
        self.state_dir = state_dir

    @property
    def recording(self) -> bool:
        return self.sim is not None

    def config(self, **overrides: Any) -> Any:
        if self.sim is not None:
            values = self.sim.connector_config()
        else:
            tenant, client = _recording_identity()
            values = {
                "tenant_id": tenant,
                "client_id": client,
                "client_secret": "replayed-secret-never-sent",
                "api_base_url": CANONICAL_BASE,
                "authority_url": f"{CANONICAL_BASE}/{tenant}",
            }
        values.update(overrides)
        return make_config(values, self.state_dir)

    def script(self, *responses: Any) -> None:
        """Queue simulator faults; a no-op when replaying (the cassette has them)."""
        if self.sim is not None:
            self.sim.script(*responses)


def _recording_identity() -> tuple[str, str]:
    """Tenant and client id the default-seed simulator had when recording."""
    from mde_simulator import seeded_identity

    return seeded_identity(7)


@pytest.fixture
def recorded(request: pytest.FixtureRequest, record_mode: str, tmp_path: Path) -> Iterator[Recorded]:
    """The endpoint of a ``@pytest.mark.vcr`` test. ``@pytest.mark.sim(**options)``
    sets SimulatorOptions used while recording."""
    if record_mode == "none":
        yield Recorded(None, tmp_path / "state")
        return
    from mde_simulator import Simulator, SimulatorOptions

    marker = request.node.get_closest_marker("sim")
    sim = Simulator(tmp_path / "sim", SimulatorOptions(**(marker.kwargs if marker else {}))).start()
    _live_bases.append(sim.base_url)
    try:
        yield Recorded(sim, tmp_path / "state")
    finally:
        _live_bases.remove(sim.base_url)
        sim.stop()
        shutil.rmtree(tmp_path / "sim", ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim(**options): SimulatorOptions for a recorded test while recording")
