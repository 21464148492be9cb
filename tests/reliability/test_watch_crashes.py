"""``watch`` under SIGKILL: killed at random points, at least 20 times, while
the simulator keeps creating alerts. After one final clean ``watch --once``
every alert is in exactly one container, with all its artifacts, exactly one
triage run (successful) and exactly one triage note: nothing lost, nothing
repeated.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.artifacts import build_artifacts
from connector.runtime.store import Store
from tests.reliability.support import cli_env, count, run_cli

KILLS = 20
SEED = 20240611
pytestmark = pytest.mark.slow


def _watch(config: Path, log: Path) -> subprocess.Popen[bytes]:
    count("processes")
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "connector", "watch", "--interval", "1", "--workers", "3",
             "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=err, env=cli_env())


def _state(store: Store) -> tuple[int, int]:
    """(containers, playbook runs not finished)"""
    return len(store.containers()), len(store.pending_playbook_runs())


def test_watch_killed_at_random_points_loses_and_repeats_nothing(tmp_path: Path) -> None:
    from mde_simulator import Simulator, SimulatorOptions

    rng = random.Random(SEED)
    options = SimulatorOptions(seed=11, live_interval=0.25, rate_per_minute=1_000_000, rate_per_hour=10_000_000)
    with Simulator(tmp_path / "sim", options) as sim:
        state = tmp_path / "state"
        # The connector's own rate budget on a fast clock: the kills, not the
        # budget, are under test here.
        config = sim.write_config(tmp_path / "mde.json", state_dir=str(state), rate_time_scale=0.01)
        log = tmp_path / "watch.log"
        store: Store | None = None
        kills = interrupted = 0
        before = (0, 0)
        while kills < KILLS:
            proc = _watch(config, log)
            time.sleep(rng.uniform(0.05, 2.5))  # a real process is killed mid-flight
            if proc.poll() is not None:
                pytest.fail(f"watch exited by itself with {proc.returncode}: {log.read_text()[-2000:]}")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            count("kill points")
            store = store or Store.open(state)
            after = _state(store)
            # Count the kills that interrupted work: new containers since the
            # last kill, or playbook runs left pending or running.
            interrupted += after[0] > before[0] or after[1] > 0
            before = after

        snapshot = sim.alerts
        final = run_cli("watch", "--once", "--config", str(config), "--output", "json", timeout=120)
        assert final.returncode == 0, final.stderr[-2000:]
        assert final.stderr.count("Traceback") == 0 and "locked" not in final.stderr

        assert store is not None
        assert interrupted >= KILLS // 4, "the kills hardly ever hit the watcher at work"
        known = {a["id"] for a in sim.alerts}
        containers = [c["alert_id"] for c in store.containers()]
        assert len(containers) == len(set(containers))
        assert set(containers) <= known
        assert store.pending_playbook_runs() == []
        for alert in snapshot:
            alert_id = alert["id"]
            container = store.container(alert_id)
            assert container is not None, f"alert {alert_id} was lost"
            expected = build_artifacts(alert_id, sim.files_of(alert_id)).artifacts
            assert store.artifacts(alert_id) == expected, alert_id
            runs = store.playbook_runs(alert_id)
            assert [(r["playbook"], r["status"]) for r in runs] == [("triage_new_alert", "success")], runs
            assert len(container["notes"]) == 1, container["notes"]
        count("alerts checked after kills", len(snapshot))
