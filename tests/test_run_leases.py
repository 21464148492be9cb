"""Playbook runs carry a lease: a run another live process executes is never
executed again, a run whose owner is gone is resumed, and a manual run is
never resumed by the watcher. A worker renews its lease before every step."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from connector.http import auth
from connector.runtime.engine import load_shipped_playbooks, run_playbook, triggered_run_id
from connector.runtime.poller import parse_since
from connector.runtime.store import Store, new_owner, owner_alive, utc_now
from mde_simulator import EXAMPLE_ALERT_ID, EXAMPLE_FILE
from tests.conftest import make_config, make_context
from tests.test_poller import make_poller


@pytest.fixture(autouse=True)
def fresh_apps() -> Any:
    auth._apps.clear()
    yield
    auth._apps.clear()


def _dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _owner(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:feedbeef"


def _queue_one_run(sim: Any, config: Any) -> tuple[Any, str]:
    """A poller and the id of one triggered run it queued but did not start
    (as if it crashed right after the alert's transaction, which leased the
    run to it: the lease is left to a process that is gone)."""
    poller = make_poller(config)
    poller.poll_once(since=parse_since("1s"))
    alert = sim.add_alert(files=[EXAMPLE_FILE])
    poller._run_pending = lambda run: None  # type: ignore[method-assign]
    assert poller.poll_once().processed == [alert["id"]]
    run_id = triggered_run_id("triage_new_alert", alert["id"])
    assert poller.store.playbook_run(run_id)["owner"] == poller.owner
    with poller.store.transaction() as conn:
        conn.execute("UPDATE playbook_runs SET owner = ? WHERE id = ?", (_owner(_dead_pid()), run_id))
    return poller, run_id


def _lease(store: Store, run_id: str, owner: str, status: str = "running") -> None:
    assert store.claim_playbook_run(run_id, owner)
    with store.transaction() as conn:
        conn.execute("UPDATE playbook_runs SET status = ? WHERE id = ?", (status, run_id))


def test_a_run_leased_by_another_live_process_is_not_executed_again(fresh_simulator: Any, tmp_path: Path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller, run_id = _queue_one_run(sim, config)
    # Another live process on this host (our parent) is executing it.
    _lease(poller.store, run_id, _owner(os.getppid()))
    other = make_poller(config)
    report = other.poll_once()
    assert report.playbook_runs == []
    row = other.store.playbook_run(run_id)
    assert row["status"] == "running" and row["attempts"] == 0 and row["owner"] == _owner(os.getppid())
    # Once its lease has expired (no heartbeat), the run is resumed.
    with other.store.transaction() as conn:
        conn.execute("UPDATE playbook_runs SET lease_expires = ? WHERE id = ?", ("2000-01-01T00:00:00.000Z", run_id))
    resumed = other.poll_once()
    assert [(r["id"], r["status"]) for r in resumed.playbook_runs] == [(run_id, "success")]
    assert other.store.playbook_run(run_id)["owner"] == other.owner


def test_a_run_whose_owner_process_is_gone_is_resumed_before_its_lease_expires(
        fresh_simulator: Any, tmp_path: Path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller, run_id = _queue_one_run(sim, config)
    _lease(poller.store, run_id, _owner(_dead_pid()))
    assert poller.store.playbook_run(run_id)["lease_expires"] > utc_now()
    report = make_poller(config).poll_once()
    assert [(r["id"], r["status"]) for r in report.playbook_runs] == [(run_id, "success")]


def test_a_manual_run_is_never_resumed_by_watch(fresh_simulator: Any, tmp_path: Path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller = make_poller(config)
    playbook = {p.name: p for p in load_shipped_playbooks()}["triage_new_alert"]
    with poller.store.transaction() as conn:
        poller.store.save_playbook_run(conn, "manual-1", playbook=playbook.name, container=EXAMPLE_ALERT_ID,
                                       trigger="manual", status="running", record={}, started_at=utc_now(),
                                       finished_at=None)
    _lease(poller.store, "manual-1", _owner(_dead_pid()))
    report = poller.poll_once(since=parse_since("1s"))
    assert report.playbook_runs == []
    assert poller.store.playbook_run("manual-1")["status"] == "running"


def test_a_worker_renews_its_lease_before_every_step_and_releases_it_at_the_end(sim_config: Any) -> None:
    context = make_context(sim_config)
    playbook = {p.name: p for p in load_shipped_playbooks()}["triage_new_alert"]
    store = context.store
    renewals: list[str] = []
    original = store.renew_lease

    def spy(run_id: str, owner: str, *args: Any) -> bool:
        renewals.append(run_id)
        assert store.playbook_run(run_id)["owner"] == owner
        return bool(original(run_id, owner, *args))

    store.renew_lease = spy
    owner = new_owner()
    run_id = triggered_run_id(playbook, EXAMPLE_ALERT_ID)
    record = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context, trigger="new_alert",
                          trigger_alert={"id": EXAMPLE_ALERT_ID}, run_id=run_id, owner=owner)
    assert record["status"] == "success"
    assert renewals == [run_id] * len(playbook.order)
    row = store.playbook_run(run_id)
    assert row["owner"] == owner and row["lease_expires"] is None and row["heartbeat"]


def test_a_run_whose_lease_was_taken_over_stops_before_its_next_step(sim_config: Any) -> None:
    context = make_context(sim_config)
    playbook = {p.name: p for p in load_shipped_playbooks()}["triage_new_alert"]
    store = context.store
    run_id = triggered_run_id(playbook, EXAMPLE_ALERT_ID)
    thief = _owner(os.getppid())

    def progress(message: str) -> None:
        if message.startswith("step files"):  # after the first step, another process takes the run over
            with store.transaction() as conn:
                conn.execute("UPDATE playbook_runs SET owner = ? WHERE id = ?", (thief, run_id))

    context.progress = progress
    record = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context, trigger="new_alert",
                          trigger_alert={"id": EXAMPLE_ALERT_ID}, run_id=run_id, owner=new_owner())
    assert [s["id"] for s in record["steps"]] == ["files"]
    assert "taken over" in record["message"]
    assert store.playbook_run(run_id)["owner"] == thief


def test_a_run_stopped_between_steps_stays_queued(sim_config: Any) -> None:
    context = make_context(sim_config)
    playbook = {p.name: p for p in load_shipped_playbooks()}["triage_new_alert"]
    stop = threading.Event()
    context.progress = lambda message: stop.set()  # SIGTERM arrives during the first step
    run_id = triggered_run_id(playbook, EXAMPLE_ALERT_ID)
    owner = new_owner()
    record = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context, trigger="new_alert",
                          trigger_alert={"id": EXAMPLE_ALERT_ID}, run_id=run_id, owner=owner, stop=stop)
    assert record["status"] == "pending" and [s["id"] for s in record["steps"]] == ["files"]
    assert "stopped before step 'decide'" in record["message"]
    row = context.store.playbook_run(run_id)
    assert row["status"] == "pending" and row["lease_expires"] is None
    assert [r["id"] for r in context.store.pending_playbook_runs()] == [run_id]


def test_a_manual_run_stopped_between_steps_is_marked_stopped(sim_config: Any) -> None:
    context = make_context(sim_config)
    playbook = {p.name: p for p in load_shipped_playbooks()}["investigate_alert_files"]
    stop = threading.Event()
    stop.set()
    record = run_playbook(playbook, alert_id=EXAMPLE_ALERT_ID, context=context, trigger="manual",
                          owner=new_owner(), stop=stop)
    assert record["status"] == "stopped" and record["steps"] == []
    assert context.store.playbook_run(record["id"])["status"] == "stopped"


def test_owner_liveness() -> None:
    assert owner_alive(new_owner())
    assert owner_alive(_owner(os.getppid()))
    assert not owner_alive(_owner(_dead_pid()))
    assert owner_alive(f"another-host:{_dead_pid()}:feedbeef")  # only its lease expiry can tell


def _old_store(state: Path) -> None:
    """A store as written before run attempts and leases existed."""
    state.mkdir(mode=0o700)
    old = sqlite3.connect(state / "store.sqlite")
    old.executescript(
        "CREATE TABLE playbook_runs (id TEXT PRIMARY KEY, playbook TEXT NOT NULL, container TEXT NOT NULL,"
        " trigger TEXT NOT NULL, status TEXT NOT NULL, record TEXT NOT NULL, started_at TEXT NOT NULL,"
        " finished_at TEXT);"
        "INSERT INTO playbook_runs VALUES ('triage_new_alert:a1', 'triage_new_alert', 'a1', 'new_alert',"
        " 'running', '{}', '2026-11-27T07:00:00.000Z', NULL);")
    old.commit()
    old.close()


def test_a_store_made_before_leases_gains_the_columns_and_keeps_its_runs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _old_store(state)
    store = Store.open(state)
    row = store.playbook_run("triage_new_alert:a1")
    assert row["attempts"] == 0 and row["owner"] is None and row["lease_expires"] is None
    assert store.claim_playbook_run("triage_new_alert:a1", new_owner())
    assert [r["id"] for r in store.pending_playbook_runs()] == ["triage_new_alert:a1"]


def test_a_run_that_raises_before_the_engine_ends_it_releases_its_lease(fresh_simulator: Any, tmp_path: Path) -> None:
    sim = fresh_simulator()
    config = make_config(sim.connector_config(), tmp_path / "state")
    poller, run_id = _queue_one_run(sim, config)
    broken = make_poller(config)

    def no_context() -> Any:
        raise RuntimeError("the context could not be built")

    broken.context_factory = no_context
    report = broken.poll_once()
    assert [(r["id"], r["status"]) for r in report.playbook_runs] == [(run_id, "failed")]
    assert "RuntimeError" in report.playbook_runs[0]["error"]
    row = broken.store.playbook_run(run_id)
    assert row["owner"] == broken.owner and row["lease_expires"] is None
    # Another process may take it at once.
    assert make_poller(config).poll_once().playbook_runs == [{"id": run_id, "status": "success"}]


def _open_old(state: str, barrier: Any, results: Any) -> None:
    barrier.wait(10)
    try:
        Store.open(Path(state)).playbook_run("triage_new_alert:a1")
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{exc.__class__.__name__}: {exc}")


@pytest.mark.parametrize("trial", range(3))
def test_processes_opening_an_old_store_at_once_all_migrate_it(tmp_path: Path, trial: int) -> None:
    import multiprocessing

    state = tmp_path / "state"
    _old_store(state)
    ctx = multiprocessing.get_context("fork")
    workers = 6
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_open_old, args=(str(state), barrier, results)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [results.get(timeout=5) for _ in procs] == ["ok"] * workers
