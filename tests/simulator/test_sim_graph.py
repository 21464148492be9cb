"""The simulator's Microsoft Graph alerts_v2 routes."""

from __future__ import annotations

from typing import Any

from mde_simulator import Simulator
from mde_simulator.data import DA_ALERT_ID, UNICODE_ALERT_ID
from mde_simulator.graph import GRAPH_RATE_PER_MINUTE

from .sim_helpers import Api

GRAPH = "https://graph.microsoft.com"


def graph_api(sim: Simulator) -> Api:
    return Api(sim, sim.issue_token(audience=GRAPH))


def test_get_serves_the_same_alert_ids_with_every_evidence_kind(sim: Simulator) -> None:
    response = graph_api(sim).get(f"/v1.0/security/alerts_v2/{DA_ALERT_ID}")
    assert response.status_code == 200
    alert = response.json()
    assert alert["id"] == DA_ALERT_ID and alert["serviceSource"] == "microsoftDefenderForEndpoint"
    kinds = [e["@odata.type"].rsplit(".", 1)[-1] for e in alert["evidence"]]
    assert {"fileEvidence", "processEvidence", "deviceEvidence", "userEvidence", "ipEvidence"} <= set(kinds)
    files = [e["fileDetails"] for e in alert["evidence"] if e["@odata.type"].endswith("fileEvidence")]
    image = next(e["imageFile"] for e in alert["evidence"] if e["@odata.type"].endswith("processEvidence"))
    assert image["sha256"] == files[0]["sha256"]  # a duplicate across evidence kinds
    assert all("sha256Ac" in f and f["sha256Ac"] is None for f in files)


def test_non_ascii_paths_survive(sim: Simulator) -> None:
    alert = graph_api(sim).get(f"/v1.0/security/alerts_v2/{UNICODE_ALERT_ID}").json()
    paths = [e["fileDetails"]["filePath"] for e in alert["evidence"] if "fileDetails" in e]
    assert any(not p.isascii() for p in paths if p)


def test_errors_use_graphs_body_with_a_request_id(sim: Simulator) -> None:
    api = graph_api(sim)
    missing = api.get("/v1.0/security/alerts_v2/da0_1")
    assert missing.status_code == 404
    assert missing.json()["error"]["innerError"]["request-id"]
    defender_token = api.get("/v1.0/security/alerts_v2", token=sim.issue_token())
    assert defender_token.status_code == 401
    denied = api.get("/v1.0/security/alerts_v2", token=sim.issue_token(audience=GRAPH, roles=["File.Read.All"]))
    assert denied.status_code == 403 and "SecurityAlert.Read.All" in denied.json()["error"]["message"]


def test_list_pages_by_next_link_and_filters_by_created_time(sim: Simulator) -> None:
    api = graph_api(sim)
    newest = max(a["alertCreationTime"] for a in sim.alerts)
    seen: list[dict[str, Any]] = []
    body = api.get("/v1.0/security/alerts_v2", {"$top": "5", "$orderby": "createdDateTime asc"}).json()
    while True:
        seen.extend(body["value"])
        if "@odata.nextLink" not in body:
            break
        body = api.get(body["@odata.nextLink"]).json()
    assert len(seen) == len({a["id"] for a in seen}) == len(sim.alerts)
    only = api.get("/v1.0/security/alerts_v2", {"$filter": f"createdDateTime ge {newest}"}).json()["value"]
    assert only and all(a["createdDateTime"] >= newest for a in only)


def test_graph_has_its_own_limit_of_150_a_minute_with_retry_after(make_sim: Any) -> None:
    sim = make_sim(time_scale=1.0)
    api = graph_api(sim)
    statuses = [api.get("/v1.0/security/alerts_v2", {"$top": "1"}).status_code
                for _ in range(GRAPH_RATE_PER_MINUTE + 1)]
    assert statuses[:GRAPH_RATE_PER_MINUTE] == [200] * GRAPH_RATE_PER_MINUTE
    last = api.get("/v1.0/security/alerts_v2", {"$top": "1"})
    assert last.status_code == 429 and float(last.headers["Retry-After"]) > 0
    assert last.json()["error"]["code"] == "TooManyRequests"
    # The Defender API's own budget is untouched.
    assert api.get("/api/alerts", {"$top": "1"}, token=sim.issue_token()).status_code == 200
