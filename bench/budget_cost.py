"""What one rate-budget call costs at production occupancy, for each way of
keeping the budget: the SQLite table with two write transactions per call
(as it was), the same with one transaction per call, and the slot file under
``flock`` (what the connector uses).

Production occupancy: Defender's limits (100 a minute, 1,500 an hour) on a
clock that advances 2.41 s per call, so that the hour window holds ~1,490
slots and no call waits; ``fill`` calls bring the file to that state before
the measured ones. Each call is ``try_acquire()`` then ``settle()`` (the
response arrived 0.2 s later, on the same clock), timed apart. The variants
take turns call by call, so machine noise hits each alike.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.budget_sqlite import SqliteBudget, SqliteOneTransactionBudget
from bench.common import log, percentile
from connector.http.ratelimit import RateBudget

LIMITS = [(100, 60.0), (1500, 3600.0)]
STEP = 2.41  # seconds between calls: the hour window stays just under 1,500
HOLD = 40.0  # a request's longest life with the default 30 s timeout


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _us(samples: list[int]) -> dict[str, float]:
    us = [s / 1000 for s in samples]
    return {"p50_us": round(percentile(us, 50), 1), "p90_us": round(percentile(us, 90), 1),
            "p99_us": round(percentile(us, 99), 1)}


def run(calls: int, fill: int = 1600) -> dict[str, Any]:
    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        variants: dict[str, Any] = {
            "sqlite_two_transactions": SqliteBudget(Path(tmp) / "a" / "b.sqlite", LIMITS, clock=clock, hold=HOLD),
            "sqlite_one_transaction": SqliteOneTransactionBudget(Path(tmp) / "b" / "b.sqlite", LIMITS, clock=clock,
                                                                 hold=HOLD),
            "slot_file": RateBudget(Path(tmp) / "c" / "b.sqlite", LIMITS, clock=clock, hold=HOLD),
        }
        for path in (Path(tmp) / d for d in "abc"):
            path.mkdir(mode=0o700)
        acquire_ns: dict[str, list[int]] = {name: [] for name in variants}
        settle_ns: dict[str, list[int]] = {name: [] for name in variants}
        waits = dict.fromkeys(variants, 0)
        log(f"budget: {fill} calls to fill the hour, then {calls} measured per variant")
        perf = time.perf_counter_ns
        for i in range(fill + calls):
            clock.now += STEP
            for name, budget in variants.items():
                t0 = perf()
                wait = budget.try_acquire()
                t1 = perf()
                clock.now += 0.2
                budget.settle()
                t2 = perf()
                clock.now -= 0.2
                if wait > 0:
                    waits[name] += 1
                if i >= fill:
                    acquire_ns[name].append(t1 - t0)
                    settle_ns[name].append(t2 - t1)
        occupancy = len(variants["slot_file"]._load(variants["slot_file"]._fd()).t)
        for budget in variants.values():
            budget.close()
    out: dict[str, Any] = {"calls": calls, "slots_in_hour_window": occupancy, "variants": {}}
    for name in variants:
        both = [a + s for a, s in zip(acquire_ns[name], settle_ns[name], strict=True)]
        out["variants"][name] = {"acquire": _us(acquire_ns[name]), "settle": _us(settle_ns[name]),
                                 "acquire_and_settle": _us(both), "waits": waits[name]}
    best = min(out["variants"], key=lambda n: out["variants"][n]["acquire_and_settle"]["p50_us"])
    out["winner"] = best
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000), indent=2))
