"""One alert never stops ``watch``: hostile alerts are taken in or
quarantined, a store that cannot be written ends one poll with a sentence,
and an alert dated in the future does not drag the watermark along.

The poller reads alerts from a fake client that filters and orders like
Defender's ``$filter=<field> ge X`` / ``$orderby``, so the watermark logic is
exercised exactly; the store is a real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.errors import StoreError
from connector.runtime.poller import MAX_CLOCK_SKEW, Poller, canonical_time
from connector.runtime.store import Store

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=timezone.utc)


def at(minutes: float) -> str:
    """An alert time ``minutes`` after NOW - 1h, in Microsoft's format."""
    stamp = NOW - timedelta(hours=1) + timedelta(minutes=minutes)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def alert(n: int, minutes: float, **fields: Any) -> dict[str, Any]:
    return {"id": f"da63800000000000000_{n}", "title": f"Suspicious activity {n}", "severity": "High",
            "status": "New", "alertCreationTime": at(minutes), **fields}


class FakeDefender:
    """``list_alerts`` as Defender answers it: alerts at or after the
    filter's time, oldest first, in pages. ``fail`` makes the next calls raise."""

    def __init__(self, alerts: list[Any], page_size: int = 3) -> None:
        self.alerts = alerts
        self.page_size = page_size
        self.fail: list[BaseException] = []
        self.queries: list[dict[str, str]] = []

    def list_alerts(self, params: dict[str, str]) -> Iterator[list[Any]]:
        self.queries.append(dict(params))
        if self.fail:
            raise self.fail.pop(0)
        field, _, start = params["$filter"].split(" ", 2)

        def when(item: Any) -> str:
            value = item.get(field) if isinstance(item, dict) else None
            return canonical_time(value) or "" if isinstance(value, str) else ""

        # Defender would not return an alert without the field; the fake keeps
        # the malformed ones (with the filter's time) to hand them to the poller.
        chosen = [a for a in self.alerts if not when(a) or when(a) >= start]
        chosen.sort(key=lambda a: when(a) or start)
        for i in range(0, len(chosen), self.page_size):
            yield chosen[i:i + self.page_size]


def make(tmp_path: Path, alerts: list[Any], **kwargs: Any) -> tuple[Poller, FakeDefender]:
    client = FakeDefender(alerts)
    store = Store.open(tmp_path / "state")
    poller = Poller(client=client, store=store, context_factory=None, playbooks=[], lookback=timedelta(hours=2),
                    now=lambda: NOW, **kwargs)
    return poller, client


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


# -- one alert never stops the poll --------------------------------------------------


def test_lone_surrogates_in_any_field_are_stored_not_fatal(tmp_path: Path) -> None:
    hostile = alert(2, 2, title="evil \ud800 \u202e\x1b[31m", description="\udfff",
                    evidence=[{"fileName": "a\ud83d.exe", "sha1": "\ud800"}], computerDnsName="\ud800host")
    poller, _ = make(tmp_path, [alert(1, 1), hostile, alert(3, 3)])
    report = poller.poll_once()
    assert report.processed == [a["id"] for a in (alert(1, 1), hostile, alert(3, 3))]
    assert report.quarantined == [] and report.errors == []
    stored = poller.store.container(hostile["id"])
    # The JSON copy is lossless; the plain text column holds U+FFFD.
    assert stored["data"]["title"] == hostile["title"]
    assert stored["data"]["evidence"][0]["sha1"] == "\ud800"
    assert stored["name"] == "evil \ufffd \u202e\x1b[31m"
    assert report.checkpoint["watermark"] == at(3)


def test_an_alert_nested_too_deeply_is_quarantined_and_the_poll_goes_on(tmp_path: Path) -> None:
    nested = alert(2, 2, evidence=deep(100_000))
    poller, _ = make(tmp_path, [alert(1, 1), nested, alert(3, 3)])
    report = poller.poll_once()
    assert report.processed == [alert(1, 1)["id"], alert(3, 3)["id"]]
    assert [q["id"] for q in report.quarantined] == [nested["id"]]
    assert "nested too deeply" in report.quarantined[0]["reason"]
    listed = poller.store.quarantined()
    assert [(q["alert_id"], q["attempts"], q["transient"]) for q in listed] == [(nested["id"], 1, False)]
    assert listed[0]["first_seen"] and listed[0]["last_seen"]
    # It is recorded, so the watermark may pass it.
    assert report.checkpoint["watermark"] == at(3)
    assert poller.store.container(nested["id"]) is None


