"""Four processes running actions and one watcher share the rate budget and
the store: the simulator sees no more calls than its limits allow in any
window and answers no 429 to the connector, every action run succeeds and is
in the store, and no "database is locked" reaches a user.

Correctness only: each process does a fixed amount of work, however long the
machine takes; how much traffic that makes in a given time is bench/'s
business (bench/ratelimits.py), never a test's."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mde_simulator import (
    DUPLICATES_ALERT_ID,
    EMPTY_ALERT_ID,
    EXAMPLE_ALERT_ID,
    MALWARE_ALERT_ID,
    SPARSE_ALERT_ID,
)
from tests.reliability.support import cli_env, count

LOOP = Path(__file__).with_name("action_loop.py")
PER_MINUTE = 20
TIME_SCALE = 30.0  # a "minute" lasts 2 s
WINDOW = 60.0 / TIME_SCALE
RUNS_PER_PROCESS = 8  # 32 runs against a budget of 20 per "minute": the budget must make them wait
ALERTS = [EXAMPLE_ALERT_ID, MALWARE_ALERT_ID, DUPLICATES_ALERT_ID, SPARSE_ALERT_ID, EMPTY_ALERT_ID]


def test_rate_time_scale_shortens_the_budget_windows(tmp_path: Path) -> None:
    # The manifest: "0.01 makes a minute last 0.6 s".
    from connector.http.client import DefenderClient
    from tests.conftest import make_config

    config = make_config({"tenant_id": "t", "client_id": "c", "client_secret": "s", "rate_time_scale": 0.01},
                         tmp_path / "state")
    client = DefenderClient.from_config(config, tokens=object(), session=object())
    assert [round(w, 6) for _, w in client.budget.limits] == [0.6, 36.0]


def _max_in_window(times: list[float], window: float) -> int:
    best = start = 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.slow
def test_four_action_processes_and_a_watcher_share_one_budget(tmp_path: Path) -> None:
    from mde_simulator import Simulator, SimulatorOptions

    options = SimulatorOptions(seed=13, rate_per_minute=PER_MINUTE, rate_per_hour=100_000, time_scale=TIME_SCALE,
                               live_interval=0.5)
    with Simulator(tmp_path / "sim", options) as sim:
        state = tmp_path / "state"
        config = sim.write_config(tmp_path / "mde.json", state_dir=str(state), rate_per_minute=PER_MINUTE,
                                  rate_time_scale=1 / TIME_SCALE, retry_budget_seconds=120)
        env = cli_env()
        watcher = subprocess.Popen([sys.executable, "-m", "connector", "watch", "--interval", "1",
                                    "--lookback", "1m", "--config", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        loops = [subprocess.Popen([sys.executable, str(LOOP), str(config), str(RUNS_PER_PROCESS),
                                   *ALERTS[i:] + ALERTS[:i]],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for i in range(4)]
        count("processes", 5)
        outcomes = []
        for proc in loops:
            # A safety net against a hang, never the thing tested.
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-2000:]
            outcomes.append(json.loads(out))
        watcher.send_signal(signal.SIGTERM)
        _, watch_err = watcher.communicate(timeout=120)

        records = sim.requests
        api = sorted(r.started for r in records if r.path.startswith("/api/"))
        statuses = [r.status for r in records if r.path.startswith("/api/")]

    # Nothing lost: every run the processes made succeeded.
    assert [len(o["codes"]) for o in outcomes] == [RUNS_PER_PROCESS] * 4
    assert all(code == 0 for o in outcomes for code in o["codes"]), outcomes
    everything = watch_err + "".join(e for o in outcomes for e in o["errors"])
    assert "locked" not in everything and "Traceback" not in everything, everything[-2000:]
    assert watcher.returncode == 143, watch_err[-2000:]  # stopped by SIGTERM, as the shell reports it

    # Never over the limit, as the API saw it.
    assert 429 not in statuses, f"the connector provoked {statuses.count(429)} 429s"
    assert _max_in_window(api, WINDOW) <= PER_MINUTE

    # ... and every run is in the store, with its artifacts.
    ran = Counter(alert for o in outcomes for alert in o["alerts"])
    conn = sqlite3.connect(state / "store.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = Counter(dict(conn.execute(
            "SELECT container, COUNT(*) FROM action_runs WHERE action = 'get_alert_related_files'"
            " AND status = 'success' GROUP BY container").fetchall()))
        assert all(stored[alert] >= n for alert, n in ran.items()), (ran, stored)
        with_files = {row[0] for row in conn.execute("SELECT DISTINCT container FROM artifacts")}
        assert set(ALERTS) - {EMPTY_ALERT_ID} <= with_files
    finally:
        conn.close()
    count("actions in parallel processes", sum(ran.values()))
    count("API calls under a shared budget", len(api))
