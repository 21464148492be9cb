"""Worker process of the shared-budget benchmark.

``python bench/budget_worker.py SPEC.json`` where SPEC holds ``config``,
``state_dir`` (shared by every worker: one token cache, one store, one rate
budget), ``alert_ids``, ``offset``, ``time_scale``, and ``start_at`` /
``stop_at`` on the ``time.monotonic`` clock. It gets ready (imports, token,
store), waits for ``start_at``, then runs get_alert_related_files in a loop
until ``stop_at``, and prints one JSON object: the monotonic time at which
each call left the rate budget, and the failures by kind.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inproc import make_context  # noqa: E402


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    from connector.actions import run_action

    context = make_context(spec["config"], Path(spec["state_dir"]), float(spec["time_scale"]))
    client = context.client
    client.tokens.token()  # sign-in is not rate limited; do it before the window
    budget = client.budget
    acquired: list[float] = []
    real_acquire = budget.acquire

    def acquire(deadline: float | None = None) -> float:
        waited = real_acquire(deadline)
        acquired.append(time.monotonic())
        return float(waited)

    budget.acquire = acquire
    alert_ids = spec["alert_ids"]
    i = int(spec["offset"])
    failures: dict[str, int] = {}
    ok = 0
    delay = spec["start_at"] - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    while time.monotonic() < spec["stop_at"]:
        result = run_action("get_alert_related_files", {"alert_id": alert_ids[i % len(alert_ids)]}, context)
        i += 1
        if result.ok:
            ok += 1
        else:
            kind = (result.error or {}).get("kind", "error")
            failures[kind] = failures.get(kind, 0) + 1
    print(json.dumps({"ok": ok, "failures": failures, "acquired": acquired,
                      "token_requests": client.tokens.token_requests}))


if __name__ == "__main__":
    main()
