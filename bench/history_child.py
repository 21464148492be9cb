"""Child of ``bench/history.py``: warm in-process latency of whatever
``connector`` is first on ``PYTHONPATH`` (a worktree at some commit).

``python bench/history_child.py SPEC.json`` with ``config`` (values),
``state_dir``, ``alert_id`` and ``iterations``; prints the p50 of run_action
and of a bare requests GET of the same URL, interleaved. Self-contained and
written against the API every commit of the project has: the rate budget is
passed in (production limits, a clock that never makes the loop wait).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    import requests

    import connector
    from connector.actions import ActionContext, run_action
    from connector.config import resolve
    from connector.http.client import DefenderClient
    from connector.http.ratelimit import RateBudget
    from connector.runtime.store import Store

    config = resolve({**spec["config"], "state_dir": spec["state_dir"]})
    budget = RateBudget(Path(spec["state_dir"]) / "rate_budget.sqlite", [(100, 60.0), (1500, 3600.0)],
                        time_scale=10_000.0)
    context = ActionContext(config=config, store=Store.open(config.state_dir),
                            client_factory=lambda cfg: DefenderClient.from_config(cfg, budget=budget))
    params = {"alert_id": spec["alert_id"]}
    if not run_action("get_alert_related_files", params, context).ok:
        raise SystemExit("the action failed")
    session = requests.Session()
    headers = {"Authorization": f"Bearer {context.client.tokens.token()}", "Accept": "application/json"}
    url = f"{config.api_base_url}/api/alerts/{spec['alert_id']}/files"
    ca = spec["ca_bundle"]
    action_ns: list[int] = []
    bare_ns: list[int] = []
    for i in range(int(spec["iterations"]) + 50):
        pair = [(lambda: session.get(url, headers=headers, verify=ca).json(), bare_ns),
                (lambda: run_action("get_alert_related_files", params, context), action_ns)]
        for fn, out in pair if i % 2 else pair[::-1]:
            t0 = time.perf_counter_ns()
            fn()
            if i >= 50:
                out.append(time.perf_counter_ns() - t0)
    print(json.dumps({"connector": connector.__file__, "action_p50_ms": statistics.median(action_ns) / 1e6,
                      "bare_p50_ms": statistics.median(bare_ns) / 1e6}))


if __name__ == "__main__":
    main()
