"""The 100,000-file alert: one CLI run against a plain script, same run.

``python bench/large100k.py [--files N] [--rounds R] [--json OUT]``

The simulator (its own process) serves ``HUGE_ALERT_ID`` with N generated
files (default 100,000), warmed before timing. Each round, interleaved:

- **script**: ``bench/baseline_get.py`` (requests GET of the same URL, decode,
  ``json.dumps(..., indent=2)`` to stdout), token from the environment;
- **first run**: ``python -m connector run get_alert_related_files --param
  alert_id=... --output json`` into a store without that alert (the store
  file is removed before, the token cache kept);
- **re-run**: the same command again, the alert unchanged in the store.

Wall time is measured around the process; peak RSS is the child's
``ru_maxrss`` from ``os.wait4``, CPU time (user + system) from the same
call: on a loaded machine a longer process is preempted more, so the CPU
ratio is reported beside the wall ratio. stdout goes to a file (a pipe reader would
be measured too). Prints medians and ratios as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SimProcess, cached_access_token, log, subprocess_env, write_config  # noqa: E402
from bench.inproc import UNBOUND_SCALE, config_values  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _measure(cmd: list[str], env: dict[str, str], out: Path) -> dict[str, float]:
    """Wall ms and peak RSS MB of one process; raises when it fails."""
    with out.open("wb") as stdout:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE)  # noqa: S603
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter_ns() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited {proc.returncode}: {err[-500:]}")
    return {"wall_ms": wall / 1e6, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
            "rss_mb": usage.ru_maxrss / 1024, "bytes": out.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    from mde_simulator.data import HUGE_ALERT_ID

    env = subprocess_env()
    with tempfile.TemporaryDirectory(prefix="bench-100k-") as tmp_text:
        tmp = Path(tmp_text)
        with SimProcess(tmp / "sim", huge_alert_files=args.files) as sim:
            log(f"generating {args.files} files in the simulator")
            sim.warm(HUGE_ALERT_ID)
            state = tmp / "state"
            config = write_config(tmp / "mde.json", config_values(sim.config, state, UNBOUND_SCALE))
            small = sim.add_alerts(1)[0]
            cli_small = [sys.executable, "-m", "connector", "run", "get_alert_related_files", "--param",
                         f"alert_id={small}", "--config", str(config), "--output", "json"]
            _measure(cli_small, env, tmp / "warm.json")  # token, store, bytecode
            cli = [*cli_small[:6], f"alert_id={HUGE_ALERT_ID}", *cli_small[7:]]
            base_env = {**env, "BENCH_TOKEN": cached_access_token(state)}
            base = [sys.executable, str(REPO / "bench" / "baseline_get.py"),
                    f"{sim.base_url}/api/alerts/{HUGE_ALERT_ID}/files", sim.ca_bundle]
            _measure(base, base_env, tmp / "base.json")  # the simulator's cache, bytecode
            samples: dict[str, list[dict[str, float]]] = {"script": [], "first": [], "rerun": []}
            for round_no in range(args.rounds):
                log(f"round {round_no + 1}/{args.rounds}")
                for name in ("script", "first", "rerun") if round_no % 2 == 0 else ("first", "rerun", "script"):
                    if name == "script":
                        samples[name].append(_measure(base, base_env, tmp / "base.json"))
                        continue
                    if name == "first":
                        for suffix in ("", "-wal", "-shm"):
                            (state / f"store.sqlite{suffix}").unlink(missing_ok=True)
                    samples[name].append(_measure(cli, env, tmp / f"{name}.json"))
            check = json.loads((tmp / "first.json").read_text(encoding="utf-8"))
            files = check["summary"]["total_files"]

    med = {name: {k: statistics.median(s[k] for s in runs) for k in ("wall_ms", "cpu_ms", "rss_mb", "bytes")}
           for name, runs in samples.items()}
    out: dict[str, Any] = {
        "files": files,
        "rounds": args.rounds,
        "median": med,
        "samples": samples,
        "wall_ratio": med["first"]["wall_ms"] / med["script"]["wall_ms"],
        "cpu_ratio": med["first"]["cpu_ms"] / med["script"]["cpu_ms"],
        "rss_ratio": med["first"]["rss_mb"] / med["script"]["rss_mb"],
        "rerun_fraction": med["rerun"]["wall_ms"] / med["first"]["wall_ms"],
        "rerun_cpu_fraction": med["rerun"]["cpu_ms"] / med["first"]["cpu_ms"],
        "rerun_wall_ratio": med["rerun"]["wall_ms"] / med["script"]["wall_ms"],
        "rerun_rss_ratio": med["rerun"]["rss_mb"] / med["script"]["rss_mb"],
        "targets": {"wall_ratio": 3.0, "rss_ratio": 1.5, "rerun_fraction": 0.30},
    }
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
