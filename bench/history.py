"""What each product commit did to the CLI and warm-latency figures.

    python bench/history.py [--rounds N] [--iterations N] [COMMIT ...]

For each commit, the commit and its parent are checked out into temporary
git worktrees and measured in the same run, interleaved, against the same
simulator:

- CLI: ``python -m connector run get_alert_related_files`` from each tree
  (``PYTHONPATH`` = the tree, bytecode cached as in bench/run.py) and the
  baseline script, round-robin; the rate budget's table is emptied between
  runs (older commits cannot scale the budget's clock through the
  configuration);
- warm latency: ``bench/history_child.py`` in each tree, alternating, each
  reporting run_action's p50 against a bare GET measured in the same child.

Writes ``bench/history.json`` and prints a table. The worktrees are removed
afterwards. Default commits: the performance commits listed in NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH, REPO, SimProcess, cached_access_token, log, subprocess_env, write_config  # noqa: E402

DEFAULT_COMMITS = ["e2c8a0c", "031c1ef", "6f9f6f8", "7895a2b", "558087f", "318d0ff"]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def _reset_budget(state: Path) -> None:
    path = state / "rate_budget.sqlite"
    if path.exists():
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM calls")


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> int:
    t0 = time.perf_counter_ns()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False, timeout=120)
    elapsed = time.perf_counter_ns() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} in {cwd} exited {proc.returncode}: {proc.stderr.decode()[-600:]}")
    return elapsed


def _cli_cmd(config: Path, alert_id: str) -> list[str]:
    return [sys.executable, "-m", "connector", "run", "get_alert_related_files", "--param", f"alert_id={alert_id}",
            "--config", str(config), "--output", "json"]


def measure_pair(sim: SimProcess, parent: Path, child: Path, tmp: Path, rounds: int, iterations: int,
                 alert_id: str) -> dict[str, Any]:
    trees = {"parent": parent, "commit": child}
    setups: dict[str, tuple[list[str], dict[str, str], Path, Path]] = {}
    for name, tree in trees.items():
        state = tmp / f"state-{name}"
        config = write_config(tmp / f"mde-{name}.json", {**sim.config, "state_dir": str(state)})
        env = subprocess_env(PYTHONPATH=str(tree))
        setups[name] = (_cli_cmd(config, alert_id), env, tree, state)
        for _ in range(2):  # token, bytecode, manifest mark
            _reset_budget(state)
            _run(setups[name][0], env, tree)
    url = f"{sim.base_url}/api/alerts/{alert_id}/files"
    base_env = subprocess_env(BENCH_TOKEN=cached_access_token(tmp / "state-parent"))
    baseline = [sys.executable, str(BENCH / "baseline_get.py"), url, sim.ca_bundle]
    samples: dict[str, list[int]] = {"parent": [], "commit": [], "baseline": []}
    for i in range(rounds):
        jobs = [("parent", *setups["parent"]), ("commit", *setups["commit"]),
                ("baseline", baseline, base_env, REPO, None)]
        for name, cmd, env, cwd, state in jobs[i % 3:] + jobs[:i % 3]:
            if state is not None:
                _reset_budget(state)
            samples[name].append(_run(cmd, env, cwd))
    cli = {k: round(statistics.median(v) / 1e6, 2) for k, v in samples.items()}

    latency: dict[str, list[float]] = {"parent": [], "commit": []}
    for rep in range(2):
        for name in ("parent", "commit") if rep % 2 == 0 else ("commit", "parent"):
            spec = tmp / f"latency-{name}.json"
            spec.write_text(json.dumps({"config": sim.config, "state_dir": str(tmp / f"lat-{name}"),
                                        "alert_id": alert_id, "iterations": iterations,
                                        "ca_bundle": sim.ca_bundle}), encoding="utf-8")
            proc = subprocess.run([sys.executable, str(BENCH / "history_child.py"), str(spec)],
                                  env=subprocess_env(PYTHONPATH=str(trees[name])), cwd=trees[name],
                                  capture_output=True, text=True, check=False, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"history_child in {trees[name]}: {proc.stderr[-600:]}")
            out = json.loads(proc.stdout)
            if not out["connector"].startswith(str(trees[name])):
                raise RuntimeError(f"imported {out['connector']}, not the tree {trees[name]}")
            latency[name].append(out["action_p50_ms"] / out["bare_p50_ms"])
    return {
        "cli_p50_ms": cli,
        "cli_ratio": {k: round(cli[k] / cli["baseline"], 3) for k in ("parent", "commit")},
        "cli_delta_ms": round(cli["commit"] - cli["parent"], 2),
        "latency_ratio": {k: round(statistics.median(v), 3) for k, v in latency.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="*", default=DEFAULT_COMMITS)
    parser.add_argument("--rounds", type=int, default=12, help="CLI rounds per pair (default 12)")
    parser.add_argument("--iterations", type=int, default=600, help="latency iterations per child (default 600)")
    parser.add_argument("--output", type=Path, default=BENCH / "history.json")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp_name:
        tmp = Path(tmp_name)
        with SimProcess(tmp / "sim", rate_per_minute=10**9, rate_per_hour=10**9) as sim:
            alert_id = sim.add_alerts(1)[0]
            for commit in args.commits:
                full = _git("rev-parse", commit)
                subject = _git("log", "-1", "--format=%s", full)
                parent, child = tmp / f"{full[:8]}-parent", tmp / f"{full[:8]}"
                _git("worktree", "add", "--detach", str(parent), f"{full}^")
                _git("worktree", "add", "--detach", str(child), full)
                try:
                    log(f"{full[:8]} {subject[:70]}")
                    pair_tmp = tmp / f"run-{full[:8]}"
                    pair_tmp.mkdir()
                    result = measure_pair(sim, parent, child, pair_tmp, args.rounds, args.iterations, alert_id)
                finally:
                    _git("worktree", "remove", "--force", str(parent))
                    _git("worktree", "remove", "--force", str(child))
                results.append({"commit": full[:8], "subject": subject, **result})
                print(f"{full[:8]}  CLI {result['cli_p50_ms']['parent']:7.1f} -> {result['cli_p50_ms']['commit']:7.1f}"
                      f" ms ({result['cli_delta_ms']:+.1f}; baseline {result['cli_p50_ms']['baseline']:.1f})"
                      f"  latency ratio {result['latency_ratio']['parent']:.3f} -> "
                      f"{result['latency_ratio']['commit']:.3f}  {subject[:60]}", flush=True)
    args.output.write_text(json.dumps({"rounds": args.rounds, "iterations": args.iterations, "pairs": results},
                                      indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