@pytest.mark.parametrize("broken", [
    {"id": 42, "alertCreationTime": at(2)},
    {"id": "", "alertCreationTime": at(2)},
    {"id": "da1_\ud800", "alertCreationTime": at(2)},
    {"id": "da1_2", "alertCreationTime": 20261127},
    {"id": "da1_3", "alertCreationTime": "yesterday"},
    {"id": "da1_4", "alertCreationTime": at(2), "title": deep(50_000)},
    ["not", "an", "object"],
    None,
], ids=["int-id", "empty-id", "surrogate-id", "int-time", "text-time", "deep-title", "list", "null"])
def test_an_alert_with_a_wrong_type_is_quarantined_with_a_one_line_reason(tmp_path: Path, broken: Any) -> None:
    poller, _ = make(tmp_path, [alert(1, 1), broken, alert(3, 3)])
    report = poller.poll_once()
    assert report.processed == [alert(1, 1)["id"], alert(3, 3)["id"]]
    assert len(report.quarantined) == 1 and report.errors == []
    entry = report.quarantined[0]
    assert entry["reason"].isprintable() and "\n" not in entry["reason"]
    assert entry["id"].isprintable()
    assert [q["alert_id"] for q in poller.store.quarantined()] == [entry["id"]]


def test_wrong_types_in_ordinary_fields_do_not_stop_the_alert(tmp_path: Path) -> None:
    odd = alert(2, 2, title=["a", {"b": None}], severity={"level": 3}, status=7, description=float("nan"),
                lastUpdateTime=None, evidence="not a list")
    poller, _ = make(tmp_path, [odd])
    report = poller.poll_once()
    assert report.processed == [odd["id"]]
    stored = poller.store.container(odd["id"])
    assert stored["severity"] == "informational" and stored["status"] == "7"
    assert stored["data"]["description"] is None  # NaN is stored as null


class FailingWrites(Store):
    """A store whose container writes fail for chosen alert ids with
    ``error`` (by default a write lock never granted), ``times`` times each."""

    def __init__(self, path: Path, fail_for: set[str], times: int = 1,
                 error: str = "database is locked") -> None:
        super().__init__(path)
        self.fail_for = {alert_id: times for alert_id in fail_for}
        self.error = error

    def upsert_container(self, conn: Any, alert_id: str, **kwargs: Any) -> bool:
        if self.fail_for.get(alert_id, 0) > 0:
            self.fail_for[alert_id] -= 1
            raise sqlite3.OperationalError(self.error)
        return super().upsert_container(conn, alert_id, **kwargs)


def test_a_store_write_that_fails_quarantines_the_alert_and_a_later_poll_retries_it(tmp_path: Path) -> None:
    victim = alert(2, 2)
    poller, _ = make(tmp_path, [alert(1, 1), victim, alert(3, 3)])
    poller.store = FailingWrites(tmp_path / "state" / "store.sqlite", {victim["id"]})
    first = poller.poll_once()
    assert first.processed == [alert(1, 1)["id"], alert(3, 3)["id"]]
    assert [(q["id"], q["transient"]) for q in first.quarantined] == [(victim["id"], True)]
    assert "database is locked" in first.quarantined[0]["reason"]
    # The next poll takes it in from the quarantine and releases it.
    poller.overlap = timedelta(0)  # not fetched again by the overlap: the quarantine alone brings it back
    second = poller.poll_once()
    assert second.processed == [victim["id"]] and second.quarantined == []
    assert poller.store.container(victim["id"]) is not None
    assert poller.store.quarantined() == []


def test_a_store_write_that_keeps_failing_is_tried_a_bounded_number_of_times(tmp_path: Path) -> None:
    victim = alert(2, 2)
    poller, _ = make(tmp_path, [alert(1, 1), victim], overlap=timedelta(0))
    poller.store = FailingWrites(tmp_path / "state" / "store.sqlite", {victim["id"]}, times=100)
    attempts = [[q["attempts"] for q in poller.poll_once().quarantined] for _ in range(5)]
    assert attempts == [[1], [2], [3], [], []]
    assert [q["attempts"] for q in poller.store.quarantined()] == [3]


