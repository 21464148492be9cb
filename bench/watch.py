"""``watch`` per alert: the connector's overhead over a bare GET of the same
data, write transactions per alert, and alerts/s for 1, 2 and 4 workers.

``python bench/watch.py [--alerts N] [--rounds R] [--json OUT]``

The simulator runs in its own process (``bench.common.SimProcess``) with N
new alerts of 3 files each (one unsigned, so the triage playbook takes its
longer branch: severity, note, tag). Each round, in alternating order:

- **watch**: one ``Poller.poll_once`` wired as ``mde-connector watch`` wires
  it (one client, one store, the triage playbook, ``--workers W``), into a
  store that has never seen those alerts, from a ``--since`` just before
  them. Every alert becomes a container and a successful playbook run;
- **bare GET**: the same HTTP on the connector's own pinned session and
  token: the alert list (same filter), then each alert's files, decoded.

The rate budget keeps its production limits on a clock 10,000x faster
(``bench.inproc.UNBOUND_SCALE``), so it never makes the loop wait; its
file work is measured. The store's write transactions are counted with
SQLite's trace callback on every connection it opens (``BEGIN IMMEDIATE``
statements), never by a test; the budget is a slot file, not SQLite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import SimProcess, log  # noqa: E402
from bench.inproc import UNBOUND_SCALE, config_values  # noqa: E402

WORKERS = (1, 2, 4)


class StatementCounter:
    """Counts SQL statements per database file (store, rate budget)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {}

    def install(self) -> None:
        import connector.runtime.store as store
        from connector.sqlite_db import open_database

        def counting_open(path: Path, **kwargs: Any) -> Any:
            conn = open_database(path, **kwargs)
            name = Path(path).name

            def trace(sql: str) -> None:
                with self.lock:
                    bucket = self.counts.setdefault(name, {"statements": 0, "write_transactions": 0})
                    bucket["statements"] += 1
                    if sql.lstrip().upper().startswith("BEGIN IMMEDIATE"):
                        bucket["write_transactions"] += 1

            conn.set_trace_callback(trace)
            return conn

        store.open_database = counting_open  # type: ignore[assignment]

    def take(self) -> dict[str, dict[str, int]]:
        with self.lock:
            out, self.counts = self.counts, {}
        return out


def _files() -> list[dict[str, Any]]:
    from mde_simulator import EXAMPLE_FILE

    second = dict(EXAMPLE_FILE, sha1="1" * 40, sha256="2" * 64, md5="3" * 32, fileName="helper.dll")
    unsigned = dict(EXAMPLE_FILE, sha1="4" * 40, sha256="5" * 64, md5="6" * 32, signer=None, issuer=None,
                    signerHash=None, isValidCertificate=None, fileName="dropper.exe")
    return [dict(EXAMPLE_FILE), second, unsigned]


def _poller(config: Any, workers: int) -> Any:
    """As ``connector.cli.watch.build_poller`` wires it, with the triage playbook."""
    from connector.actions import ActionContext
    from connector.http.client import DefenderClient
    from connector.runtime.engine import load_shipped_playbooks
    from connector.runtime.poller import Poller
    from connector.runtime.store import Store

    store = Store.open(config.state_dir)
    client = DefenderClient.from_config(config)
    triage = [p for p in load_shipped_playbooks() if p.name == "triage_new_alert"]

    def context_factory() -> Any:
        return ActionContext(config=config, store=store, client_factory=lambda _cfg: client)

    return Poller(client=client, store=store, context_factory=context_factory, playbooks=triage, workers=workers)


def _fresh_store(state: Path, budget: bool = False) -> None:
    for name in ("store.sqlite", "rate_budget.sqlite") if budget else ("store.sqlite",):
        for suffix in ("", "-wal", "-shm", ".slots"):
            (state / f"{name}{suffix}").unlink(missing_ok=True)


def _watch_once(config: Any, since: str, expected: int, workers: int, counter: StatementCounter,
                budget: bool = False) -> dict[str, Any]:
    _fresh_store(Path(config.state_dir), budget)
    poller = _poller(config, workers)
    counter.take()
    t0 = time.perf_counter_ns()
    report = poller.poll_once(since=since)
    elapsed = time.perf_counter_ns() - t0
    counts = counter.take()
    ok = [r for r in report.playbook_runs if r.get("status") == "success"]
    if len(report.processed) != expected or len(ok) != expected or report.errors:
        raise RuntimeError(f"watch took in {len(report.processed)} alerts, {len(ok)} runs succeeded "
                           f"(expected {expected}); errors: {report.errors[:2]}")
    poller.store.close()
    return {"ns": elapsed, "counts": counts}


