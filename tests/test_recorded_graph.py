"""Recorded HTTP for the Graph source (``source: graph``): cassettes under
``tests/cassettes/test_recorded_graph/``, recorded from the simulator with

    pytest tests/test_recorded_graph.py --record-mode=rewrite

and scrubbed like the Defender ones (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from connector.actions import ActionContext, run_action
from connector.http import auth
from connector.http.graph import GraphClient, graph_permission
from connector.runtime.store import Store
from tests.conftest import NoSleep

pytestmark = pytest.mark.vcr
DA_ALERT_ID = "da637472900382838869_1364969609"

GRAPH_PERMISSION = graph_permission()


@pytest.fixture(autouse=True)
def fresh_msal_apps():
    auth._apps.clear()
    yield
    auth._apps.clear()


def graph_action(recorded, alert_id: str, **config: Any):
    base = recorded.config().api_base_url
    cfg = recorded.config(source="graph", graph_base_url=base, **config)
    sleeper = NoSleep()
    context = ActionContext(config=cfg, store=Store.open(cfg.state_dir),
                            client_factory=lambda c: GraphClient.from_config(c, sleep=sleeper.sleep,
                                                                             clock=sleeper.clock))
    return run_action("get_alert_related_files", {"alert_id": alert_id}, context), sleeper


def test_graph_evidence_maps_to_file_artifacts(recorded) -> None:
    result, _ = graph_action(recorded, DA_ALERT_ID)
    assert result.status == "success", result.message
    assert all("@odata.type" in e for e in result.data)
    hashes = {e["fileDetails"]["sha256"] for e in result.data if "fileDetails" in e}
    assert {a["cef"].get("fileHashSha256") for a in result.artifacts} == hashes
    assert all("signerHash" not in a["cef"] for a in result.artifacts)
    if recorded.recording:
        paths = [r.path for r in recorded.sim.requests if r.path.startswith(("/v1.0/", "/api/"))]
        assert paths == [f"/v1.0/security/alerts_v2/{DA_ALERT_ID}"]


def test_graph_enrichment_reads_the_defender_file(recorded) -> None:
    result, _ = graph_action(recorded, DA_ALERT_ID, enrich_files=True)
    assert result.status == "success", result.message
    assert result.summary["enriched_files"] >= 1
    assert any("signerHash" in a["cef"] or "globalPrevalence" in a["cef"] for a in result.artifacts)


def test_graph_unknown_alert_is_not_found_with_request_id(recorded) -> None:
    result, _ = graph_action(recorded, "da000000000000000000_404")
    assert result.status == "failed" and result.error["kind"] == "not_found"
    assert result.error["correlation_id"]


def test_graph_missing_permission_names_security_alert_read_all(recorded) -> None:
    from mde_simulator import ScriptedResponse

    recorded.script(ScriptedResponse(403, path_contains="/v1.0/security/alerts_v2"))
    result, _ = graph_action(recorded, DA_ALERT_ID)
    assert result.status == "failed" and result.error["kind"] == "forbidden"
    assert GRAPH_PERMISSION in str(result.to_dict())


def test_graph_429_retry_after_is_honoured(recorded) -> None:
    from mde_simulator import ScriptedResponse

    recorded.script(ScriptedResponse(429, headers={"Retry-After": "3"}, path_contains="/v1.0/security/alerts_v2"))
    result, sleeper = graph_action(recorded, DA_ALERT_ID)
    assert result.status == "success", result.message
    assert 3 in [round(w) for w in sleeper.waits]
