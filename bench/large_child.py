"""Child process of the 10,000-file benchmark (a fresh interpreter, so that
peak RSS belongs to this measurement alone).

``python bench/large_child.py SPEC.json`` where SPEC holds ``mode`` ("rss" or
"timing"), ``config`` (connector configuration values), ``state_dir``,
``alert_id``, ``small_alert_id`` and ``iterations``; prints one JSON object.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.inproc import UNBOUND_SCALE, make_context  # noqa: E402


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    from connector.actions import ActionContext, run_action
    from connector.artifacts import build_artifacts
    from connector.runtime.store import Store

    state = Path(spec["state_dir"])
    context = make_context(spec["config"], state, UNBOUND_SCALE)
    warm = run_action("get_alert_related_files", {"alert_id": spec["small_alert_id"]}, context)
    if not warm.ok:
        raise SystemExit(f"warm-up failed: {warm.message}")
    alert_id = spec["alert_id"]
    params = {"alert_id": alert_id}
    clock = time.perf_counter_ns

    if spec["mode"] == "rss":
        before = _rss_kb()
        t0 = clock()
        result = run_action("get_alert_related_files", params, context)
        elapsed = clock() - t0
        after = _rss_kb()
        print(json.dumps({"ok": result.ok, "files": result.summary.get("total_files"),
                          "artifacts": len(result.artifacts), "action_ms": elapsed / 1e6,
                          "rss_before_mb": before / 1024, "rss_peak_mb": after / 1024,
                          "rss_growth_mb": (after - before) / 1024}))
        return

    client = context.client
    n = int(spec["iterations"])
    fetch_ns, map_ns, store_ns, action_ns, rerun_ns = [], [], [], [], []
    files: list = []
    for _ in range(n):
        t0 = clock()
        files = client.alert_files(alert_id)
        fetch_ns.append(clock() - t0)
    for _ in range(n):
        t0 = clock()
        mapped = build_artifacts(alert_id, files)
        map_ns.append(clock() - t0)
    for i in range(n):
        # The store write of a first run (every artifact new), in a fresh store.
        result = run_action("get_alert_related_files", params, ActionContext(
            config=context.config, store=None, client_factory=lambda cfg: client))
        store = Store.open(state / f"store-write-{i}")
        t0 = clock()
        store.save_action_result(result, container=alert_id, started=time.time())
        store_ns.append(clock() - t0)
        store.close()
    for i in range(n):
        # The whole action as a first run: fresh store, warm client.
        fresh = ActionContext(config=context.config, store=Store.open(state / f"first-{i}"),
                              client_factory=lambda cfg: client)
        t0 = clock()
        result = run_action("get_alert_related_files", params, fresh)
        action_ns.append(clock() - t0)
        if not result.ok:
            raise SystemExit(result.message)
        # The same alert again: every artifact already stored, unchanged.
        t0 = clock()
        again = run_action("get_alert_related_files", params, fresh)
        rerun_ns.append(clock() - t0)
        if not again.ok:
            raise SystemExit(again.message)
        fresh.store.close()
    print(json.dumps({
        "files": len(files), "artifacts": len(mapped.artifacts),
        "fetch_ns": fetch_ns, "map_ns": map_ns, "store_ns": store_ns,
        "action_ns": action_ns, "rerun_ns": rerun_ns,
    }))


if __name__ == "__main__":
    main()
