"""Get Alert Related Files end to end over recorded HTTP.

Each test replays its own cassette (tests/cassettes/test_recorded/), recorded
from the simulator with real msal and TLS (see conftest.py). While recording,
the test also checks what the simulator saw; while replaying, vcrpy fails any
request the recording does not hold, so an extra token request or retry fails
the test too.
"""

from __future__ import annotations

import pytest

from connector.actions import run_action
from connector.http import auth
from tests.conftest import NoSleep, documented_example, make_context

EXAMPLE = "636688558380765161_2136280442"
pytestmark = pytest.mark.vcr


def files_action(recorded, alert_id: str, sleeper: NoSleep | None = None, **config):
    context = make_context(recorded.config(**config), sleeper=sleeper or NoSleep())
    return run_action("get_alert_related_files", {"alert_id": alert_id}, context), context


@pytest.fixture(autouse=True)
def fresh_msal_apps():
    # Each test is a fresh process as far as msal is concerned.
    auth._apps.clear()
    yield
    auth._apps.clear()


def test_documented_example_maps_to_artifacts(recorded) -> None:
    result, context = files_action(recorded, EXAMPLE)
    assert result.status == "success", result.message
    documented = documented_example()["value"][0]
    # data keeps the API's File objects unchanged, the documented one first.
    assert result.data[0] == documented
    art = next(a for a in result.artifacts if a["cef"].get("fileHashSha256") == documented["sha256"])
    assert art["cef"]["fileHashMd5"] == "8d5b7cc9a832e21d22503057e1fec8e9"
    assert art["cef"]["fileHashSha1"] == "f2a00fd2f2de1be0214b8529f1e9f67096c1aa70"
    assert art["cef"]["signer"] == "Microsoft Corporation"
    assert art["cef"]["issuer"] == "Microsoft Code Signing PCA"
    assert art["cef"]["signerHash"] == "9dc17888b5cfad98b3cb35c1994e96227f061675"
    assert art["cef"]["isValidCertificate"] is True
    assert art["cef"]["fileSize"] == 113984
    assert art["cef"]["fileProductName"] == "Microsoft\ufffd Windows\ufffd Operating System"
    assert "fileType" not in art["cef"] and "determinationValue" not in art["cef"]
    assert art["cef_types"]["fileHashSha256"] == ["sha256", "hash"]
    assert art["container"] == EXAMPLE
    assert result.summary["total_files"] == len(result.data)
    # Saved once in the store, with the container.
    stored = context.store.artifacts(EXAMPLE)
    assert {a["source_data_identifier"] for a in stored} == {a["source_data_identifier"] for a in result.artifacts}
    if recorded.recording:
        paths = [r.path for r in recorded.sim.requests if r.path.startswith("/api/")]
        assert paths == [f"/api/alerts/{EXAMPLE}/files"]


def test_rerun_adds_nothing_twice(recorded) -> None:
    first, context = files_action(recorded, EXAMPLE)
    again = run_action("get_alert_related_files", {"alert_id": EXAMPLE}, context)
    assert first.ok and again.ok
    assert [a["source_data_identifier"] for a in first.artifacts] == [
        a["source_data_identifier"] for a in again.artifacts]
    assert len(context.store.artifacts(EXAMPLE)) == len(first.artifacts)
    assert len([c for c in context.store.containers() if c["alert_id"] == EXAMPLE]) == 1


def test_alert_without_files_succeeds_with_none(recorded) -> None:
    from mde_simulator import EMPTY_ALERT_ID

    result, _ = files_action(recorded, EMPTY_ALERT_ID)
    assert result.status == "success"
    assert result.data == [] and result.artifacts == []
    assert result.summary["total_files"] == 0
    assert "no related files" in result.message


def test_duplicates_collapse_into_one_artifact(recorded) -> None:
    from mde_simulator import DUPLICATES_ALERT_ID

    result, _ = files_action(recorded, DUPLICATES_ALERT_ID)
    assert result.ok
    assert result.summary["duplicates_collapsed"] >= 1
    assert len(result.artifacts) == len(result.data) - result.summary["duplicates_collapsed"]
    ids = [a["source_data_identifier"] for a in result.artifacts]
    assert len(ids) == len(set(ids))


def test_non_ascii_text_is_kept(recorded) -> None:
    from mde_simulator import UNICODE_ALERT_ID

    result, _ = files_action(recorded, UNICODE_ALERT_ID)
    assert result.ok
    texts = [v for a in result.artifacts for v in a["cef"].values() if isinstance(v, str)]
    assert any(any(ord(ch) > 127 for ch in t) for t in texts)
    assert all("None" != t for t in texts)


def test_sparse_files_leave_nulls_out(recorded) -> None:
    from mde_simulator import SPARSE_ALERT_ID

    result, _ = files_action(recorded, SPARSE_ALERT_ID)
    assert result.ok
    for art, file in zip(result.artifacts, result.data, strict=True):
        assert None not in art["cef"].values()
        assert "None" not in [str(v) for v in art["cef"].values()]
        if file.get("md5") is None:
            assert "fileHashMd5" not in art["cef"] and "fileHashMd5" not in art["cef_types"]


