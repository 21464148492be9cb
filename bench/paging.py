"""Paged listings over a large store: ``artifacts list`` and ``containers
list`` with ``--limit``/``--after`` (issue 13, target 6).

    python bench/paging.py [--artifacts 1000000] [--containers 100000] [--rounds 15] [--state DIR]

Builds a store in a temporary directory (artifacts spread over alerts of 10
files each, bodies shaped as the action writes them), then measures, median
of ``--rounds``:

- the store alone: the first page of 100 (``Store.artifacts_page``), a page
  deep in the listing (after a cursor at 90 %), the same for containers;
- the whole command as a user runs it: ``python -m connector artifacts list
  --limit 100`` (table and ``--output json``) and ``containers list``, against
  a Python start that imports sqlite3 and reads 100 rows (the floor any CLI
  pays);
- the query plan, which must walk an index and never sort or skip rows.

Prints a JSON summary; figures belong in bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import subprocess_env  # noqa: E402


def _body(alert: str, n: int) -> str:
    sha256 = f"{n:064x}"
    return json.dumps({
        "name": f"Microsoft Corporation file {sha256[:12]}…", "label": "file", "type": "file",
        "severity": "low", "source_data_identifier": f"mde:{alert}:file:{sha256}", "container": alert,
        "cef": {"fileHashSha256": sha256, "fileHashSha1": f"{n:040x}", "fileHashMd5": f"{n:032x}",
                "fileSize": 1024 + n, "signer": "Microsoft Corporation", "issuer": "Microsoft Code Signing PCA",
                "isValidCertificate": True, "globalPrevalence": 5 + n % 50, "determinationType": "Unknown",
                "verdict": "rare"},
        "cef_types": {"fileHashSha256": ["sha256", "hash"]}, "tags": ["rare"], "verdict": "rare",
    }, separators=(",", ":"))


def build(state: Path, artifacts: int, containers: int) -> None:
    """A store with ``containers`` alerts and ``artifacts`` artifacts."""
    from connector.runtime.store import Store

    store = Store.open(state)
    conn = store._connect()
    per = max(1, artifacts // max(containers, 1))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO containers (alert_id, name, severity, status, source, tags, data, created_at, updated_at)"
        " VALUES (?, ?, 'low', 'new', 'bench', '[]', '{}', ?, ?)",
        ((f"da{i:018d}_1", f"Alert {i}", f"2026-01-01T00:{i // 60000 % 60:02d}:00.{i % 1000:03d}Z",
          "2026-01-01T00:00:00.000Z") for i in range(containers)))
    conn.executemany(
        "INSERT INTO artifacts (source_data_identifier, container, name, label, type, severity, body,"
        " created_at, updated_at) VALUES (?, ?, ?, 'file', 'file', 'low', ?, '', '')",
        ((f"mde:da{n // per % containers:018d}_1:file:{n}", f"da{n // per % containers:018d}_1", f"file {n}",
          _body(f"da{n // per % containers:018d}_1", n)) for n in range(artifacts)))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    store.close()


def _median_ms(fn: Any, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


def _cli(args: list[str]) -> None:
    # The benchmark's own environment rule: no MDE_* variables, and bytecode
    # as an installed package has it (the first run of a round compiles it).
    subprocess.run([sys.executable, "-m", "connector", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env())


def measure(state: Path, artifacts: int, containers: int, rounds: int) -> dict[str, Any]:
    from connector.runtime.store import Store

    store = Store.open(state, read_only=True)
    deep_artifact = next(c for i, (c, _) in enumerate(store.artifacts_page(limit=None)) if i >= artifacts * 9 // 10)
    deep_container = next(c for i, (c, _) in enumerate(store.containers_page()) if i >= containers * 9 // 10)
    conn = store._connect()
    plans = {
        "artifacts": [r[3] for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT container, rowid, body FROM artifacts WHERE (container, rowid) > (?, ?)"
            " ORDER BY container, rowid LIMIT 101", ("x", 0))],
        "containers": [r[3] for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT alert_id FROM containers c WHERE (c.created_at, c.alert_id) > (?, ?)"
            " ORDER BY c.created_at, c.alert_id LIMIT 101", ("x", "y"))],
    }
    out: dict[str, Any] = {"artifacts": artifacts, "containers": containers, "rounds": rounds, "plans": plans}
    out["store_first_page_ms"] = _median_ms(lambda: list(store.artifacts_page(limit=101)), rounds)
    out["store_deep_page_ms"] = _median_ms(lambda: list(store.artifacts_page(after=deep_artifact, limit=101)), rounds)
    out["store_containers_first_page_ms"] = _median_ms(lambda: list(store.containers_page(limit=101)), rounds)
    out["store_containers_deep_page_ms"] = _median_ms(
        lambda: list(store.containers_page(after=deep_container, limit=101)), rounds)
    sd = ["--state-dir", str(state)]
    _cli(["artifacts", "list", *sd, "--limit", "1"])  # warm-up: the bytecode cache
    floor = ("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
             " [r for r in c.execute('SELECT body FROM artifacts ORDER BY container, rowid LIMIT 100')]")
    out["python_floor_ms"] = _median_ms(lambda: subprocess.run(
        [sys.executable, "-c", floor, str(state / "store.sqlite")], check=True), rounds)
    out["cli_artifacts_first_page_ms"] = _median_ms(lambda: _cli(["artifacts", "list", *sd, "--limit", "100"]), rounds)
    out["cli_artifacts_first_page_json_ms"] = _median_ms(
        lambda: _cli(["artifacts", "list", *sd, "--limit", "100", "--output", "json"]), rounds)
    out["cli_artifacts_deep_page_ms"] = _median_ms(
        lambda: _cli(["artifacts", "list", *sd, "--after", deep_artifact]), rounds)
    out["cli_containers_first_page_ms"] = _median_ms(lambda: _cli(["containers", "list", *sd]), rounds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=int, default=1_000_000)
    parser.add_argument("--containers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--state", type=Path, help="reuse a state directory built before (kept; built if missing)")
    args = parser.parse_args()
    if args.state is not None:
        if not (args.state / "store.sqlite").exists():
            build(args.state, args.artifacts, args.containers)
        print(json.dumps(measure(args.state, args.artifacts, args.containers, args.rounds), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="bench-paging-") as tmp:
        state = Path(tmp) / "state"
        start = time.perf_counter()
        build(state, args.artifacts, args.containers)
        print(f"built {args.artifacts} artifacts in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        print(json.dumps(measure(state, args.artifacts, args.containers, args.rounds), indent=2))


if __name__ == "__main__":
    main()
