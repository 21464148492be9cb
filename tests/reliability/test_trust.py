"""Trust: TLS verification cannot be turned off, a private CA is trusted only
through ``ca_bundle`` (which wins over REQUESTS_CA_BUNDLE), untrusted, expired
or wrongly named certificates are refused with kind ``tls``, and neither a
poisoned ``@odata.nextLink`` nor a redirect can send the bearer token or the
client secret to another server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from mde_simulator import EXAMPLE_FILE, ScriptedResponse
from tests.reliability.pki import CA, listener
from tests.reliability.support import (
    EXAMPLE,
    FILES_PATH,
    assert_all_or_nothing,
    assert_one_sentence,
    count,
    make_config,
    run_cli,
    run_files,
)


@pytest.fixture(scope="module")
def test_ca() -> CA:
    return CA()


def _json_result(proc: Any) -> dict[str, Any]:
    return dict(json.loads(proc.stdout))


# -- the trust store -------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_ca_bundle_wins_over_the_environment(sim: Any, tmp_path: Path, test_ca: CA, variable: str) -> None:
    other = test_ca.write(tmp_path / "other-ca.pem")
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"))
    proc = run_cli("run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}", "--config", str(config),
                   "--output", "json", env={variable: str(other)})
    assert proc.returncode == 0, proc.stderr
    assert _json_result(proc)["status"] == "success"


@pytest.mark.parametrize("environment", ["nothing", "another CA", "the simulator's CA"])
def test_without_ca_bundle_the_simulator_is_refused(sim: Any, tmp_path: Path, test_ca: CA,
                                                    environment: str) -> None:
    # Trusting a private CA is done with ca_bundle, never by the environment.
    env = {"nothing": {}, "another CA": {"REQUESTS_CA_BUNDLE": str(test_ca.write(tmp_path / "other.pem"))},
           "the simulator's CA": {"REQUESTS_CA_BUNDLE": str(sim.ca_bundle), "CURL_CA_BUNDLE": str(sim.ca_bundle)},
           }[environment]
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"), ca_bundle=None)
    sim.reset_log()
    proc = run_cli("run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}", "--config", str(config),
                   "--output", "json", env=env)
    assert proc.returncode == 1
    result = _json_result(proc)
    assert result["error"]["kind"] == "tls"
    assert "ca_bundle" in result["message"] and sim.base_url in result["message"]
    assert_one_sentence(result["message"])
    assert sim.requests == []  # no request got through the handshake


@pytest.mark.parametrize("key", ["verify", "verify_ssl", "insecure", "tls_verify"])
def test_there_is_no_key_that_turns_verification_off(sim: Any, tmp_path: Path, key: str) -> None:
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"), **{key: False})
    proc = run_cli("test-connectivity", "--config", str(config))
    assert proc.returncode == 2
    assert f"'{key}' is not accepted" in proc.stderr


def test_the_environment_cannot_turn_verification_off(sim: Any, tmp_path: Path) -> None:
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"), ca_bundle=None)
    proc = run_cli("test-connectivity", "--config", str(config),
                   env={"MDE_VERIFY": "false", "CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": "",
                        "PYTHONHTTPSVERIFY": "0"})
    assert proc.returncode == 1 and "could not be verified" in proc.stderr


def test_the_pinned_session_ignores_verify_false(tmp_path: Path, test_ca: CA) -> None:
    from connector.http.transport import PinnedSession

    cert, key = CA("Someone else").issue(tmp_path)
    with listener(cert, key) as server:
        session = PinnedSession(str(test_ca.write(tmp_path / "ca.pem")), None, 5.0)
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://127.0.0.1:{server.port}/", verify=False)


def test_a_ca_bundle_that_holds_no_certificate_names_the_key(sim: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"), ca_bundle=str(broken))
    proc = run_cli("test-connectivity", "--config", str(config))
    assert proc.returncode == 2, proc.stderr
    assert "'ca_bundle'" in proc.stderr and "broken.pem" in proc.stderr


# -- certificates that must be refused -------------------------------------------------


def _bad_certificate(kind: str, ca: CA, tmp_path: Path) -> tuple[Path, Path]:
    if kind == "wrong host name":
        return ca.issue(tmp_path, ips=(), dns=("api.wrong.example",))
    if kind == "expired":
        return ca.issue(tmp_path, expired=True)
    return CA("An untrusted CA").issue(tmp_path)


REASONS = {"wrong host name": "not issued for 127.0.0.1", "expired": "expired", "untrusted CA": "trusted CA"}


@pytest.mark.parametrize("kind", list(REASONS))
@pytest.mark.parametrize("where", ["api", "sign-in"])
def test_a_bad_certificate_is_refused_with_kind_tls(sim: Any, tmp_path: Path, test_ca: CA, kind: str,
                                                    where: str) -> None:
    count("faults")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(sim.ca_bundle.read_bytes() + test_ca.pem())
    cert, key = _bad_certificate(kind, test_ca, tmp_path)
    with listener(cert, key) as server:
        base = f"https://127.0.0.1:{server.port}"
        endpoint = {"api_base_url": base} if where == "api" else {"authority_url": f"{base}/{sim.tenant_id}"}
        result, context = run_files(make_config(sim, tmp_path / "state", ca_bundle=bundle, **endpoint))
    assert result.error["kind"] == "tls", result.message
    assert f"127.0.0.1:{server.port}" in result.message and REASONS[kind] in result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)


# -- nothing follows a link or a redirect elsewhere ---------------------------------------


POISONED = {
    "another port": "https://127.0.0.1:{other}/api/alerts/x/files?$skip=1",
    "plain http": "http://127.0.0.1:{other}/api/alerts/x/files?$skip=1",
    "another host name": "https://localhost:{port}/api/alerts/x/files?$skip=1",
    "user info": "https://127.0.0.1:{port}@127.0.0.1:{other}/api/alerts/x/files",
    "scheme-relative": "//127.0.0.1:{other}/api/alerts/x/files",
    "relative": "/api/alerts/x/files?$skip=1",
    "not a string": 42,
}


@pytest.mark.parametrize("case", list(POISONED))
def test_a_poisoned_next_link_is_refused_and_named(sim: Any, tmp_path: Path, case: str) -> None:
    count("faults")
    port = sim.base_url.rsplit(":", 1)[1]
    with listener() as other:
        link = POISONED[case]
        if isinstance(link, str):
            link = link.format(port=port, other=other.port)
        sim.script(ScriptedResponse(200, body={"value": [EXAMPLE_FILE], "@odata.nextLink": link},
                                    path_contains=FILES_PATH))
        result, context = run_files(make_config(sim, tmp_path / "state"))
        assert other.connections == 0
    assert result.error["kind"] == "api_error"
    assert "nextLink" in result.message
    if isinstance(link, str):
        assert link.split("?")[0][:60] in result.message
    assert_one_sentence(result.message)
    assert [r.path for r in sim.requests if r.path.startswith("/api/")] == [FILES_PATH]
    assert_all_or_nothing(context.store, EXAMPLE, result)


def test_the_poller_refuses_a_poisoned_next_link_too(sim: Any, tmp_path: Path) -> None:
    count("faults")
    with listener() as other:
        link = f"https://127.0.0.1:{other.port}/api/alerts?$skip=1"
        sim.script(ScriptedResponse(200, body={"value": [], "@odata.nextLink": link}, path_contains="/api/alerts?"))
        config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"))
        proc = run_cli("watch", "--once", "--no-playbooks", "--config", str(config))
        assert other.connections == 0
    assert proc.returncode == 1
    assert f"127.0.0.1:{other.port}" in proc.stderr and "nextLink" in proc.stderr


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_an_api_redirect_is_not_followed(sim: Any, tmp_path: Path, status: int) -> None:
    count("faults")
    with listener() as other:
        target = f"http://127.0.0.1:{other.port}/steal"
        sim.script(ScriptedResponse(status, body=b"", headers={"Location": target}, path_contains=FILES_PATH))
        result, context = run_files(make_config(sim, tmp_path / "state"))
        assert other.connections == 0
    assert result.error["kind"] == "api_error" and target in result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)


@pytest.mark.parametrize("status", [302, 307, 308])
def test_a_sign_in_redirect_is_not_followed_so_the_secret_stays(sim: Any, tmp_path: Path, status: int) -> None:
    # A 307/308 would make requests POST the form, client_secret included, again.
    count("faults")
    with listener() as other:
        target = f"http://127.0.0.1:{other.port}/steal"
        sim.script(ScriptedResponse(status, body=b"", headers={"Location": target},
                                    path_contains="/oauth2/v2.0/token"))
        result, context = run_files(make_config(sim, tmp_path / "state"))
        assert other.connections == 0
    assert result.error["kind"] == "authentication" and target in result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)
