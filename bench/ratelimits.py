"""Rate-limited throughput: draining a backlog, and four processes sharing
the budget, against the simulator enforcing Defender's documented limits
(100 calls a minute, 1,500 an hour per app) on a sped-up clock.

How a rate is measured against a sliding-window limit of L calls per window
W (W = 60 s / time_scale in real seconds). Everything is read from the
simulator's request log, i.e. when the server received each call:

- a backlog of N calls whose first and last arrivals are ``span`` apart
  occupies ``span + W`` of the limit's time (the last call's window must
  pass before a next batch could start), so its achieved rate is
  ``N / (span + W)``. No client can beat ``L / W`` by this measure: N calls
  under the limit need ``span >= (ceil(N / L) - 1) * W``. The fastest
  possible client (bursts of L at 0, W, 2W...) scores exactly ``L / W``
  when N is a multiple of L.
- for processes running for a fixed time, calls are counted in k complete
  windows ``[t0, t0 + k W)`` from the first arrival t0; at most L fit in
  each, so the rate ``count / (k W)`` is at most ``L / W``.

N stays under the hourly limit, so the minute window is the binding one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH, REPO, SimProcess, log, subprocess_env
from bench.inproc import SleepLog, make_context

PER_MINUTE = 100
PER_HOUR = 1500


def documented_limits(time_scale: float) -> dict[str, Any]:
    return {"rate_per_minute": PER_MINUTE, "rate_per_hour": PER_HOUR, "time_scale": time_scale}


def _api(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((r for r in entries if r["path"].startswith("/api/")), key=lambda r: r["started"])


def drain(sim: SimProcess, alerts: int, time_scale: float) -> dict[str, Any]:
    """Run get_alert_related_files on each of ``alerts`` new alerts, in one
    process, as fast as the shared budget lets it."""
    if alerts > PER_HOUR:
        raise ValueError("the drain must stay under the hourly limit")
    window = 60.0 / time_scale
    ids = sim.add_alerts(alerts)
    from connector.actions import run_action

    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        waits = SleepLog()
        context = make_context(sim.config, Path(tmp) / "state", time_scale, waits)
        context.client.tokens.token()  # sign-in is not rate limited
        sim.reset_log()
        sim.reset_rate_limits()
        log(f"drain: {alerts} alerts at {PER_MINUTE}/min, {PER_HOUR}/h, time scale {time_scale:g}"
            f" (a minute is {window:g} s)")
        failed: dict[str, int] = {}
        t0 = time.perf_counter()
        for alert_id in ids:
            result = run_action("get_alert_related_files", {"alert_id": alert_id}, context)
            if not result.ok:
                kind = (result.error or {}).get("kind", "error")
                failed[kind] = failed.get(kind, 0) + 1
        wall = time.perf_counter() - t0
        stored = len(context.store.containers())
        context.store.close()
    calls = _api(sim.requests())
    ok = [r for r in calls if r["status"] == 200]
    span = calls[-1]["started"] - calls[0]["started"] if calls else 0.0
    limit = PER_MINUTE / window
    achieved = len(calls) / (span + window) if calls else 0.0
    ideal_span = (math.ceil(alerts / PER_MINUTE) - 1) * window
    return {
        "alerts": alerts,
        "time_scale": time_scale,
        "window_s": window,
        "limit_calls_per_s": round(limit, 3),
        "api_calls": len(calls),
        "ok_200": len(ok),
        "responses_429": sum(1 for r in calls if r["status"] == 429),
        "other_statuses": sorted({r["status"] for r in calls} - {200, 429}),
        "failed_actions": failed,
        "containers_stored": stored,
        "span_s": round(span, 3),
        "ideal_span_s": round(ideal_span, 3),
        "wall_s": round(wall, 3),
        "achieved_calls_per_s": round(achieved, 3),
        "ratio_to_limit": round(achieved / limit, 4),
        "budget_sleeps": len(waits.waits),
    }


def shared(sim: SimProcess, processes: int, windows: int, time_scale: float) -> dict[str, Any]:
    """``processes`` workers with one state directory run actions in a loop
    for ``windows`` limit windows; their summed rate against the limit."""
    window = 60.0 / time_scale
    if PER_MINUTE * (windows + 1) > PER_HOUR:
        raise ValueError("the run must stay under the hourly limit")
    ids = sim.add_alerts(50)
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp_name:
        tmp = Path(tmp_name)
        state = tmp / "state"
        # The state directory exists before the workers start, as in a
        # deployment: four processes creating the budget file at the same
        # instant can fail on 'PRAGMA journal_mode=WAL' (database is locked),
        # a start-up race reported in NOTES.md, not what this figure measures.
        ready = make_context(sim.config, state, time_scale)
        ready.client.budget._fd()  # creates the budget file, takes no slot
        ready.client.budget.close()
        ready.store.close()
        sim.reset_log()
        sim.reset_rate_limits()
        start_at = time.monotonic() + 4.0  # every worker imported and signed in by then
        stop_at = start_at + windows * window + 0.25 * window
        procs = []
        for n in range(processes):
            spec = {"config": sim.config, "state_dir": str(state), "alert_ids": ids, "offset": n * 7,
                    "time_scale": time_scale, "start_at": start_at, "stop_at": stop_at}
            path = tmp / f"worker-{n}.json"
            path.write_text(json.dumps(spec), encoding="utf-8")
            procs.append(subprocess.Popen([sys.executable, str(BENCH / "budget_worker.py"), str(path)], cwd=REPO,
                                          env=subprocess_env(),
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        log(f"shared: {processes} processes, {windows} windows of {window:g} s at {PER_MINUTE}/min")
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=120 + windows * window)
            if proc.returncode != 0:
                raise RuntimeError(f"budget_worker failed: {err[-800:]}")
            reports.append(json.loads(out))
    calls = _api(sim.requests())
    limit = PER_MINUTE / window
    t0 = calls[0]["started"] if calls else 0.0
    in_windows = [r for r in calls if r["started"] < t0 + windows * window]
    total_rate = len(in_windows) / (windows * window)
    c0 = min((r["acquired"][0] for r in reports if r["acquired"]), default=0.0)
    per_process = []
    for r in reports:
        n = sum(1 for t in r["acquired"] if c0 <= t < c0 + windows * window)
        per_process.append({"calls_in_windows": n, "calls_per_s": round(n / (windows * window), 3),
                            "ok_actions": r["ok"], "failed_actions": r["failures"]})
    return {
        "processes": processes,
        "time_scale": time_scale,
        "window_s": window,
        "windows": windows,
        "limit_calls_per_s": round(limit, 3),
        "api_calls": len(calls),
        "calls_in_windows": len(in_windows),
        "responses_429": sum(1 for r in calls if r["status"] == 429),
        "other_statuses": sorted({r["status"] for r in calls} - {200, 429}),
        "sum_calls_per_s": round(total_rate, 3),
        "ratio_to_limit": round(total_rate / limit, 4),
        "per_process": per_process,
        "sum_of_per_process_calls_per_s": round(sum(p["calls_per_s"] for p in per_process), 3),
        "token_requests": sum(r["token_requests"] for r in reports),
    }
