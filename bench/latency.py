"""Warm in-process action latency against the same GET on the same session.

Candidate: ``run_action("get_alert_related_files", ...)`` on a 1-file alert
with a warm context: client built, token in memory, keep-alive connection
open, store open. Everything a playbook step pays is inside: parameter
validation, the shared rate budget (SQLite), the GET, the mapping, the store
transaction.

Baseline: the same GET through the connector's own session and kept-alive
connection (``client.session.get(url, headers=..., timeout=client.timeout)
.json()``: the pinned session, its trust store, the same connection pool),
with the same token. What the action adds over the request it must make.
(Until issue 13 the baseline was a stock ``requests.Session`` with other
trust, no timeout, and netrc/proxy lookups per call: a different and slower
GET, which flattered the ratio.)

The two are interleaved (alternating which goes first) so that machine noise
hits both alike.
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SimProcess, log, ratio, summary_ms
from bench.inproc import UNBOUND_SCALE, SleepLog, make_context


def run(sim: SimProcess, iterations: int, warmup: int) -> dict[str, Any]:
    from connector.actions import run_action
    from connector.http.client import alert_segment

    alert_id = sim.add_alerts(1)[0]
    url = f"{sim.base_url}/api/alerts/{alert_segment(alert_id)}/files"
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        waits = SleepLog()
        context = make_context(sim.config, Path(tmp) / "state", UNBOUND_SCALE, waits)
        params = {"alert_id": alert_id}

        first = run_action("get_alert_related_files", params, context)
        if not first.ok or len(first.artifacts) != 1:
            raise RuntimeError(f"the action failed: {first.message}")
        client = context.client
        token = client.tokens.token()
        session = client.session
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

        def baseline() -> None:
            body = session.get(url, headers=headers, timeout=client.timeout).json()
            if len(body["value"]) != 1:
                raise RuntimeError("baseline: unexpected body")

        def candidate() -> None:
            result = run_action("get_alert_related_files", params, context)
            if not result.ok:
                raise RuntimeError(f"the action failed: {result.message}")

        for _ in range(warmup):
            baseline()
            candidate()
        base_ns: list[int] = []
        cand_ns: list[int] = []
        clock = time.perf_counter_ns
        log(f"latency: {iterations} interleaved pairs")
        gc.collect()
        for i in range(iterations):
            order = ((baseline, base_ns), (candidate, cand_ns))
            for fn, out in (order if i % 2 == 0 else order[::-1]):
                t0 = clock()
                fn()
                out.append(clock() - t0)
        stored = context.store.artifacts(alert_id)
        context.store.close()

    base = summary_ms(base_ns)
    cand = summary_ms(cand_ns)
    return {
        "alert_files": 1,
        "iterations": iterations,
        "baseline": base,
        "action": cand,
        "overhead_ratio_p50": ratio(cand["p50_ms"], base["p50_ms"]),
        "overhead_ratio_p99": ratio(cand["p99_ms"], base["p99_ms"]),
        "budget_waits": len(waits.waits),
        "stored_artifacts": len(stored),
    }
