"""The shared rate budget: sliding windows, shared across processes, no sleeping."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from connector.errors import RateLimitedError
from connector.http.ratelimit import RateBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(tmp_path: Path, t: FakeTime, per_minute: int = 100, per_hour: int = 1500) -> RateBudget:
    return RateBudget(tmp_path / "rate.sqlite", [(per_minute, 60), (per_hour, 3600)], clock=t.clock, sleep=t.sleep)


def test_the_documented_minute_limit_allows_100_calls_then_waits_for_the_oldest(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t)
    for _ in range(100):
        assert b.try_acquire() == 0.0
        t.now += 0.1  # 100 calls over 10 s
    wait = b.try_acquire()
    # The first call was at +0 s; now is +10 s; its slot frees at +60 s.
    assert wait == pytest.approx(50.0, abs=0.01)
    b.acquire()
    assert t.slept and t.slept[0] == pytest.approx(50.005, abs=0.01)


def test_the_hour_limit_binds_after_1500_calls(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t)
    for _ in range(1500):
        b.acquire()
        t.now += 0.61  # just under 100/min
    assert b.try_acquire() > 60  # an hour window, not a minute, now decides
    # And never more than 100 in any 60 s window on the way.
    assert all(s < 1 for s in t.slept)


def test_acquire_refuses_to_wait_past_the_deadline(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t, per_minute=2)
    b.acquire()
    b.acquire()
    with pytest.raises(RateLimitedError) as info:
        b.acquire(deadline=t.now + 5)
    assert "rate budget" in str(info.value) and info.value.exit_code == 1
    assert t.slept == []


def test_time_scale_shrinks_the_windows(tmp_path: Path) -> None:
    t = FakeTime()
    b = RateBudget(tmp_path / "r.sqlite", [(5, 60)], clock=t.clock, sleep=t.sleep, time_scale=60)
    for _ in range(5):
        b.acquire()
    assert 0.9 < b.try_acquire() <= 1.0  # a "minute" is one second


def _take(path: str, n: int, out: multiprocessing.Queue[int]) -> None:
    b = RateBudget(Path(path), [(1000, 3600)])
    taken = 0
    for _ in range(n):
        if b.try_acquire() == 0:
            taken += 1
    out.put(taken)


def test_processes_share_one_budget(tmp_path: Path) -> None:
    # Four processes race for 1000 slots with 400 tries each: exactly 1000 win.
    path = str(tmp_path / "shared.sqlite")
    RateBudget(Path(path), [(1000, 3600)]).try_acquire()  # one slot used up front
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_take, args=(path, 400, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sum(q.get(timeout=5) for _ in procs) == 999


# -- the clock steps back (NTP) ----------------------------------------------------


def test_a_backward_clock_step_blocks_at_most_one_window_not_the_step(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t)
    for _ in range(100):
        assert b.try_acquire() == 0.0
        t.now += 0.1
    t.now += 120  # the minute has long passed: a slot is free
    assert b.try_acquire() == 0.0
    t.now -= 3600  # NTP steps the clock back an hour
    wait = b.try_acquire()
    # How much real time passed since the last call is unknown: the budget
    # assumes none (errs late), so the newest calls count one more minute at
    # most, never the hour of the step.
    assert wait <= 60.0
    t.now += wait + 0.01
    assert b.try_acquire() == 0.0


def test_after_a_backward_step_of_an_hour_nothing_blocks_when_the_last_minute_was_quiet(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t)
    for _ in range(100):  # a full minute...
        assert b.try_acquire() == 0.0
        t.now += 0.1
    t.now += 90
    assert b.try_acquire() == 0.0  # ...long past, and one call since
    t.now -= 3600
    assert b.try_acquire() == 0.0


def test_after_a_backward_step_calls_keep_their_spacing_and_the_limit_holds(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t, per_minute=3, per_hour=1000)
    for gap in (0, 20, 20):  # calls at +0, +20, +40
        t.now += gap
        assert b.try_acquire() == 0.0
    t.now -= 1800
    # The newest call counts from now; the oldest left 40 s before it.
    assert b.try_acquire() == pytest.approx(20.0, abs=0.01)
    t.now += 20.01
    assert b.try_acquire() == 0.0
    assert b.try_acquire() > 0  # three in the minute again: never more


def test_a_small_backward_step_within_the_tolerance_changes_nothing(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t, per_minute=2)
    b.try_acquire()
    t.now += 10
    b.try_acquire()
    t.now -= 0.5
    assert b.try_acquire() == pytest.approx(50.5, abs=0.01)


# -- slots not settled: the request's process was killed ----------------------------


def test_an_unsettled_slot_counts_until_its_hold_ends(tmp_path: Path) -> None:
    t = FakeTime()
    path = tmp_path / "rate.sqlite"
    start = t.now
    RateBudget(path, [(1, 60)], clock=t.clock, sleep=t.sleep, hold=30).try_acquire()  # never settled
    other = RateBudget(path, [(1, 60)], clock=t.clock, sleep=t.sleep, hold=30)
    t.now = start + 61
    # The server may have counted the call as late as start + 30.
    assert other.try_acquire() == pytest.approx(29.0, abs=0.01)


def test_a_settled_slot_counts_from_the_response(tmp_path: Path) -> None:
    t = FakeTime()
    start = t.now
    b = RateBudget(tmp_path / "rate.sqlite", [(1, 60)], clock=t.clock, sleep=t.sleep, hold=30)
    b.try_acquire()
    t.now = start + 2  # the response arrived
    b.settle()
    t.now = start + 61
    assert b.try_acquire() == pytest.approx(1.0, abs=0.01)
    t.now = start + 62.01
    assert b.try_acquire() == 0.0


def _take_and_hang(path: str, now: float, taken: Any) -> None:
    b = RateBudget(Path(path), [(1, 60)], clock=lambda: now, hold=30)
    b.acquire()
    taken.set()
    time.sleep(120)  # "in flight" until killed
    b.settle()


def test_a_process_killed_mid_request_leaves_a_slot_that_errs_late(tmp_path: Path) -> None:
    t = FakeTime()
    path = tmp_path / "rate.sqlite"
    start = t.now
    ctx = multiprocessing.get_context("fork")
    taken = ctx.Event()
    proc = ctx.Process(target=_take_and_hang, args=(str(path), start, taken))
    proc.start()
    try:
        assert taken.wait(60)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    after = RateBudget(path, [(1, 60)], clock=t.clock, sleep=t.sleep, hold=30)
    t.now = start + 61
    assert after.try_acquire() == pytest.approx(29.0, abs=0.01)  # not free at +60: the call may be late
    after.acquire()
    assert t.now == pytest.approx(start + 90, abs=0.1)


# -- the file ---------------------------------------------------------------------


def test_a_budget_file_from_before_slots_recorded_their_start_keeps_counting(tmp_path: Path) -> None:
    t = FakeTime()
    path = tmp_path / "rate.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE calls (t REAL NOT NULL)")
        conn.executemany("INSERT INTO calls (t) VALUES (?)", [(t.now - 10,), (t.now - 5,)])
    conn.close()
    b = RateBudget(path, [(2, 60)], clock=t.clock, sleep=t.sleep)
    assert b.try_acquire() == pytest.approx(50.0, abs=0.01)


def test_taking_and_settling_a_slot_writes_the_file_once_each(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    t = FakeTime()
    b = budget(tmp_path, t)
    b.try_acquire()
    writes: list[int] = []
    real = os.pwrite

    def counting(fd: int, data: bytes, offset: int) -> int:
        writes.append(len(data))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", counting)
    b.try_acquire()
    b.settle()
    assert len(writes) == 2
    t.now += 3600 * 2
    b.try_acquire()  # the old slots leave the file with the same write
    assert len(writes) == 3 and writes[-1] < writes[0]


def _reference_wait(slots: list[float], limits: list[tuple[int, float]], now: float) -> float:
    wait = 0.0
    for limit, window in limits:
        counting = sorted((t for t in slots if t > now - window), reverse=True)
        if len(counting) >= limit:
            wait = max(wait, counting[limit - 1] + window - now)
    return wait


def test_the_answer_equals_counting_every_slot_at_full_occupancy(tmp_path: Path) -> None:
    # A full hour (1,500 slots) with settled and unsettled slots mixed: each
    # answer is what counting every slot in each window gives.
    import random

    rng = random.Random(7)
    t = FakeTime()
    limits = [(100, 60.0), (1500, 3600.0)]
    b = RateBudget(tmp_path / "rate.sqlite", limits, clock=t.clock, sleep=t.sleep, hold=40)
    model: list[float] = []
    for _ in range(2500):
        t.now += rng.uniform(0, 3.0)
        expected = _reference_wait(model, limits, t.now)
        assert b.try_acquire() == pytest.approx(expected, abs=1e-6)
        if expected <= 0:
            model.append(t.now + 40)
            if rng.random() < 0.9:
                t.now += rng.uniform(0, 0.5)
                b.settle()
                model[-1] = t.now


def test_a_torn_file_is_read_as_empty(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t, per_minute=1)
    b.try_acquire()
    assert b.try_acquire() > 0
    with open(b.slots_path, "r+b") as fh:
        fh.truncate(30)
    assert b.try_acquire() == 0.0
    assert b.try_acquire() > 0


def _take_in_child(b: RateBudget, out: Any) -> None:
    out.put(b.try_acquire())


def test_a_slot_taken_in_a_forked_child_counts_for_its_parent(tmp_path: Path) -> None:
    t = FakeTime()
    b = budget(tmp_path, t, per_minute=1)
    parent_fd = b._fd()
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[float] = ctx.Queue()
    proc = ctx.Process(target=_take_in_child, args=(b, out))
    proc.start()
    proc.join(30)
    assert out.get(timeout=5) == 0.0  # the child's slot...
    assert b.try_acquire() > 0  # ...counts for the parent
    assert b._fd() == parent_fd


def test_threads_of_one_process_share_one_budget_exactly(tmp_path: Path) -> None:
    # One descriptor per thread: flock excludes the threads as it does processes.
    import threading

    b = RateBudget(tmp_path / "threads.sqlite", [(500, 3600)])
    taken: list[int] = []

    def take() -> None:
        taken.append(sum(1 for _ in range(200) if b.try_acquire() == 0.0))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(taken) == 500
