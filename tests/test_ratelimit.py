"""The shared rate budget: sliding windows, shared across processes, no sleeping."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from connector.errors import RateLimitedError
from connector.ratelimit import RateBudget


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
