"""Processes that open a brand-new store and rate budget at the same instant
all succeed: no "database is locked" reaches a user."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest


def _open_both(state: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    from connector.http.ratelimit import RateBudget
    from connector.runtime.store import Store

    barrier.wait(10)
    try:
        store = Store.open(Path(state))
        with store.transaction() as conn:
            store.upsert_container(conn, "da637308392288907382_-880718168")
        RateBudget(Path(state) / "rate_budget.sqlite", [(100, 60.0)]).try_acquire()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{exc.__class__.__name__}: {exc}")


@pytest.mark.parametrize("trial", range(6))
def test_simultaneous_first_opens(tmp_path: Path, trial: int) -> None:
    ctx = multiprocessing.get_context("fork")
    workers = 6
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_open_both, args=(str(tmp_path / "state"), barrier, results))
             for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert outcomes == ["ok"] * workers
    assert oct((tmp_path / "state" / "store.sqlite").stat().st_mode & 0o777) == "0o600"


@pytest.mark.skipif(not hasattr(__import__("sqlite3"), "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE"),
                    reason="Python before 3.12 cannot ask SQLite to keep the WAL at close")
def test_the_wal_file_outlives_a_connection_and_its_data_is_read_back(tmp_path: Path) -> None:
    from connector.sqlite_db import open_database

    path = tmp_path / "db.sqlite"
    conn = open_database(path, timeout=5, setup=lambda c: c.execute("CREATE TABLE t (x)"))
    conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    assert (tmp_path / "db.sqlite-wal").exists()  # not created and deleted by every process
    again = open_database(path, timeout=5)
    assert again.execute("SELECT x FROM t").fetchall() == [(1,)]
    again.close()
    assert (tmp_path / "db.sqlite-wal").exists()
