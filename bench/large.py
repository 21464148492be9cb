"""The 10,000-file alert: mapping alone, the whole action, peak RSS.

Each measurement runs in a fresh interpreter (``bench/large_child.py``) with a
warm client (token and connection ready, as in a playbook), so that peak RSS
is this action's alone:

- mapping: ``build_artifacts`` over the 10,000 File records already decoded;
- whole action: ``run_action`` as a first run (fresh store: 10,000 new
  artifacts), and again on the same store (all unchanged);
- the pieces of the whole action: fetch (GET + JSON), mapping, store write;
- RSS growth: ``ru_maxrss`` before and after one whole action.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import BENCH, REPO, SimProcess, log, subprocess_env, summary_ms


def _child(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    path = tmp / f"spec-{spec['mode']}.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(BENCH / "large_child.py"), str(path)], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"large_child failed: {proc.stderr[-800:]}")
    return dict(json.loads(proc.stdout))


def run(sim: SimProcess, iterations: int) -> dict[str, Any]:
    from mde_simulator import LARGE_ALERT_10K

    sim.warm(LARGE_ALERT_10K)
    small = sim.add_alerts(1)[0]
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp_name:
        tmp = Path(tmp_name)
        base = {"config": sim.config, "alert_id": LARGE_ALERT_10K, "small_alert_id": small}
        log(f"large: 10,000-file alert, {iterations} iterations")
        timing = _child({**base, "mode": "timing", "iterations": iterations, "state_dir": str(tmp / "t")}, tmp)
        rss = _child({**base, "mode": "rss", "state_dir": str(tmp / "r")}, tmp)
    mapping = summary_ms(timing["map_ns"])
    action = summary_ms(timing["action_ns"])
    files = timing["files"]
    return {
        "files": files,
        "artifacts": timing["artifacts"],
        "iterations": iterations,
        "mapping": mapping,
        "mapping_files_per_s": round(files / (mapping["p50_ms"] / 1000)),
        "action_first_run": action,
        "action_rerun_unchanged": summary_ms(timing["rerun_ns"]),
        "pieces": {
            "fetch_get_and_json": summary_ms(timing["fetch_ns"]),
            "mapping": mapping,
            "store_write_first_run": summary_ms(timing["store_ns"]),
        },
        "rss": {k: round(v, 1) if isinstance(v, float) else v for k, v in rss.items()},
    }