def test_unknown_alert_is_not_found_with_correlation_id(recorded) -> None:
    result, _ = files_action(recorded, "da000000000000000000_123456789")
    assert result.status == "failed"
    assert result.error["kind"] == "not_found" and result.exit_code == 1
    assert "da000000000000000000_123456789 was not found" in result.message
    assert result.error["correlation_id"] in result.message
    assert len(result.error["correlation_id"]) == 36


def test_hostile_id_stays_one_path_segment(recorded) -> None:
    hostile = "../../machines?$top=1#x/%2F"
    result, _ = files_action(recorded, hostile)
    assert result.error["kind"] == "not_found"
    if recorded.recording:
        api = [r.path for r in recorded.sim.requests if r.path.startswith("/api/")]
        assert api == ["/api/alerts/..%2F..%2Fmachines%3F%24top%3D1%23x%2F%252F/files"]


def test_missing_permission_is_forbidden_and_names_it(recorded) -> None:
    client_id = "6a0c3f2e-4b1d-4e8a-9f7c-2d5e8b1a4c60"
    secret = "Ab1~alerts-only-app-secret-value"
    if recorded.recording:
        recorded.sim.add_app(client_id, secret=secret, roles=["Alert.Read.All"])
    result, _ = files_action(recorded, EXAMPLE, client_id=client_id, client_secret=secret)
    assert result.error["kind"] == "forbidden"
    assert "File.Read.All" in result.message and "View Data" in result.message
    assert result.error["correlation_id"]


def test_wrong_secret_reports_aadsts_code_and_hint(recorded) -> None:
    result, _ = files_action(recorded, EXAMPLE, client_secret="Wr0ng~secret-value-for-the-test")
    assert result.error["kind"] == "authentication" and result.exit_code == 1
    assert "AADSTS7000215" in result.message
    assert "Value" in result.message and "Secret ID" in result.message
    assert result.error["correlation_id"]
    assert "Wr0ng~secret" not in result.message


def test_429_retry_after_is_honoured(recorded) -> None:
    from mde_simulator import ScriptedResponse

    recorded.script(ScriptedResponse(429, headers={"Retry-After": "3"}))
    sleeper = NoSleep()
    result, _ = files_action(recorded, EXAMPLE, sleeper=sleeper)
    assert result.ok, result.message
    assert sleeper.waits == [3.0]


def test_server_errors_are_retried_with_backoff(recorded) -> None:
    from mde_simulator import ScriptedResponse

    recorded.script(ScriptedResponse(500), ScriptedResponse(503))
    sleeper = NoSleep()
    result, _ = files_action(recorded, EXAMPLE, sleeper=sleeper)
    assert result.ok, result.message
    assert len(sleeper.waits) == 2
    assert 0.25 <= sleeper.waits[0] <= 0.5 and 0.5 <= sleeper.waits[1] <= 1.0


def test_persistent_5xx_fails_as_api_error_with_correlation_id(recorded) -> None:
    from mde_simulator import ScriptedResponse

    recorded.script(ScriptedResponse(503, times=10))
    sleeper = NoSleep()
    result, _ = files_action(recorded, EXAMPLE, sleeper=sleeper)
    assert result.error["kind"] == "api_error"
    assert "HTTP 503" in result.message and result.error["correlation_id"]
    assert len(sleeper.waits) == 4  # max_retries


def test_proxy_html_error_page_is_named(recorded) -> None:
    from mde_simulator import ScriptedResponse

    recorded.script(ScriptedResponse(502, action="html", times=10))
    result, _ = files_action(recorded, EXAMPLE, max_retries=1)
    assert result.error["kind"] == "api_error"
    assert "HTML page" in result.message


def test_expired_token_is_refreshed_once(recorded) -> None:
    from mde_simulator import ScriptedResponse

    recorded.script(ScriptedResponse(401))
    result, _ = files_action(recorded, EXAMPLE)
    assert result.ok, result.message
    if recorded.recording:
        assert recorded.sim.token_requests == 2


def test_one_token_serves_separate_runs(recorded) -> None:
    # Three "processes" (fresh msal apps) share the state directory: one token
    # request in all. In replay, a second token request would not be in the
    # cassette and would fail the test.
    config = recorded.config()
    for _ in range(3):
        auth._apps.clear()
        result = run_action("get_alert_related_files", {"alert_id": EXAMPLE},
                            make_context(config, sleeper=NoSleep()))
        assert result.ok, result.message
    if recorded.recording:
        assert recorded.sim.token_requests == 1


@pytest.mark.sim(files_page_size=2)
def test_next_link_pages_are_followed(recorded) -> None:
    result, context = files_action(recorded, EXAMPLE)
    assert result.ok, result.message
    assert len(result.data) == 4
    assert context.client.calls == 2
    assert result.data[0] == documented_example()["value"][0]


def test_five_thousand_files(recorded) -> None:
    from mde_simulator import LARGE_ALERT_5K

    result, context = files_action(recorded, LARGE_ALERT_5K)
    assert result.ok
    assert result.summary["total_files"] == 5000
    assert len(result.artifacts) == result.summary["distinct_files"]
    assert len(context.store.artifacts(LARGE_ALERT_5K)) == len(result.artifacts)
