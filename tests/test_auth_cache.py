"""Cached tokens are read without msal, exactly as msal would serve them.

``connector.http.cached_token.find_cached_token`` reads msal's persisted cache;
msal stays the only writer. These tests check its rules (match, five-minute
margin, refresh_on), hold its answers to msal's own on the same caches, and
check that a new process with a valid cached token neither imports msal nor
sends anything to Entra ID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connector.http.cached_token import EXPIRY_MARGIN_SECONDS, find_cached_token
from tests.conftest import make_config

CLIENT = "11111111-1111-1111-1111-111111111111"
TENANT = "00000000-0000-0000-0000-000000000000"
AUTHORITY = f"https://login.example.test:8443/{TENANT}"
SCOPE = "https://api.securitycenter.microsoft.com/.default"
NOW = 1_800_000_000.0


def entry(secret: str, *, expires_in: float = 3600, **fields: Any) -> dict[str, Any]:
    base = {
        "credential_type": "AccessToken", "secret": secret, "home_account_id": None,
        "environment": "login.example.test", "client_id": CLIENT, "target": SCOPE, "realm": TENANT,
        "token_type": "Bearer", "cached_at": str(int(NOW)), "expires_on": str(int(NOW + expires_in)),
        "extended_expires_on": str(int(NOW + expires_in)),
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def key(e: dict[str, Any]) -> str:
    return "-".join(["", e["environment"], "AccessToken", e["client_id"], e["realm"], e["target"]]).lower()


def cache(*entries: dict[str, Any], keys: list[str] | None = None) -> str:
    names = keys or [key(e) + ("" if i == 0 else f"-{i}") for i, e in enumerate(entries)]
    return json.dumps({"AccessToken": dict(zip(names, entries, strict=True)), "AppMetadata": {}})


def find(text: str, **overrides: Any) -> str | None:
    args = {"client_id": CLIENT, "authority_url": AUTHORITY, "scope": SCOPE, "now": NOW, **overrides}
    return find_cached_token(text, **args)


def test_a_valid_token_is_found() -> None:
    assert find(cache(entry("abc"))) == "abc"


@pytest.mark.parametrize(("expires_in", "found"), [
    (EXPIRY_MARGIN_SECONDS + 1, True), (EXPIRY_MARGIN_SECONDS, True), (EXPIRY_MARGIN_SECONDS - 1, False),
    (10, False), (-10, False),
])
def test_five_minutes_before_expiry_a_token_counts_as_expired(expires_in: float, found: bool) -> None:
    assert (find(cache(entry("abc", expires_in=expires_in))) == "abc") is found


def test_a_token_past_its_refresh_time_is_left_to_msal() -> None:
    assert find(cache(entry("abc", refresh_on=str(int(NOW - 1))))) is None
    assert find(cache(entry("abc", refresh_on=str(int(NOW + 60))))) == "abc"


@pytest.mark.parametrize("change", [
    {"client_id": "22222222-2222-2222-2222-222222222222"},
    {"realm": "contoso.onmicrosoft.com"},
    {"environment": "login.microsoftonline.com"},
    {"target": "https://graph.microsoft.com/.default"},
    {"home_account_id": "uid.utid"},
    {"home_account_id": ...},  # absent: msal needs the key, null
    {"ext_cache_key": "abc"},
])
def test_other_identities_scopes_and_kinds_do_not_match(change: dict[str, Any]) -> None:
    e = entry("abc", **change)
    assert find(cache(e, keys=["some-other-key"])) is None


def test_a_wider_target_holding_the_scope_matches() -> None:
    e = entry("abc", target=f"openid {SCOPE}")
    assert find(cache(e, keys=["x"])) == "abc"


def test_the_host_name_is_compared_in_lower_case_and_the_port_ignored() -> None:
    assert find(cache(entry("abc")), authority_url=f"https://LOGIN.example.test/{TENANT}") == "abc"


def test_the_entry_under_the_exact_key_comes_first() -> None:
    wider = entry("wider", target=f"openid {SCOPE}")
    exact = entry("exact")
    assert find(cache(wider, exact, keys=["wider-key", key(exact)])) == "exact"


def test_the_first_usable_entry_wins_and_expired_ones_are_skipped() -> None:
    old = entry("old", expires_in=60, target=f"a {SCOPE}")
    new = entry("new", target=f"b {SCOPE}")
    assert find(cache(old, new, keys=["k1", "k2"])) == "new"


@pytest.mark.parametrize("text", [
    "", "not json", "[]", '{"AccessToken": []}', '{"AccessToken": {"k": 5}}',
    json.dumps({"AccessToken": {"k": entry("abc", expires_on=...)}}),
    json.dumps({"AccessToken": {"k": entry("abc", expires_on="soon")}}),
    json.dumps({"AccessToken": {"k": entry("")}}),
])
def test_anything_unexpected_is_left_to_msal(text: str) -> None:
    assert find(text) is None


def test_an_authority_without_a_tenant_is_left_to_msal() -> None:
    assert find(cache(entry("abc")), authority_url="https://login.example.test") is None


# -- against msal itself ------------------------------------------------------------


def _msal_app(sim: Any) -> Any:
    import msal
    import requests

    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace verify
    session.verify = str(sim.ca_bundle)
    return msal.ConfidentialClientApplication(
        sim.client_id, client_credential=sim.client_secret, authority=sim.authority_url,
        instance_discovery=False, http_client=session, token_cache=msal.SerializableTokenCache())


def test_answers_match_msal_on_the_same_caches(simulator: Any) -> None:
    """For caches built from a real msal entry, find_cached_token returns a
    token exactly when msal serves that token from its cache."""
    app = _msal_app(simulator)
    first = app.acquire_token_for_client([simulator.token_scope])
    real = json.loads(app.token_cache.serialize())
    (real_key, real_entry), = real["AccessToken"].items()
    now = time.time()
    variants: list[tuple[str, dict[str, Any]]] = [
        ("as msal wrote it", {}),
        ("expires in 299 s", {"expires_on": str(int(now + 299)), "secret": "near-expiry"}),
        ("expires in 400 s", {"expires_on": str(int(now + 400)), "secret": "still-good"}),
        ("past refresh_on", {"refresh_on": str(int(now - 5)), "secret": "aging"}),
        ("other client", {"client_id": "x", "secret": "other-client"}),
        ("other realm", {"realm": "other-tenant", "secret": "other-realm"}),
        ("wider target", {"target": f"openid {real_entry['target']}", "secret": "wider"}),
    ]
    for label, change in variants:
        state = json.loads(json.dumps(real))
        state["AccessToken"] = {real_key + ("-v" if "target" in change else ""): {**real_entry, **change}}
        text = json.dumps(state)
        app.token_cache.deserialize(text)
        result = app.acquire_token_for_client([simulator.token_scope])
        from_cache = result["access_token"] if result.get("token_source") == "cache" else None
        ours = find_cached_token(text, client_id=simulator.client_id, authority_url=simulator.authority_url,
                                 scope=simulator.token_scope)
        assert ours == from_cache, label
    assert first["token_source"] == "identity_provider"


def test_a_new_process_uses_the_cached_token_without_msal(simulator: Any, tmp_path: Path) -> None:
    from connector.http.auth import TokenProvider
    from connector.http.transport import build_session

    config = make_config(simulator.connector_config(), tmp_path / "state")
    token = TokenProvider(config, build_session(config)).token()  # msal fetches and persists it
    config_file = tmp_path / "mde.json"
    config_file.write_text(json.dumps({**simulator.connector_config(), "state_dir": str(tmp_path / "state")}))
    code = (
        "import sys\n"
        "from connector.config import load_config\n"
        "from connector.http.auth import TokenProvider\n"
        "from connector.http.transport import build_session\n"
        f"config = load_config({str(config_file)!r})\n"
        "print(TokenProvider(config, build_session(config)).token())\n"
        "print('msal' in sys.modules)\n"
    )
    before_tokens, before_requests = simulator.token_requests, len(simulator.requests)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    served, msal_loaded = proc.stdout.split()
    assert served == token and msal_loaded == "False"
    assert simulator.token_requests == before_tokens
    assert len(simulator.requests) == before_requests  # no OIDC discovery either


def test_after_a_401_the_cached_token_is_not_served_again(simulator: Any, tmp_path: Path) -> None:
    from connector.http.auth import TokenProvider
    from connector.http.transport import build_session

    config = make_config(simulator.connector_config(), tmp_path / "state")
    provider = TokenProvider(config, build_session(config))
    first = provider.token()
    assert provider.token() == first
    provider.invalidate()
    second = provider.token()
    assert second != first and provider.token_requests == 2


# -- a cache file that cannot be used is set aside, once, and replaced ---------------


def _absurd_expiry(real: dict[str, Any]) -> bytes:
    for item in real["AccessToken"].values():
        item["expires_on"] = item["extended_expires_on"] = str(int(time.time()) + 10 * 366 * 86400)
    return json.dumps(real).encode()


def _infinite_expiry(real: dict[str, Any]) -> bytes:
    text = json.dumps(real)
    for item in real["AccessToken"].values():
        text = text.replace(json.dumps(item["expires_on"]), "1e400")
    return text.encode()


def _header_breaking_secret(real: dict[str, Any]) -> bytes:
    for item in real["AccessToken"].values():
        item["secret"] = "abc\r\nX-Injected: 1"
    return json.dumps(real).encode()


def _lone_surrogate_secret(real: dict[str, Any]) -> bytes:
    for item in real["AccessToken"].values():
        item["secret"] = "abc\ud800"
    return json.dumps(real).encode()


UNUSABLE: dict[str, Any] = {
    "not JSON": lambda real: b'{"AccessToken": {',
    "not UTF-8": lambda real: b'{"AccessToken": {}, "x": "\xff\xfe\x80"}',
    "a JSON list": lambda real: b"[]",
    "a list of tokens": lambda real: b'{"AccessToken": []}',
    "a token that is a number": lambda real: b'{"AccessToken": {"k": 5}}',
    "an expiry ten years ahead": _absurd_expiry,
    "an infinite expiry": _infinite_expiry,
    "a token with CR LF": _header_breaking_secret,
    "a token with a lone surrogate": _lone_surrogate_secret,
    "deeply nested JSON": lambda real: b"[" * 100_000 + b"]" * 100_000,
}


def _provider(simulator: Any, state: Path) -> Any:
    from connector.http import auth
    from connector.http.transport import build_session

    auth._apps.clear()  # a new process: nothing in memory
    config = make_config(simulator.connector_config(), state)
    return auth.TokenProvider(config, build_session(config))


def _real_cache(simulator: Any, state: Path) -> dict[str, Any]:
    _provider(simulator, state).token()
    real: dict[str, Any] = json.loads((state / "token_cache.json").read_text())
    return real


def _check_replaced(simulator: Any, state: Path, caplog: pytest.LogCaptureFixture, before: int) -> None:
    cache_file = state / "token_cache.json"
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert str(cache_file) in message and "moved to token_cache.json.corrupt-" in message
    assert "X-Injected" not in message and "\ufffd" not in message
    assert simulator.token_requests == before + 1  # a fresh token
    assert len(list(state.glob("token_cache.json.corrupt-*"))) == 1
    assert cache_file.is_file() and not cache_file.is_symlink()
    assert oct(cache_file.stat().st_mode & 0o777) == "0o600"
    json.loads(cache_file.read_text(encoding="utf-8"))
    # The next run uses the new cache: no warning, no token request.
    caplog.clear()
    _provider(simulator, state).token()
    assert simulator.token_requests == before + 1
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_an_unusable_cache_file_is_set_aside_once_and_replaced(simulator: Any, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture, case: str) -> None:
    state = tmp_path / "state"
    real = _real_cache(simulator, state)
    (state / "token_cache.json").write_bytes(UNUSABLE[case](real))
    before = simulator.token_requests
    caplog.clear()
    token = _provider(simulator, state).token()
    assert token and "\r" not in token
    _check_replaced(simulator, state, caplog, before)


def test_a_directory_in_place_of_the_cache_is_set_aside(simulator: Any, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    _real_cache(simulator, state)
    (state / "token_cache.json").unlink()
    (state / "token_cache.json").mkdir()
    (state / "token_cache.json" / "inside").write_text("x")
    before = simulator.token_requests
    caplog.clear()
    _provider(simulator, state).token()
    _check_replaced(simulator, state, caplog, before)
    (aside,) = state.glob("token_cache.json.corrupt-*")
    assert (aside / "inside").read_text() == "x"  # set aside, not deleted


def test_a_symlink_in_place_of_the_cache_is_never_followed(simulator: Any, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    real = _real_cache(simulator, state)
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text(json.dumps(real))
    (state / "token_cache.json").unlink()
    (state / "token_cache.json").symlink_to(elsewhere)
    before = simulator.token_requests
    caplog.clear()
    _provider(simulator, state).token()
    _check_replaced(simulator, state, caplog, before)
    assert json.loads(elsewhere.read_text()) == real  # the link's target is untouched


def test_a_fifo_in_place_of_the_cache_does_not_hang_the_run(simulator: Any, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    _real_cache(simulator, state)
    (state / "token_cache.json").unlink()
    os.mkfifo(state / "token_cache.json")
    before = simulator.token_requests
    caplog.clear()
    _provider(simulator, state).token()
    _check_replaced(simulator, state, caplog, before)


def test_a_directory_in_place_of_the_lock_file_is_set_aside(simulator: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "token_cache.lock").mkdir()
    assert _provider(simulator, state).token()
    assert (state / "token_cache.lock").is_file()
