"""Secrets: with a recognisable client secret, certificate key and password,
and access tokens, every command runs with ``--verbose`` and every error kind
is provoked (including a server that echoes secrets back); none of them
appears in stdout, stderr, logs, results, exception messages, the SQLite
store, playbook run records or a recorded cassette. The token cache and the
store are 0600 in a 0700 directory, whatever the umask, even after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from connector.runtime.engine import triggered_run_id
from mde_simulator import ROLE_ALERTS, ROLE_FILES, ScriptedResponse, make_client_certificate
from tests.reliability.pki import CA
from tests.reliability.support import EXAMPLE, FILES_PATH, cli_env, closed_port, count, run_cli

CANARY_SECRET = "CANARY~Secret-7f3a9c2e5b1d4e6f-0042"
CANARY_WRONG_SECRET = "CANARY~Wrong-secret-c0ffee-1234"
CANARY_PASSWORD = "CANARY-pfx-password-31337"
CANARY_TOKEN = "CANARY-ACCESS-TOKEN-5a5a5a-e1e1e1"
KINDS = ["invalid_input", "invalid_config", "authentication", "unauthorized", "forbidden", "not_found",
         "rate_limited", "api_error", "network", "tls", "store"]


class Canaries:
    """The secrets in play and everything the runs left behind."""

    def __init__(self, sim: Any, root: Path) -> None:
        self.sim = sim
        self.root = root
        self.app = str(uuid.uuid4())
        self.cert_app = str(uuid.uuid4())
        self.alerts_only_app = str(uuid.uuid4())
        key, cert = make_client_certificate("canary-app")
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        body = [line for line in key_pem.splitlines() if not line.startswith("-----")]
        # Lines of the private key as PEM, and its DER in hex: any form of it.
        self.key_fragments = [body[1], body[len(body) // 2], body[-2]]
        self.key_fragments.append(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()).hex()[60:120])
        self.pfx = root / "canary.pfx"
        self.pfx.write_bytes(pkcs12.serialize_key_and_certificates(
            b"canary", key, cert, None, serialization.BestAvailableEncryption(CANARY_PASSWORD.encode())))
        sim.add_app(self.app, secret=CANARY_SECRET, roles=[ROLE_FILES, ROLE_ALERTS])
        sim.add_app(self.cert_app, roles=[ROLE_FILES, ROLE_ALERTS], certificate_pem=cert_pem)
        sim.add_app(self.alerts_only_app, secret=CANARY_SECRET, roles=[ROLE_ALERTS])
        self.outputs: list[str] = []
        self.state_dirs: list[Path] = []
        self.kinds: set[str] = set()

    def config(self, name: str, **overrides: Any) -> Path:
        state = self.root / f"state-{name}"
        self.state_dirs.append(state)
        values: dict[str, Any] = {"client_id": self.app, "client_secret": CANARY_SECRET, "state_dir": str(state)}
        values.update(overrides)
        return Path(self.sim.write_config(self.root / f"{name}.json", **values))

    def run(self, *args: str, expect: int | None = 0, kind: str | None = None) -> dict[str, Any] | None:
        count("canary runs")
        proc = run_cli(*args, "--verbose")
        self.outputs += [proc.stdout, proc.stderr]
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        if expect is not None:
            assert proc.returncode == expect, (args, proc.stdout[-1000:], proc.stderr[-2000:])
        result = None
        if "--output" in args and args[args.index("--output") + 1] == "json" and proc.stdout.strip():
            result = json.loads(proc.stdout)
        if kind is not None:
            assert result is not None and result["error"]["kind"] == kind, result
            self.kinds.add(kind)
        return result

    def secrets(self) -> list[str]:
        tokens = []
        for state in self.state_dirs:
            cache = state / "token_cache.json"
            if cache.exists():
                tokens += [t["secret"] for t in json.loads(cache.read_text()).get("AccessToken", {}).values()]
        return [CANARY_SECRET, CANARY_WRONG_SECRET, CANARY_PASSWORD, CANARY_TOKEN, *self.key_fragments, *tokens]

    def leftovers(self) -> dict[str, bytes]:
        """Every file the runs wrote except the token cache (which holds
        tokens by design, 0600) and the credentials the tests wrote."""
        files = {}
        for state in self.state_dirs:
            for path in state.rglob("*") if state.exists() else []:
                if path.is_file() and path.name != "token_cache.json":
                    files[str(path)] = path.read_bytes()
        return files


def _files_args(config: Path, alert: str = EXAMPLE) -> tuple[str, ...]:
    return ("run", "get_alert_related_files", "--param", f"alert_id={alert}", "--config", str(config),
            "--output", "json")


def test_no_secret_leaks_from_any_command_or_error(sim: Any, tmp_path: Path) -> None:
    c = Canaries(sim, tmp_path)
    good = c.config("good")

    def echo(*secrets: str) -> dict[str, Any]:
        # An API error that quotes the caller's own credentials back.
        return {"error": {"code": "Echo", "target": str(uuid.uuid4()),
                          "message": "rejected: " + ", ".join(secrets)}}

    # Every command, succeeding.
    c.run(*_files_args(good))
    c.run(*_files_args(c.config("certificate", client_id=c.cert_app, client_secret=None,
                                certificate_path=str(c.pfx), certificate_password=CANARY_PASSWORD)))
    c.run("test-connectivity", "--config", str(good), "--output", "json")
    c.run("watch", "--once", "--config", str(good), "--output", "json")
    c.run("playbook", "run", "investigate_alert_files", "--alert-id", EXAMPLE, "--config", str(good),
          "--output", "json")
    c.run("runs", "list", "--config", str(good), "--output", "json")
    run_id = triggered_run_id("triage_new_alert", sim.alerts[0]["id"])
    c.run("runs", "show", run_id, "--config", str(good), "--output", "json")
    c.run("artifacts", "list", "--config", str(good), "--output", "json")
    c.run("containers", "list", "--config", str(good), "--output", "json")
    c.run("playbook", "validate")
    c.run("playbook", "list")
    c.run("actions")
    c.run("manifest", "validate")

    # Every error kind.
    c.run(*_files_args(good, alert=""), expect=2, kind="invalid_input")
    c.run(*_files_args(c.config("two-credentials", certificate_path=str(c.pfx),
                                certificate_password=CANARY_PASSWORD)), expect=2, kind="invalid_config")
    c.run(*_files_args(c.config("password-alone", certificate_password=CANARY_PASSWORD)), expect=2,
          kind="invalid_config")
    c.run(*_files_args(c.config("wrong-secret", client_secret=CANARY_WRONG_SECRET)), expect=1,
          kind="authentication")
    # Entra ID echoing the credential of the configuration in play.
    sim.script(ScriptedResponse(401, path_contains="/oauth2/v2.0/token", body={
        "error": "invalid_client", "error_codes": [7000215],
        "error_description": f"AADSTS7000215: Invalid client secret provided: {CANARY_SECRET}"}))
    c.run(*_files_args(c.config("entra-echo")), expect=1, kind="authentication")
    sim.script(ScriptedResponse(401, path_contains="/oauth2/v2.0/token", body={
        "error": "invalid_client", "error_codes": [700027],
        "error_description": f"AADSTS700027: The certificate protected by {CANARY_PASSWORD} is not registered."}))
    c.run(*_files_args(c.config("entra-echo-certificate", client_id=c.cert_app, client_secret=None,
                                certificate_path=str(c.pfx), certificate_password=CANARY_PASSWORD)),
          expect=1, kind="authentication")
    # Entra hands out a recognisable (opaque) token; the API rejects it,
    # quoting it and the secret back.
    canary_token = {"token_type": "Bearer", "expires_in": 3599, "access_token": CANARY_TOKEN}
    sim.script(ScriptedResponse(200, path_contains="/oauth2/v2.0/token", times=2, body=canary_token),
               ScriptedResponse(401, path_contains=FILES_PATH, times=2, body=echo(CANARY_TOKEN, CANARY_SECRET)))
    c.run(*_files_args(c.config("canary-token")), expect=1, kind="unauthorized")
    sim.script(ScriptedResponse(200, path_contains="/oauth2/v2.0/token", body=canary_token),
               ScriptedResponse(400, path_contains=FILES_PATH, body=echo(f"Bearer {CANARY_TOKEN}", CANARY_TOKEN)))
    echo_config = c.config("canary-token-echo")
    c.run(*_files_args(echo_config), expect=1, kind="api_error")
    # The next run takes the same token from the cache, and it is quoted back again.
    sim.script(ScriptedResponse(400, path_contains=FILES_PATH, body=echo(CANARY_TOKEN)))
    c.run(*_files_args(echo_config), expect=1, kind="api_error")
    # A token response cut short, holding the token: msal logs such a body.
    sim.script(ScriptedResponse(200, path_contains="/oauth2/v2.0/token",
                                body=f'{{"token_type": "Bearer", "access_token": "{CANARY_TOKEN}'.encode()))
    c.run(*_files_args(c.config("cut-token")), expect=1, kind="authentication")
    c.run(*_files_args(c.config("alerts-only", client_id=c.alerts_only_app)), expect=1, kind="forbidden")
    c.run(*_files_args(good, alert="da000000000000000000_1"), expect=1, kind="not_found")
    # The real token of this state directory (cached by the first run) quoted back.
    token = next(iter(json.loads((c.state_dirs[0] / "token_cache.json").read_text())["AccessToken"].values()))
    sim.script(ScriptedResponse(429, path_contains=FILES_PATH, headers={"Retry-After": "86400"},
                                body=echo(token["secret"], CANARY_SECRET)))
    c.run(*_files_args(good), expect=1, kind="rate_limited")
    sim.script(ScriptedResponse(500, path_contains=FILES_PATH, times=10, body=echo(token["secret"], CANARY_SECRET)))
    c.run(*_files_args(good.with_name("good.json")), expect=1, kind="api_error")
    with closed_port() as port:
        c.run(*_files_args(c.config("refused", api_base_url=f"https://127.0.0.1:{port}")), expect=1, kind="network")
    c.run(*_files_args(c.config("untrusted", ca_bundle=str(CA().write(tmp_path / "other-ca.pem")))), expect=1,
          kind="tls")
    broken = c.config("broken-store")
    broken.parent.joinpath("state-broken-store").mkdir(mode=0o700)
    (broken.parent / "state-broken-store" / "store.sqlite").write_bytes(b"not a database " * 64)
    c.run(*_files_args(broken), expect=1, kind="store")
    assert c.kinds == set(KINDS)

    # Now look everywhere for any of the secrets.
    secrets = c.secrets()
    assert len(secrets) > 8  # the canaries and the real tokens issued
    places = {f"output {i}": text.encode() for i, text in enumerate(c.outputs)}
    places.update(c.leftovers())
    for where, data in places.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{secret[:12]}… leaked into {where}"
        assert b"PRIVATE KEY" not in data, where
    count("canaries", len(secrets))


def test_no_secret_in_results_exceptions_or_a_recorded_cassette(sim: Any, tmp_path: Path) -> None:
    # In-process, recording with the suite's scrubbers as tests/test_recorded.py does.
    import vcr

    from connector.actions import ActionContext, run_action
    from connector.config import resolve
    from connector.runtime.store import Store
    from tests import conftest

    app = str(uuid.uuid4())
    sim.add_app(app, secret=CANARY_SECRET, roles=[ROLE_FILES])
    config = resolve(sim.connector_config(client_id=app, client_secret=CANARY_SECRET,
                                          state_dir=str(tmp_path / "state")))
    recorder = vcr.VCR(filter_headers=["authorization", "cookie", "client-request-id"],
                       before_record_request=conftest._scrub_request,
                       before_record_response=conftest._scrub_response, decode_compressed_response=True)
    cassette = tmp_path / "canary.yaml"
    echo = {"error": {"code": "Echo", "message": f"secret {CANARY_SECRET}", "target": str(uuid.uuid4())}}
    sim.script(ScriptedResponse(403, path_contains="/alerts/da1/", body=echo))
    with recorder.use_cassette(str(cassette), record_mode="all"):
        context = ActionContext(config=config, store=Store.open(config.state_dir))
        results = [run_action("get_alert_related_files", {"alert_id": a}, context) for a in (EXAMPLE, "da1")]
    token = next(iter(json.loads((tmp_path / "state" / "token_cache.json").read_text())["AccessToken"].values()))
    recorded = cassette.read_text()
    assert results[0].ok and results[1].error["kind"] == "forbidden"
    for secret in (CANARY_SECRET, token["secret"]):
        assert secret not in recorded
        assert secret not in repr(config)
        for result in results:
            assert secret not in json.dumps(result.to_dict()) and secret not in repr(result)
    count("canaries", 2)


# -- file modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("existing_mode", [None, 0o755])
@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_state_files_are_0600_even_after_sigkill(sim: Any, tmp_path: Path, umask: int,
                                                 existing_mode: int | None) -> None:
    # The connector makes a missing state directory 0700; an existing one
    # that only others may read is the user's choice, used and never chmod-ed.
    state = tmp_path / "state"
    if existing_mode is not None:
        state.mkdir()
        os.chmod(state, existing_mode)
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(state))
    assert run_cli(*_files_args(config), umask=umask).returncode == 0
    count("processes")
    proc = subprocess.Popen([sys.executable, "-m", "connector", "watch", "--interval", "1", "--config",
                             str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(),
                            preexec_fn=lambda: os.umask(umask))
    deadline = time.monotonic() + 20
    while not (state / "rate_budget.sqlite.slots").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # a real process must be caught with its files open
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    count("kill points")
    modes = {p.name: p.stat().st_mode & 0o777 for p in state.rglob("*")}
    assert {"token_cache.json", "store.sqlite", "store.sqlite-wal", "rate_budget.sqlite.slots"} <= set(modes)
    assert state.stat().st_mode & 0o777 == (0o700 if existing_mode is None else existing_mode)
    assert {name: oct(mode) for name, mode in modes.items() if mode & 0o077} == {}
