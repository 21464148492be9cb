"""The one severity scale and the one alert -> container mapping."""

from __future__ import annotations

from connector import artifacts, severity
from connector.severity import container_fields


def test_the_scale_orders_severities_and_unknown_values_rank_lowest() -> None:
    assert [severity.rank(s) for s in severity.SCALE] == [0, 1, 2, 3]
    assert severity.rank("critical") == severity.rank(None) == severity.rank(["high"]) == 0
    assert severity.highest(["low", "high", "medium"]) == "high"
    assert severity.highest([]) is None
    assert artifacts.SEVERITY_ORDER is severity.SCALE


def test_normalise_accepts_any_case_and_refuses_values_off_the_scale() -> None:
    assert severity.normalise(" High ") == "high"
    assert severity.normalise("UnSpecified") is None
    assert severity.normalise("unknown") is None
    assert severity.normalise(3) is None


def test_a_defender_alert_becomes_its_container() -> None:
    fields = container_fields("da1_1", {"title": "Odd binary", "severity": "Medium", "status": "InProgress"})
    assert (fields.name, fields.severity, fields.status) == ("Odd binary", "medium", "inprogress")


def test_missing_or_unknown_fields_get_the_defaults() -> None:
    fields = container_fields("da1_2", {"severity": "UnSpecified"})
    assert (fields.name, fields.severity, fields.status) == ("Defender alert da1_2", "informational", "new")
    assert container_fields("g1", {"severity": "unknown", "status": "new"}).severity == "informational"


def test_a_long_title_is_cut() -> None:
    assert len(container_fields("da1_3", {"title": "x" * 500}).name) == severity.NAME_LIMIT
