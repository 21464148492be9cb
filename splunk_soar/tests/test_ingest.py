"""The ingestion pieces on their own: quarantine, clean values, the poll state."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import pytest
from src import ingest
from src.models import ingest_settings

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


class Client:
    """Two pages of alerts, ascending, as Defender serves them."""

    def __init__(self, alerts: list[dict[str, Any]]) -> None:
        self.alerts = alerts
        self.queries: list[dict[str, str]] = []

    def list_alerts(self, params: dict[str, str]) -> Any:
        self.queries.append(dict(params))
        yield self.alerts[:2]
        yield self.alerts[2:]

    def alert_files(self, alert_id: str) -> list[dict[str, Any]]:
        return []


def alert(n: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"da6383_{n}", "title": f"alert {n}", "severity": "Low",
            "alertCreationTime": f"2026-12-01T07:{n:02d}:00.1234567Z", **fields}


def run_poll(client: Client, state: dict[str, Any], make_container: Any = dict, **kw: Any) -> tuple[list[Any], Any]:
    outcome = ingest.PollOutcome()
    items = list(ingest.poll(client=client, state=state, settings=ingest_settings({}), manual=False,
                             max_containers=None, max_artifacts=None, make_container=make_container,
                             make_artifact=dict, outcome=outcome, log=lambda m: None, now=lambda: NOW, **kw))
    return items, outcome


def test_an_alert_that_cannot_become_a_container_is_quarantined_and_the_rest_ingested() -> None:
    def make_container(record: dict[str, Any]) -> dict[str, Any]:
        if record["source_data_identifier"] == "da6383_2":
            raise ValueError("the platform refuses this record")
        return record

    state: dict[str, Any] = {}
    items, outcome = run_poll(Client([alert(1), alert(2), alert(3)]), state, make_container)
    sdis = [i["source_data_identifier"] for i in items if "label" not in i]
    assert sdis == ["da6383_1", "da6383_3"]
    assert outcome.quarantined == ["da6383_2"]
    assert "da6383_2" in state["mde_poller"]["quarantine"]
    assert state["mde_poller"]["checkpoints"]["poller:alertCreationTime"]["watermark"].startswith("2026-12-01T07:03")
    again, _ = run_poll(Client([alert(1), alert(2), alert(3)]), state)
    assert again == []  # quarantined alerts are not retried in a loop


def test_the_poll_asks_for_ascending_order_with_the_overlap() -> None:
    client = Client([alert(1)])
    state: dict[str, Any] = {"mde_poller": {"checkpoints": {"poller:alertCreationTime": {
        "watermark": "2026-12-01T07:30:00.0000000Z", "floor": "2026-11-30T00:00:00.0000000Z"}}}}
    run_poll(client, state)
    assert client.queries[0]["$filter"] == "alertCreationTime ge 2026-12-01T07:20:00.0000000Z"
    assert client.queries[0]["$orderby"] == "alertCreationTime asc"


def test_the_state_is_written_only_after_the_last_container_was_taken() -> None:
    state: dict[str, Any] = {}
    outcome = ingest.PollOutcome()
    items = ingest.poll(client=Client([alert(1), alert(2)]), state=state, settings=ingest_settings({}), manual=False,
                        max_containers=None, max_artifacts=None, make_container=dict, make_artifact=dict,
                        outcome=outcome, log=lambda m: None, now=lambda: NOW)
    next(items)
    assert state == {}
    list(items)
    assert "mde_poller" in state


def test_clean_replaces_what_the_platform_refuses() -> None:
    value = ingest.clean({"t\ud800": ["a\x00b", math.nan, math.inf, "\u202eok", {"n": 1.5}]})
    assert value == {"t\ufffd": ["a\ufffdb", None, None, "\u202eok", {"n": 1.5}]}


def test_a_failed_transaction_leaves_the_poll_state_as_it_was() -> None:
    store = ingest.PollState({"checkpoints": {"c": {"watermark": "w1"}}, "seen": {"p": {"a": "s1"}}})
    with pytest.raises(RuntimeError), store.transaction():
        store.mark_seen(None, "p", "b", "s2")
        store.mark_seen(None, "p", "a", "s3")
        store.set_checkpoint(None, "c", {"watermark": "w2"})
        store.upsert_container(None, "b", name="B", data={"id": "b"})
        raise RuntimeError("power cut")
    assert store.to_dict() == {"checkpoints": {"c": {"watermark": "w1"}}, "seen": {"p": {"a": "s1"}},
                               "quarantine": {}}
    assert store.taken == []
