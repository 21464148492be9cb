"""What a deferred import saves: the start-up cost of each module a command
may or may not load, and how many imports sit inside functions.

    python bench/import_costs.py              # median of 7 fresh interpreters per figure
    python bench/import_costs.py --repeat 15  # steadier on a busy machine

Each figure is the wall time of ``importlib.import_module(TARGET)`` in a
fresh interpreter that has already imported ``BASE`` (what every command
pays: ``connector.cli.main``), with bytecode compiled as an installed package
has it (see ``bench/common.py: subprocess_env``). A deferred import is worth
keeping only where its figure is large against a light command's whole
start-up (``python -m connector actions``, also measured). Figures go to
bench/NOTES.md, "Deferred imports".
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import subprocess_env  # noqa: E402 - after the path set-up above

ROOT = Path(__file__).resolve().parent.parent
BASE = "connector.cli.main"
#: Modules a light command (``actions``, ``run`` with invalid input, ``runs
#: list``, ``--help``) does not need, and the command modules themselves.
TARGETS = (
    "requests",
    "msal",
    "jsonschema",
    "cryptography.x509",
    "sqlite3",
    "http.server",
    "connector.http.client",
    "connector.actions",
    "connector.runtime.store",
    "connector.runtime.engine",
    "connector.runtime.poller",
    "connector.cli.runs",
    "connector.cli.playbook",
    "connector.cli.watch",
    "connector.cli.console",
    "connector.cli.demo",
    "mde_simulator",
)

_PROBE = """
import importlib, json, sys, time
importlib.import_module({base!r})
before = set(sys.modules)
t0 = time.perf_counter()
importlib.import_module({target!r})
ms = (time.perf_counter() - t0) * 1000
print(json.dumps({{"ms": ms, "modules": len(set(sys.modules) - before)}}))
"""


def _probe(target: str, base: str, env: dict[str, str]) -> dict[str, float]:
    code = _PROBE.format(base=base, target=target)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         check=True, timeout=120)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def _command_ms(argv: list[str], env: dict[str, str]) -> float:
    start = __import__("time").perf_counter()
    subprocess.run([sys.executable, "-m", "connector", *argv], capture_output=True, env=env, cwd=ROOT,
                   check=False, timeout=120)
    return (__import__("time").perf_counter() - start) * 1000


def deferred_imports() -> list[tuple[str, int, str]]:
    """Every import inside a function of connector/ and mde_simulator/:
    (file, line, imported module)."""
    found = []
    for package in ("connector", "mde_simulator"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for func in ast.walk(tree):
                if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(func):
                    if isinstance(node, ast.Import):
                        found += [(str(path.relative_to(ROOT)), node.lineno, a.name) for a in node.names]
                    elif isinstance(node, ast.ImportFrom):
                        found.append((str(path.relative_to(ROOT)), node.lineno, "." * node.level + (node.module or "")))
    return sorted(set(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="fresh interpreters per figure (median)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    env = subprocess_env()
    _probe("connector.cli.demo", BASE, env)  # warm-up: compiles the bytecode of every module once
    _probe("mde_simulator", BASE, env)
    figures: dict[str, dict[str, float]] = {}
    for target in TARGETS:
        runs = [_probe(target, BASE, env) for _ in range(args.repeat)]
        figures[target] = {"ms": statistics.median(r["ms"] for r in runs), "modules": runs[0]["modules"]}
    base_runs = [_probe(BASE, "sys", env) for _ in range(args.repeat)]
    figures[f"{BASE} (from nothing)"] = {"ms": statistics.median(r["ms"] for r in base_runs),
                                         "modules": base_runs[0]["modules"]}
    light = statistics.median(_command_ms(["actions"], env) for _ in range(args.repeat))
    deferred = deferred_imports()
    if args.json:
        print(json.dumps({"figures": figures, "actions_command_ms": light, "deferred": deferred}, indent=2))
        return 0
    print(f"import cost on top of {BASE} (median of {args.repeat} fresh interpreters, ms):")
    for name, fig in figures.items():
        print(f"  {name:40s} {fig['ms']:7.1f} ms  (+{int(fig['modules'])} modules)")
    print(f"whole 'python -m connector actions' run: {light:.1f} ms")
    print(f"imports inside functions: {len(deferred)}")
    for path, line, module in deferred:
        print(f"  {path}:{line}: {module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