# -- a store that cannot be written ends one poll ------------------------------------


def _fill(store: Store, spare_pages: int = 2) -> None:
    conn = store._connect()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages + spare_pages}")


def test_a_full_disk_is_reported_not_hidden_by_a_failing_rollback(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state")
    _fill(store)
    with pytest.raises(StoreError, match="full"), store.transaction() as conn:
        store.upsert_container(conn, "da1_1", data={"blob": "x" * 200_000})
    # The connection is usable again afterwards.
    with store.transaction() as conn:
        store.upsert_container(conn, "da1_2", data={"small": True})
    assert store.container("da1_2") is not None and store.container("da1_1") is None


def test_a_full_disk_ends_the_poll_with_a_sentence_before_the_watermark_passes_the_alert(tmp_path: Path) -> None:
    big = alert(2, 2, description="x" * 200_000)
    poller, client = make(tmp_path, [])
    poller.poll_once()  # the schema and the first checkpoint exist
    _fill(poller.store)
    client.alerts = [alert(1, 1), big, alert(3, 3)]
    report = poller.poll_once()
    assert report.processed == [alert(1, 1)["id"]]
    assert len(report.errors) == 1
    sentence = report.errors[0]
    assert "full" in sentence and big["id"] in sentence and sentence.endswith(".")
    assert "cannot rollback" not in sentence
    assert poller.store.checkpoint(poller.checkpoint_name)["watermark"] == at(1)
    # Space again: the next poll takes the rest in, nothing lost.
    poller.store._connect().execute("PRAGMA max_page_count=1073741823")
    again = poller.poll_once()
    assert again.processed == [big["id"], alert(3, 3)["id"]] and again.errors == []


@pytest.mark.parametrize("error", ["database or disk is full", "disk I/O error",
                                   "attempt to write a readonly database"])
def test_a_store_that_cannot_be_written_at_all_ends_the_poll_instead_of_quarantining(tmp_path: Path,
                                                                                    error: str) -> None:
    victim = alert(2, 2)
    poller, _ = make(tmp_path, [alert(1, 1), victim, alert(3, 3)])
    poller.store = FailingWrites(tmp_path / "state" / "store.sqlite", {victim["id"]}, error=error)
    report = poller.poll_once()
    assert report.processed == [alert(1, 1)["id"]] and report.quarantined == []
    (sentence,) = report.errors
    assert error in sentence and victim["id"] in sentence and sentence.endswith(".")
    assert poller.store.checkpoint(poller.checkpoint_name)["watermark"] == at(1)
    assert poller.store.quarantined() == []
    again = poller.poll_once()  # the store works again: nothing was lost
    assert again.processed == [victim["id"], alert(3, 3)["id"]]


def test_run_forever_goes_on_after_a_poll_that_failed(tmp_path: Path) -> None:
    poller, client = make(tmp_path, [alert(1, 1)])
    client.fail = [StoreError("The store is not writable (database is locked)."), RuntimeError("boom")]
    reports: list[Any] = []

    def on_poll(report: Any) -> None:
        reports.append(report)
        if len(reports) == 3:
            poller.stop_event.set()

    poller.run_forever(0, on_poll)
    assert [len(r.errors) for r in reports] == [1, 1, 0]
    assert "database is locked" in reports[0].errors[0]
    assert "RuntimeError" in reports[1].errors[0] and reports[1].errors[0].endswith(".")
    assert reports[2].processed == [alert(1, 1)["id"]]


def test_a_poll_whose_checkpoint_cannot_be_read_is_a_sentence(tmp_path: Path) -> None:
    poller, client = make(tmp_path, [alert(1, 1)])

    def broken(_name: str) -> Any:
        raise StoreError("The store could not be read (disk I/O error).")

    poller.store.checkpoint = broken  # type: ignore[method-assign]
    report = poller.poll_once()
    assert report.errors == ["The store could not be read (disk I/O error)."]
    assert client.queries == []


# -- future-dated alerts ----------------------------------------------------------------


def test_an_alert_dated_2099_does_not_move_the_watermark_beyond_now_plus_the_skew(tmp_path: Path) -> None:
    future = alert(2, 0, alertCreationTime="2099-01-01T00:00:00Z")
    poller, client = make(tmp_path, [alert(1, 1), future])
    report = poller.poll_once()
    assert report.processed == [alert(1, 1)["id"], future["id"]]
    ceiling = canonical_time((NOW + MAX_CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert report.checkpoint["watermark"] == ceiling
    assert report.implausible_time == [{"id": future["id"], "time": "2099-01-01T00:00:00.0000000Z"}]
    # An alert created afterwards (a little after now) is still taken in;
    # the future one is not taken twice.
    later = alert(3, 61)
    client.alerts.append(later)
    again = poller.poll_once()
    assert again.processed == [later["id"]] and again.implausible_time == []


def test_a_watermark_stored_in_the_future_is_brought_back(tmp_path: Path) -> None:
    poller, _ = make(tmp_path, [alert(1, 1)])
    with poller.store.transaction() as conn:
        poller.store.set_checkpoint(conn, poller.checkpoint_name,
                                    {"watermark": "2099-01-01T00:00:00.0000000Z",
                                     "floor": "2099-01-01T00:00:00.0000000Z"})
    now_alert = alert(5, 60)
    poller.client.alerts.append(now_alert)
    report = poller.poll_once()
    assert now_alert["id"] in report.processed


def test_watch_output_json_has_the_quarantine_and_implausible_time_keys(tmp_path: Path) -> None:
    poller, _ = make(tmp_path, [alert(1, 1, evidence=deep(100_000)),
                                alert(2, 2, alertCreationTime="2099-01-01T00:00:00Z")])
    out = poller.poll_once().to_dict()
    text = json.dumps(out)
    back = json.loads(text)
    assert [q["id"] for q in back["quarantined"]] == [alert(1, 1)["id"]]
    assert [i["id"] for i in back["implausible_time"]] == [alert(2, 2)["id"]]
    for key in ("processed", "processed_count", "skipped_already_seen", "playbook_runs", "checkpoint", "errors"):
        assert key in back


# -- the CLI: watch output and 'quarantine list' ----------------------------------------


def _hostile_page(now: datetime) -> bytes:
    """A page of /api/alerts as raw JSON text: a lone surrogate escape, an id
    of the wrong type, and an alert dated 2099."""
    stamp = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return (
        '{"value":['
        '{"id":"da638000000000000001_1","title":"evil \\ud800 \\u202e","severity":"High",'
        f'"alertCreationTime":"{stamp}"}},'
        f'{{"id":42,"title":"numeric id","alertCreationTime":"{stamp}"}},'
        '{"id":"da638000000000000001_3","title":"from the future","alertCreationTime":"2099-01-01T00:00:00Z"}'
        "]}"
    ).encode()


def test_watch_reports_quarantined_and_implausible_alerts_and_quarantine_list_shows_them(
        fresh_simulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main
    from connector.http import auth
    from mde_simulator import ScriptedResponse

    auth._apps.clear()
    sim = fresh_simulator()
    cfg = sim.write_config(tmp_path / "c.json", state_dir=str(tmp_path / "state"))
    sim.script(ScriptedResponse(200, body=_hostile_page(datetime.now(timezone.utc)), path_contains="/api/alerts?"))
    code = main(["watch", "--once", "--no-playbooks", "--config", str(cfg), "--output", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["processed"] == ["da638000000000000001_1", "da638000000000000001_3"]
    assert len(report["quarantined"]) == 1
    assert report["quarantined"][0]["id"].startswith("(no usable id; alertCreationTime 20")
    assert report["implausible_time"] == [{"id": "da638000000000000001_3", "time": "2099-01-01T00:00:00.0000000Z"}]
    assert "2099" not in report["checkpoint"]["watermark"]
    assert "Traceback" not in err
    lines = err.splitlines()
    assert any("was quarantined" in line and "quarantine list" in line for line in lines), err
    assert any("implausible alertCreationTime 2099-01-01" in line for line in lines), err
    assert all(line.isprintable() for line in lines)

    assert main(["quarantine", "list", "--config", str(cfg), "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr()[0])
    assert [(q["alert_id"], q["attempts"]) for q in listed] == [(report["quarantined"][0]["id"], 1)]
    assert "no usable id" in listed[0]["reason"]
    assert main(["quarantine", "list", "--state-dir", str(tmp_path / "state")]) == 0
    table = capsys.readouterr()[0]
    assert "no usable id" in table and "1 quarantined alert(s)." in table


def test_quarantine_list_without_a_store_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    assert main(["quarantine", "list", "--state-dir", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr()[1]
    assert err.startswith("mde-connector: There is no store in") and "Traceback" not in err


def test_a_related_file_with_lone_surrogates_is_stored_with_its_artifacts(
        fresh_simulator: Any, tmp_path: Path) -> None:
    from connector.actions import run_action
    from connector.http import auth
    from mde_simulator import EXAMPLE_ALERT_ID, EXAMPLE_FILE, ScriptedResponse
    from tests.conftest import make_config, make_context

    auth._apps.clear()
    sim = fresh_simulator()
    hostile = {**EXAMPLE_FILE, "fileName": "evil\ud800.exe", "signer": "\udfff Corp \u202e", "issuer": "\ud800"}
    body = json.dumps({"value": [hostile]}, ensure_ascii=True).encode()  # \ud800 as JSON escapes
    sim.script(ScriptedResponse(200, body=body, path_contains=f"/api/alerts/{EXAMPLE_ALERT_ID}/files"))
    context = make_context(make_config(sim.connector_config(), tmp_path / "state"))
    result = run_action("get_alert_related_files", {"alert_id": EXAMPLE_ALERT_ID}, context)
    assert result.ok, result.message
    stored = context.store.artifacts(EXAMPLE_ALERT_ID)
    assert stored == result.artifacts  # lossless through the JSON column
    assert any("\udfff Corp" in json.dumps(a, ensure_ascii=False) for a in stored)
    assert [r["status"] for r in context.store.action_runs()] == ["success"]


# -- any alert at all ---------------------------------------------------------------------

_hostile_text = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["\ud800", "\udfff", "\x1b[2J", "\u202e", "{{trigger.alert.id}}", "<script>", ""])
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | _hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_hostile_text, inner, max_size=3),
    max_leaves=8,
)
_times = st.sampled_from([at(1), at(59), "2099-01-01T00:00:00Z", "2026-11-27T06:00:00.123456789Z"]) | _values
_alerts = st.fixed_dictionaries(
    {"id": st.sampled_from(["da1_1", "da1_2", "da1_3"]) | _hostile_text | _values, "alertCreationTime": _times},
    optional={"title": _values, "severity": _values, "status": _values, "evidence": _values,
              "lastUpdateTime": _times},
) | _values


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hostile=st.lists(_alerts, max_size=4))
def test_any_alert_is_taken_in_or_quarantined_and_the_poll_goes_on(tmp_path_factory: pytest.TempPathFactory,
                                                                  hostile: list[Any]) -> None:
    from connector.text import dumps_output

    good = alert(9, 30)
    poller, _ = make(tmp_path_factory.mktemp("any"), [*hostile, good])
    report = poller.poll_once()
    assert report.errors == []
    assert good["id"] in report.processed
    handled = len(report.processed) + len(report.quarantined) + report.skipped_seen + report.skipped_quarantined
    assert handled == len(hostile) + 1
    ceiling = canonical_time((NOW + MAX_CLOCK_SKEW).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert report.checkpoint["watermark"] <= ceiling
    assert all(q["reason"].isprintable() and q["id"].isprintable() for q in report.quarantined)
    json.loads(dumps_output(report.to_dict()))  # what watch --output json prints
    listed = {q["alert_id"] for q in poller.store.quarantined()}
    assert {q["id"] for q in report.quarantined} <= listed


def test_a_page_nested_too_deeply_to_decode_ends_the_poll_with_one_sentence(
        fresh_simulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main
    from connector.http import auth
    from mde_simulator import ScriptedResponse

    auth._apps.clear()
    sim = fresh_simulator()
    cfg = sim.write_config(tmp_path / "c.json", state_dir=str(tmp_path / "state"))
    body = b'{"value":[{"id":"da1_1","evidence":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    sim.script(ScriptedResponse(200, body=body, path_contains="/api/alerts?"))
    code = main(["watch", "--once", "--no-playbooks", "--config", str(cfg), "--lookback", "3d"])
    out, err = capsys.readouterr()
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("mde-connector:")]
    assert "nested too deeply" in line and line.endswith(".") and "Traceback" not in err
    # The watermark did not move: the next poll takes the alerts in.
    assert main(["watch", "--once", "--no-playbooks", "--config", str(cfg), "--output", "json"]) == 0
    assert json.loads(capsys.readouterr()[0])["processed_count"] == len(sim.alerts)