def _bare_once(config: Any, since: str, alert_ids: list[str]) -> int:
    """The same HTTP on the connector's own session: the list, then each
    alert's files, decoded."""
    from connector.http.client import DefenderClient

    client = DefenderClient.from_config(config)
    session, base = client.session, client.config.api_base_url.rstrip("/")
    timeout = 30
    headers = {"Authorization": f"Bearer {client._bearer()}", "Accept": "application/json"}
    session.get(f"{base}/api/alerts/{alert_ids[0]}/files", headers=headers, timeout=timeout).json()  # connection
    t0 = time.perf_counter_ns()
    listed = session.get(f"{base}/api/alerts", headers=headers, timeout=timeout, params={
        "$filter": f"alertCreationTime ge {since}", "$orderby": "alertCreationTime asc", "$top": "1000"}).json()
    if len(listed["value"]) != len(alert_ids):
        raise RuntimeError(f"the bare list returned {len(listed['value'])} alerts, not {len(alert_ids)}")
    for alert in listed["value"]:
        session.get(f"{base}/api/alerts/{alert['id']}/files", headers=headers, timeout=timeout).json()
    return time.perf_counter_ns() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget-scale", type=float, default=60.0,
                        help="also run with the budget's production limits this many times faster (60: the "
                             "100 calls/min limit becomes 100 calls/s), to show where it, not the CPU, limits")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    from connector.config import resolve
    from connector.runtime.poller import canonical_time

    counter = StatementCounter()
    counter.install()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp_text:
        tmp = Path(tmp_text)
        with SimProcess(tmp / "sim", rate_per_minute=10**9, rate_per_hour=10**9) as sim:
            state = tmp / "state"
            config = resolve(config_values(sim.config, state, UNBOUND_SCALE))
            since = canonical_time(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))) or ""
            time.sleep(0.01)
            alert_ids = sim.add_alerts(args.alerts, _files())
            log(f"{args.alerts} alerts of 3 files; warming up")
            _watch_once(config, since, args.alerts, 2, counter)  # token cache, imports, connections
            _bare_once(config, since, alert_ids)
            bare: list[int] = []
            watch: dict[int, list[int]] = {w: [] for w in WORKERS}
            counts: dict[int, list[dict[str, dict[str, int]]]] = {w: [] for w in WORKERS}
            for round_no in range(args.rounds):
                log(f"round {round_no + 1}/{args.rounds}")
                order: list[int] = [0, *WORKERS]  # 0: the bare GETs
                if round_no % 2:
                    order.reverse()
                for workers in order:
                    if workers == 0:
                        bare.append(_bare_once(config, since, alert_ids))
                    else:
                        sample = _watch_once(config, since, args.alerts, workers, counter)
                        watch[workers].append(sample["ns"])
                        counts[workers].append(sample["counts"])
            budget_config = resolve(config_values(sim.config, state, args.budget_scale))
            budget_runs: dict[int, list[int]] = {w: [] for w in WORKERS}
            for round_no in range(max(1, args.rounds // 2)):
                log(f"budget-bound round {round_no + 1}")
                for workers in WORKERS:
                    sample = _watch_once(budget_config, since, args.alerts, workers, counter, budget=True)
                    budget_runs[workers].append(sample["ns"])

    n = args.alerts
    bare_ms = statistics.median(bare) / 1e6 / n
    per_alert = {w: statistics.median(v) / 1e6 / n for w, v in watch.items()}
    tx = {w: statistics.median(c.get("store.sqlite", {}).get("write_transactions", 0) for c in counts[w]) / n
          for w in WORKERS}
    statements = {w: statistics.median(c.get("store.sqlite", {}).get("statements", 0) for c in counts[w]) / n
                  for w in WORKERS}
    out: dict[str, Any] = {
        "alerts": n,
        "rounds": args.rounds,
        "bare_get_ms_per_alert": bare_ms,
        "watch_ms_per_alert": per_alert,
        "overhead_ms_per_alert": {w: per_alert[w] - bare_ms for w in WORKERS},
        "alerts_per_second": {w: 1000 / per_alert[w] for w in WORKERS},
        "store_write_transactions_per_alert": tx,
        "store_statements_per_alert": statements,
        "budget_bound": {
            "budget_scale": args.budget_scale,
            "limit_calls_per_second": 100 / 60 * args.budget_scale,
            "calls_per_alert": 1 + 1 / n,  # each alert's files, and the one alert list
            "alerts_per_second": {w: n / (statistics.median(v) / 1e9) for w, v in budget_runs.items()},
        },
        "databases_seen": sorted({db for w in WORKERS for c in counts[w] for db in c}),
        "samples_ms": {"bare": [b / 1e6 for b in bare], **{str(w): [v / 1e6 for v in watch[w]] for w in WORKERS}},
        "targets": {"overhead_ms_per_alert": 1.5, "store_write_transactions_per_alert": 3},
    }
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
