"""The new-alert poller: every alert exactly once, shared timestamps, paging,
crash recovery of pending playbook runs, and the watch command."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connector.errors import ConfigError
from connector.http import auth
from connector.http.client import DefenderClient
from connector.runtime.engine import load_shipped_playbooks, triggered_run_id
from connector.runtime.poller import Poller, canonical_time, parse_since
from connector.runtime.store import Store
from tests.conftest import NoSleep, make_config, make_context


@pytest.fixture(autouse=True)
def fresh_apps():
    auth._apps.clear()
    yield
    auth._apps.clear()


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def make_poller(config, *, playbooks=None, page_size=1000, **kwargs) -> Poller:
    store = Store.open(config.state_dir)
    client = DefenderClient.from_config(config, sleep=NoSleep().sleep)
    pbs = load_shipped_playbooks() if playbooks is None else playbooks

    def context():
        return make_context(config, sleeper=NoSleep())

    return Poller(client=client, store=store, context_factory=context if pbs else None, playbooks=pbs,
                  page_size=page_size, **kwargs)


def test_canonical_time_keeps_microsoft_precision() -> None:
    assert canonical_time("2026-11-27T07:00:00.1234567Z") == "2026-11-27T07:00:00.1234567Z"
    assert canonical_time("2026-11-27T07:00:00Z") == "2026-11-27T07:00:00.0000000Z"
    assert canonical_time("2026-11-27T07:00:00.12Z") == "2026-11-27T07:00:00.1200000Z"
    assert canonical_time("2026-11-27T07:00:00.123456789+00:00") == "2026-11-27T07:00:00.1234567Z"
    assert canonical_time("27/11/2026") is None and canonical_time(None) is None
    # Lexical order is time order for canonical strings.
    assert canonical_time("2026-11-27T07:00:00.9Z") < canonical_time("2026-11-27T07:00:01Z")


def test_since_accepts_durations_and_times() -> None:
    now = datetime(2026, 11, 27, 7, 0, tzinfo=timezone.utc)
    assert parse_since("6h", now) == "2026-11-27T01:00:00.0000000Z"
    assert parse_since("2026-11-26T00:00:00Z") == "2026-11-26T00:00:00.0000000Z"
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday")


def test_first_poll_takes_every_alert_once_with_small_pages(fresh_simulator, tmp_path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller = make_poller(config, playbooks=[], page_size=7, lookback=timedelta(days=3))
    report = poller.poll_once()
    ids = [a["id"] for a in sim.alerts]
    assert sorted(report.processed) == sorted(ids)
    assert len(report.processed) == len(set(report.processed))
    # Small pages mean several list calls, each through nextLink.
    assert len([r for r in sim.requests if r.path == "/api/alerts"]) >= len(ids) // 7
    # A second poll finds nothing new even though 'ge' returns the watermark's alerts again.
    again = poller.poll_once()
    assert again.processed == [] and again.skipped_seen >= 1
    assert {c["alert_id"] for c in poller.store.containers()} == set(ids)


def test_alerts_sharing_the_watermark_timestamp_are_not_lost(fresh_simulator, tmp_path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller = make_poller(config, playbooks=[], lookback=timedelta(days=3))
    first = poller.poll_once()
    mark = first.checkpoint["watermark"]
    stamp = datetime.strptime(mark[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    # Two new alerts at exactly the watermark's timestamp, one just after it.
    same_a = sim.add_alert(alertCreationTime=mark)
    same_b = sim.add_alert(alertCreationTime=mark)
    later = sim.add_alert(alertCreationTime=iso(stamp + timedelta(seconds=1)))
    second = poller.poll_once()
    assert sorted(second.processed) == sorted([same_a["id"], same_b["id"], later["id"]])
    assert poller.poll_once().processed == []


def test_new_alerts_trigger_one_triage_run_each(fresh_simulator, tmp_path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller = make_poller(config)
    poller.poll_once(since=parse_since("1s"))  # start from now: only alerts added below
    from mde_simulator import EXAMPLE_FILE

    new = [sim.add_alert(files=[EXAMPLE_FILE]) for _ in range(3)]
    report = poller.poll_once()
    assert sorted(report.processed) == sorted(a["id"] for a in new)
    assert sorted(r["id"] for r in report.playbook_runs) == sorted(
        triggered_run_id("triage_new_alert", a["id"]) for a in new)
    assert all(r["status"] == "success" for r in report.playbook_runs)
    for alert in new:
        runs = poller.store.playbook_runs(container=alert["id"])
        assert len(runs) == 1 and runs[0]["status"] == "success"
        assert len(poller.store.artifacts(alert["id"])) == 1


def test_pending_runs_left_by_a_crash_are_resumed(fresh_simulator, tmp_path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller = make_poller(config)
    poller.poll_once(since=parse_since("1s"))
    from mde_simulator import EXAMPLE_FILE

    alert = sim.add_alert(files=[EXAMPLE_FILE])
    # Simulate a crash right after the container + pending run committed
    # (that transaction leased the run to the poller, whose process is gone).
    poller._run_pending = lambda run: None  # type: ignore[method-assign]
    assert poller.poll_once().processed == [alert["id"]]
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with poller.store.transaction() as conn:
        conn.execute("UPDATE playbook_runs SET owner = ?", (f"{socket.gethostname()}:{gone.pid}:dead",))
    pending = poller.store.pending_playbook_runs()
    assert [p["id"] for p in pending] == [triggered_run_id("triage_new_alert", alert["id"])]
    # A restarted poller resumes it; the alert itself is not fetched again.
    restarted = make_poller(config)
    report = restarted.poll_once()
    assert report.processed == []
    assert [r["id"] for r in report.playbook_runs] == [triggered_run_id("triage_new_alert", alert["id"])]
    assert restarted.store.pending_playbook_runs() == []
    assert len(restarted.store.playbook_runs(container=alert["id"])) == 1


def test_last_update_time_mode_and_filter_sent(fresh_simulator, tmp_path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller = make_poller(config, playbooks=[], time_field="lastUpdateTime", lookback=timedelta(hours=1))
    poller.poll_once()
    query = next(r.query for r in sim.requests if r.path == "/api/alerts")
    assert query["$filter"].startswith("lastUpdateTime ge ")
    assert query["$orderby"] == "lastUpdateTime asc"


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ConfigError, match="alertCreationTime"):
        Poller(client=None, store=None, context_factory=None, playbooks=[], time_field="createdAt")


def test_watch_once_json_reports_alerts_and_checkpoint(fresh_simulator, tmp_path, capsys) -> None:
    from connector.cli.main import main

    sim = fresh_simulator()
    cfg = sim.write_config(tmp_path / "c.json", state_dir=str(tmp_path / "state"))
    code = main(["watch", "--once", "--config", str(cfg), "--output", "json", "--lookback", "3d"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["processed_count"] == len(sim.alerts)
    assert report["checkpoint"]["watermark"] == max(canonical_time(a["alertCreationTime"]) for a in sim.alerts)
    assert len(report["playbook_runs"]) == len(sim.alerts)
    code = main(["watch", "--once", "--config", str(cfg), "--output", "json"])
    assert json.loads(capsys.readouterr()[0])["processed_count"] == 0


def test_an_alert_that_shows_up_late_behind_the_watermark_is_taken(fresh_simulator, tmp_path) -> None:
    # Defender can make an alert visible after later ones: its creation time
    # is already behind the watermark when the poller first sees it.
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller = make_poller(config, playbooks=[], lookback=timedelta(days=3))
    mark = poller.poll_once().checkpoint["watermark"]
    stamp = datetime.strptime(mark[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    late = sim.add_alert(alertCreationTime=iso(stamp - timedelta(minutes=3)))
    too_late = sim.add_alert(alertCreationTime=iso(stamp - timedelta(minutes=30)))
    report = poller.poll_once()
    assert report.processed == [late["id"]]
    assert too_late["id"] not in {c["alert_id"] for c in poller.store.containers()}
    assert poller.poll_once().processed == []
    # The overlap is configurable; a wider one reaches the older late alert.
    wide = make_poller(config, playbooks=[], overlap=timedelta(hours=1))
    assert wide.poll_once().processed == [too_late["id"]]


def test_a_triggered_run_that_failed_is_retried_on_later_polls_up_to_a_cap(fresh_simulator, tmp_path) -> None:
    from mde_simulator import EXAMPLE_FILE, ScriptedResponse

    sim = fresh_simulator()
    config = make_config(sim.connector_config(max_retries=0), tmp_path / "state")
    poller = make_poller(config, max_attempts=3)
    poller.poll_once(since=parse_since("1s"))
    alert = sim.add_alert(files=[EXAMPLE_FILE])
    run_id = triggered_run_id("triage_new_alert", alert["id"])
    # The files call fails (a transient 503) on the first attempt.
    sim.script(ScriptedResponse(503, path_contains=f"/api/alerts/{alert['id']}/files"))
    first = poller.poll_once()
    assert first.processed == [alert["id"]]
    assert [r["status"] for r in first.playbook_runs] == ["failed"]
    # The next poll retries it (nothing new to fetch) and it succeeds.
    second = poller.poll_once()
    assert second.processed == [] and [r["id"] for r in second.playbook_runs] == [run_id]
    assert poller.store.playbook_run(run_id)["status"] == "success"
    assert len(poller.store.artifacts(alert["id"])) == 1

    # A run that keeps failing stops after max_attempts.
    broken = sim.add_alert(files=[EXAMPLE_FILE])
    sim.script(ScriptedResponse(503, path_contains=f"/api/alerts/{broken['id']}/files", times=10))
    attempts = [len(poller.poll_once().playbook_runs) for _ in range(4)]
    assert attempts == [1, 1, 1, 0]
    row = poller.store.playbook_run(triggered_run_id("triage_new_alert", broken["id"]))
    assert row["status"] == "failed" and row["attempts"] == 3
    sim.clear_script()
