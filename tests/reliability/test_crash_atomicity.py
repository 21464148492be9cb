"""One transaction per action: a process killed (SIGKILL) between the HTTP
response and the commit leaves nothing of the result in the store, one killed
after the commit leaves all of it, and the next run completes it exactly once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connector.artifacts import build_artifacts
from connector.runtime.store import Store
from tests.reliability.support import EXAMPLE, cli_env, count, run_cli

DRIVER = Path(__file__).with_name("crash_driver.py")


def _killed_run(point: str, config: Path) -> subprocess.CompletedProcess[str]:
    count("processes")
    count("kill points")
    return subprocess.run(
        [sys.executable, str(DRIVER), point, "--", "run", "get_alert_related_files", "--param",
         f"alert_id={EXAMPLE}", "--config", str(config), "--output", "json"],
        capture_output=True, text=True, env=cli_env(), timeout=60)


def _integrity(state: Path) -> str:
    conn = sqlite3.connect(state / "store.sqlite")
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize("point", ["before-save", "mid-transaction"])
def test_killed_before_the_commit_leaves_nothing(sim: Any, tmp_path: Path, point: str) -> None:
    state = tmp_path / "state"
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(state))
    proc = _killed_run(point, config)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout == ""  # the result was never printed

    assert _integrity(state) == "ok"
    store = Store.open(state)
    assert store.container(EXAMPLE) is None
    assert store.artifacts() == []
    assert store.action_runs() == []

    again = run_cli("run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}", "--config", str(config))
    assert again.returncode == 0, again.stderr
    expected = build_artifacts(EXAMPLE, sim.files_of(EXAMPLE)).artifacts
    assert store.artifacts(EXAMPLE) == expected
    assert [r["status"] for r in store.action_runs()] == ["success"]


def test_killed_after_the_commit_keeps_everything_once(sim: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(state))
    proc = _killed_run("after-commit", config)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    assert _integrity(state) == "ok"
    store = Store.open(state)
    expected = build_artifacts(EXAMPLE, sim.files_of(EXAMPLE)).artifacts
    assert store.artifacts(EXAMPLE) == expected
    assert store.container(EXAMPLE)["artifact_count"] == len(expected)
    assert [r["status"] for r in store.action_runs()] == ["success"]

    again = run_cli("run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert store.artifacts(EXAMPLE) == expected  # upserted, not added twice
    assert len([c for c in store.containers() if c["alert_id"] == EXAMPLE]) == 1
