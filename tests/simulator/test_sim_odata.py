"""GET /api/alerts: OData $filter, $orderby, $top/$skip and @odata.nextLink
paging, with shared timestamps at the watermark; the tick parser."""

from __future__ import annotations

from collections import Counter

import pytest

from mde_simulator.odata import ODataError, compile_filter, format_ticks, parse_ticks
from tests.simulator.sim_helpers import Api


def all_pages(api: Api, params: dict[str, str]) -> list[dict]:
    """Follow @odata.nextLink until the last page; returns every alert."""
    response = api.get("/api/alerts", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    alerts = list(body["value"])
    pages = 1
    while "@odata.nextLink" in body:
        link = body["@odata.nextLink"]
        assert link.startswith(f"{api.sim.api_base_url}/api/alerts?") and "$skip=" in link
        body = api.get(link).json()
        alerts += body["value"]
        pages += 1
        assert pages < 100
    return alerts


def ticks(alert: dict, field: str = "alertCreationTime") -> int:
    return parse_ticks(alert[field])


def shared_creation_time(api: Api) -> str:
    counts = Counter(a["alertCreationTime"] for a in api.sim.alerts)
    shared = [stamp for stamp, n in counts.items() if n >= 2]
    assert shared, "the seeded data must contain alerts sharing a timestamp"
    return shared[0]


def test_context_and_default_listing(api: Api) -> None:
    body = api.get("/api/alerts").json()
    assert body["@odata.context"] == f"{api.sim.api_base_url}/api/$metadata#Alerts"
    assert len(body["value"]) == len(api.sim.alerts)
    assert "@odata.nextLink" not in body
    assert all(a["evidence"] == [] for a in body["value"])


def test_ge_includes_and_gt_excludes_a_shared_timestamp(api: Api) -> None:
    stamp = shared_creation_time(api)
    at = [a["id"] for a in api.sim.alerts if a["alertCreationTime"] == stamp]
    ge = {a["id"] for a in all_pages(api, {"$filter": f"alertCreationTime ge {stamp}"})}
    gt = {a["id"] for a in all_pages(api, {"$filter": f"alertCreationTime gt {stamp}"})}
    assert set(at) <= ge
    assert not set(at) & gt
    assert ge - gt == set(at)
    expected_gt = {a["id"] for a in api.sim.alerts if ticks(a) > parse_ticks(stamp)}
    assert gt == expected_gt


def test_lt_le_and_fraction_digits(api: Api) -> None:
    stamp = shared_creation_time(api)
    at = {a["id"] for a in api.sim.alerts if a["alertCreationTime"] == stamp}
    le = {a["id"] for a in all_pages(api, {"$filter": f"alertCreationTime le {stamp}"})}
    lt = {a["id"] for a in all_pages(api, {"$filter": f"alertCreationTime lt {stamp}"})}
    assert le - lt == at
    whole_seconds = stamp.split(".")[0] + "Z"  # no fractional part: earlier or equal
    ge_whole = {a["id"] for a in all_pages(api, {"$filter": f"alertCreationTime ge {whole_seconds}"})}
    assert at <= ge_whole
    millis = stamp[:23] + "Z"  # 3 fractional digits
    assert parse_ticks(millis) <= parse_ticks(stamp)


def test_window_filter_combined_with_and(api: Api) -> None:
    alerts = sorted(api.sim.alerts, key=ticks)
    low, high = alerts[5]["alertCreationTime"], alerts[20]["alertCreationTime"]
    got = all_pages(api, {"$filter": f"alertCreationTime ge {low} and alertCreationTime lt {high}"})
    expected = {a["id"] for a in alerts if parse_ticks(low) <= ticks(a) < parse_ticks(high)}
    assert {a["id"] for a in got} == expected and expected


def test_status_and_severity_equality(api: Api) -> None:
    got = all_pages(api, {"$filter": "status eq 'New' and severity eq 'High'"})
    expected = {a["id"] for a in api.sim.alerts if a["status"] == "New" and a["severity"] == "High"}
    assert {a["id"] for a in got} == expected and expected
    resolved = all_pages(api, {"$filter": "status eq 'Resolved'"})
    assert resolved and all(a["status"] == "Resolved" and a["resolvedTime"] for a in resolved)


def test_last_update_time_filter(api: Api) -> None:
    alerts = sorted(api.sim.alerts, key=lambda a: ticks(a, "lastUpdateTime"))
    stamp = alerts[len(alerts) // 2]["lastUpdateTime"]
    got = all_pages(api, {"$filter": f"lastUpdateTime ge {stamp}", "$orderby": "lastUpdateTime asc"})
    expected = [a for a in alerts if ticks(a, "lastUpdateTime") >= parse_ticks(stamp)]
    assert {a["id"] for a in got} == {a["id"] for a in expected}
    assert [ticks(a, "lastUpdateTime") for a in got] == sorted(ticks(a, "lastUpdateTime") for a in got)


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_orderby(api: Api, direction: str) -> None:
    got = all_pages(api, {"$orderby": f"alertCreationTime {direction}"})
    values = [ticks(a) for a in got]
    assert values == sorted(values, reverse=direction == "desc")


def test_top_skip_paging_returns_every_alert_once(api: Api) -> None:
    since = sorted(ticks(a) for a in api.sim.alerts)[3]
    params = {"$filter": f"alertCreationTime ge {format_ticks(since)}", "$orderby": "alertCreationTime asc",
              "$top": "7"}
    first = api.get("/api/alerts", params=params).json()
    assert len(first["value"]) == 7 and "$skip=7" in first["@odata.nextLink"]
    got = all_pages(api, params)
    ids = [a["id"] for a in got]
    assert len(ids) == len(set(ids))
    assert set(ids) == {a["id"] for a in api.sim.alerts if ticks(a) >= since}
    assert [ticks(a) for a in got] == sorted(ticks(a) for a in got)
    # $skip by hand gives the same slices as the links
    manual = api.get("/api/alerts", params={**params, "$skip": "7"}).json()["value"]
    assert [a["id"] for a in manual] == ids[7:14]


def test_expand_evidence(api: Api) -> None:
    got = api.get("/api/alerts", params={"$expand": "evidence", "$top": "5"}).json()["value"]
    assert any(a["evidence"] for a in got)
    for alert in got:
        for evidence in alert["evidence"]:
            assert evidence["entityType"] == "File" and "md5" not in evidence


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "alertCreationTime gt"},
        {"$filter": "alertCreationTime gt yesterday"},
        {"$filter": "nosuchfield eq 'x'"},
        {"$filter": "status eq 'New' and"},
        {"$filter": "alertCreationTime gt 2026-13-45T00:00:00Z"},
        {"$top": "10001"},
        {"$top": "-1"},
        {"$skip": "x"},
        {"$orderby": "nosuchfield asc"},
        {"$orderby": "alertCreationTime sideways"},
    ],
)
def test_unparseable_query_is_400_odata_error(api: Api, params: dict[str, str]) -> None:
    response = api.get("/api/alerts", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "ODataError" and error["message"] and error["target"]


def test_tick_round_trip_and_offsets() -> None:
    stamp = "2026-11-27T07:00:00.1234567Z"
    assert format_ticks(parse_ticks(stamp)) == stamp
    assert parse_ticks("2026-11-27T07:00:00Z") == parse_ticks("2026-11-27T07:00:00.0000000Z")
    assert parse_ticks("2026-11-27T08:00:00+01:00") == parse_ticks("2026-11-27T07:00:00Z")
    assert parse_ticks("2026-11-27T07:00:00.123Z") + 4567 == parse_ticks(stamp)
    assert parse_ticks("2026-11-27T07:00:00") == parse_ticks("2026-11-27T07:00:00Z")


def test_filter_grammar_or_not_parentheses() -> None:
    alert = {"status": "New", "severity": "High", "incidentId": 42, "resolvedTime": None}
    assert compile_filter("(status eq 'Resolved' or severity eq 'high') and not (incidentId gt 50)")(alert)
    assert compile_filter("resolvedTime eq null and incidentId eq 42")(alert)
    with pytest.raises(ODataError):
        compile_filter("status eq 'New' xor severity eq 'High'")
