"""Benchmark the connector against the simulator on loopback TLS.

    python bench/run.py [--quick] [--only latency,cli,tokens,imports,large,drain,shared]

Writes ``bench/results.json`` (every number, machine facts) and
``bench/results.md`` (the table of figures). Each figure is compared with a
baseline measured in the same run on the same machine; see bench/NOTES.md.
``--quick`` takes well under a minute on 2 cores; the full run a few minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import budget_cost, cli_runs, install_kinds, large, latency, ratelimits  # noqa: E402
from bench.common import BENCH, SimProcess, git_revision, log, machine_info  # noqa: E402
from bench.report import figures, markdown  # noqa: E402

SCENARIOS = ("latency", "cli", "install", "syncs", "tokens", "imports", "large", "budget", "drain", "shared")

PLANS: dict[str, dict[str, Any]] = {
    "quick": {
        "latency_iterations": 300, "latency_warmup": 30,
        "cli_pairs": 8, "cli_warmup": 1, "install_pairs": 8, "sync_runs": 3, "budget_calls": 500,
        "token_runs": 50, "import_repeats": 3,
        "large_iterations": 3,
        "drain_alerts": 600, "drain_time_scale": 60.0,
        "shared_processes": 4, "shared_windows": 4, "shared_time_scale": 60.0,
    },
    "full": {
        "latency_iterations": 2000, "latency_warmup": 100,
        "cli_pairs": 40, "cli_warmup": 3, "install_pairs": 30, "sync_runs": 5, "budget_calls": 3000,
        "token_runs": 50, "import_repeats": 7,
        "large_iterations": 10,
        "drain_alerts": 600, "drain_time_scale": 30.0,
        "shared_processes": 4, "shared_windows": 6, "shared_time_scale": 30.0,
    },
}

UNLIMITED = {"rate_per_minute": 10**9, "rate_per_hour": 10**9}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations; under a minute")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--output-dir", type=Path, default=BENCH, help="where results.json/.md go (default: bench/)")
    args = parser.parse_args(argv)
    selected = [s.strip() for s in args.only.split(",")] if args.only else list(SCENARIOS)
    unknown = set(selected) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    mode = "quick" if args.quick else "full"
    plan = PLANS[mode]
    started = time.time()
    results: dict[str, Any] = {}
    log(f"mode {mode}: {', '.join(selected)}")
    errors: dict[str, str] = {}

    def attempt(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        if name not in selected:
            return
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} FAILED: {errors[name]}")

    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        attempt("budget", lambda: budget_cost.run(plan["budget_calls"]))
        if set(selected) & {"latency", "cli", "install", "syncs", "tokens", "imports", "large"}:
            # Limits out of the way: these figures are about latency.
            with SimProcess(Path(tmp) / "fast", **UNLIMITED) as sim:
                attempt("latency", lambda: latency.run(sim, plan["latency_iterations"], plan["latency_warmup"]))
                attempt("cli", lambda: cli_runs.end_to_end(sim, plan["cli_pairs"], plan["cli_warmup"]))
                attempt("install", lambda: install_kinds.run(sim, plan["install_pairs"], plan["cli_warmup"]))
                attempt("syncs", lambda: cli_runs.syncs(sim, plan["sync_runs"]))
                attempt("tokens", lambda: cli_runs.token_requests(sim, plan["token_runs"]))
                attempt("imports", lambda: cli_runs.import_time(sim, plan["import_repeats"]))
                attempt("large", lambda: large.run(sim, plan["large_iterations"]))
        # The documented limits on a sped-up clock; a fresh simulator each.
        if "drain" in selected:
            d_scale = plan["drain_time_scale"]
            with SimProcess(Path(tmp) / "limited", **ratelimits.documented_limits(d_scale)) as sim:
                attempt("drain", lambda: ratelimits.drain(sim, plan["drain_alerts"], d_scale))
        if "shared" in selected:
            s_scale = plan["shared_time_scale"]
            with SimProcess(Path(tmp) / "limited", **ratelimits.documented_limits(s_scale)) as sim:
                attempt("shared", lambda: ratelimits.shared(sim, plan["shared_processes"],
                                                            plan["shared_windows"], s_scale))
    document = {
        "command": "python bench/run.py" + (" --quick" if args.quick else ""),
        "mode": mode,
        "scenarios_run": selected,
        "plan": plan,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": machine_info(),
        "git": git_revision(),
        "figures": figures(results),
        "errors": errors,
        "results": results,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "results.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (args.output_dir / "results.md").write_text(markdown(document), encoding="utf-8")
    print(markdown(document))
    log(f"done in {document['duration_s']} s; wrote {args.output_dir / 'results.json'} and results.md")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
