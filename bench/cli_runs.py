"""One CLI run end to end, token requests across runs, and import time.

- ``mde-connector run get_alert_related_files`` (as ``python -m connector``)
  with a warm token cache, against ``bench/baseline_get.py`` (python start,
  import requests, one GET, print the JSON), interleaved. The baseline
  verifies TLS against the same trust as the connector: the public CAs
  (certifi's bundle, what requests trusts by default against the real API)
  plus the simulator's CA. Loading ~120 public CAs costs ~15 ms per process,
  so a second baseline trusting the simulator's CA alone is reported too;
- 50 sequential CLI runs from an empty state directory: how many token
  requests (and other sign-in requests) reached Entra ID;
- ``python -X importtime``: the import time of ``connector.cli.main`` and of all
  the modules one ``run`` imports.

The configuration sets ``rate_time_scale`` so that the rate budget (100
calls a minute) never makes these back-to-back runs wait, as a user's
occasional runs never wait: every run still pays for the budget's SQLite
transaction.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH,
    REPO,
    SimProcess,
    cached_access_token,
    log,
    percentile,
    ratio,
    subprocess_env,
    summary_ms,
    write_config,
)
from bench.inproc import UNBOUND_SCALE, config_values

ACTION = "get_alert_related_files"


def _env() -> dict[str, str]:
    return subprocess_env()


def _cli(config: Path, alert_id: str, *extra: str) -> list[str]:
    return [sys.executable, *extra, "-m", "connector", "run", ACTION, "--param", f"alert_id={alert_id}",
            "--config", str(config), "--output", "json"]


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[int, subprocess.CompletedProcess[bytes]]:
    t0 = time.perf_counter_ns()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, check=False)
    elapsed = time.perf_counter_ns() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed, proc


def end_to_end(sim: SimProcess, pairs: int, warmup: int) -> dict[str, Any]:
    alert_id = sim.add_alerts(1)[0]
    env = _env()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        state = Path(tmp) / "state"
        config = write_config(Path(tmp) / "mde.json", config_values(sim.config, state, UNBOUND_SCALE))
        cli = _cli(config, alert_id)
        _timed(cli, env)  # token, store, pycache: the cache is warm from here on
        base_env = {**env, "BENCH_TOKEN": cached_access_token(state)}
        url = f"{sim.base_url}/api/alerts/{alert_id}/files"
        same_trust = same_trust_bundle(Path(tmp), sim.ca_bundle)
        work = [sys.executable, str(BENCH / "baseline_get.py"), url, str(same_trust), str(Path(tmp) / "base.sqlite")]
        get_only = [sys.executable, str(BENCH / "baseline_get.py"), url, str(same_trust)]
        for _ in range(warmup):
            _timed(cli, env)
            _timed(work, base_env)
            _timed(get_only, base_env)
        sim.reset_log()
        log(f"cli: {pairs} interleaved rounds of CLI run / same-work script / GET-only script")
        cli_ns: list[int] = []
        work_ns: list[int] = []
        get_ns: list[int] = []
        for i in range(pairs):
            order = [(cli, env, cli_ns), (work, base_env, work_ns), (get_only, base_env, get_ns)]
            for cmd, e, out in order[i % 3:] + order[:i % 3]:
                elapsed, _ = _timed(cmd, e)
                out.append(elapsed)
        log_entries = sim.requests()
    sign_in = [r for r in log_entries if not r["path"].startswith("/api/")]
    api = [r for r in log_entries if r["path"].startswith("/api/")]
    c, b, g = summary_ms(cli_ns), summary_ms(work_ns), summary_ms(get_ns)
    return {
        "pairs": pairs,
        "install": "editable (development), private bytecode cache, root",
        "cli": c,
        "baseline_script": b,
        "baseline_script_get_only": g,
        "ratio_p50": ratio(c["p50_ms"], b["p50_ms"]),
        "ratio_p90": ratio(c["p90_ms"], b["p90_ms"]),
        "ratio_p50_vs_get_only": ratio(c["p50_ms"], g["p50_ms"]),
        "pair_ratio_median": pair_ratio_median(cli_ns, work_ns),
        "api_requests_per_run": round((len(api) - 2 * pairs) / pairs, 3),  # each baseline makes one too
        "sign_in_requests_per_cli_run": round(len(sign_in) / pairs, 3),
    }


def same_trust_bundle(directory: Path, simulator_ca: str | Path) -> Path:
    """The connector's trust as one file: the public CAs (certifi's bundle,
    what requests trusts by default against the real API) plus the
    simulator's CA."""
    import certifi

    path = directory / "public-and-simulator-ca.pem"
    path.write_bytes(Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + Path(simulator_ca).read_bytes())
    return path


def pair_ratio_median(candidate_ns: list[int], baseline_ns: list[int]) -> float:
    """Median of the round-by-round ratios: robust to the machine's drift."""
    return round(percentile([c / b for c, b in zip(candidate_ns, baseline_ns, strict=True)], 50), 3)


def syncs(sim: SimProcess, runs: int) -> dict[str, Any]:
    """Disk syncs and journal files of one warm CLI run, from ``strace``:
    fsync/fdatasync calls, and the files the run created and deleted in the
    state directory (a WAL created and deleted per run shows here)."""
    import shutil

    strace = shutil.which("strace")
    if strace is None:
        return {"skipped": "strace is not installed"}
    alert_id = sim.add_alerts(1)[0]
    env = _env()
    per_run: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-syncs-") as tmp:
        state = Path(tmp) / "state"
        config = write_config(Path(tmp) / "mde.json", config_values(sim.config, state, UNBOUND_SCALE))
        _timed(_cli(config, alert_id), env)  # token and store exist from here on
        for i in range(runs):
            trace = Path(tmp) / f"trace{i}.txt"
            cmd = [strace, "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,sync_file_range,unlink,unlinkat",
                   "-o", str(trace), *_cli(config, alert_id)]
            subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, check=True)
            lines = [ln for ln in trace.read_text(encoding="utf-8").splitlines() if "= 0" in ln]
            synced = [ln for ln in lines if "sync" in ln.split("(", 1)[0]]
            deleted = sorted({Path(m.group(1)).name for ln in lines
                              if (m := re.search(r'unlink(?:at)?\((?:[^,]*, )?"([^"]+)"', ln))
                              and str(state) in m.group(1)})
            per_run.append({"syncs": len(synced),
                            "synced_files": sorted({Path(m.group(1)).name for ln in synced
                                                    if (m := re.search(r"<([^>]+)>", ln))}),
                            "deleted_in_state_dir": deleted})
    counts = [r["syncs"] for r in per_run]
    return {
        "runs": runs,
        "python": sys.version.split()[0],
        "syncs_per_run_p50": percentile(counts, 50),
        "syncs_per_run_max": max(counts),
        "wal_deleted_per_run": any(any(n.endswith("-wal") for n in r["deleted_in_state_dir"]) for r in per_run),
        "last_run": per_run[-1],
    }


def token_requests(sim: SimProcess, runs: int) -> dict[str, Any]:
    alert_id = sim.add_alerts(1)[0]
    env = _env()
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
        state = Path(tmp) / "state"
        config = write_config(Path(tmp) / "mde.json", config_values(sim.config, state, UNBOUND_SCALE))
        sim.reset_log()
        log(f"tokens: {runs} sequential CLI runs from an empty state directory")
        elapsed: list[int] = []
        for _ in range(runs):
            ns, _ = _timed(_cli(config, alert_id), env)
            elapsed.append(ns)
        tokens = sim.token_requests()
        entries = sim.requests()
    sign_in = [r for r in entries if not r["path"].startswith("/api/")]
    return {
        "runs": runs,
        "token_requests": tokens,
        "naive_token_requests": runs,
        "other_sign_in_requests": len(sign_in) - tokens,
        "api_requests": len(entries) - len(sign_in),
        "first_run_ms": round(elapsed[0] / 1e6, 1),
        "later_runs": summary_ms(elapsed[1:]),
    }


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")
# Imported by the interpreter itself before any user code runs.
_STARTUP = {"site", "encodings", "_frozen_importlib_external", "io", "abc", "codecs", "zipimport",
            "_signal", "_abc", "time", "marshal", "posix", "_io", "_codecs", "winreg"}


def _importtime(cmd: list[str], env: dict[str, str]) -> dict[str, int]:
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    tops: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        match = _LINE.match(line)
        if match and not match.group(3):
            tops[match.group(4)] = tops.get(match.group(4), 0) + int(match.group(2))
    return tops


def import_time(sim: SimProcess, repeats: int) -> dict[str, Any]:
    """Import time from ``-X importtime`` (it inflates absolute numbers
    somewhat; compare them with each other), median of ``repeats``."""
    alert_id = sim.add_alerts(1)[0]
    env = _env()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        state = Path(tmp) / "state"
        config = write_config(Path(tmp) / "mde.json", config_values(sim.config, state, UNBOUND_SCALE))
        _timed(_cli(config, alert_id), env)
        cli_only: list[float] = []
        run_total: list[float] = []
        per_package: dict[str, list[float]] = {}
        requests_only: list[float] = []
        for _ in range(repeats):
            tops = _importtime([sys.executable, "-X", "importtime", "-c", "import connector.cli.main"], env)
            cli_only.append(tops.get("connector.cli.main", 0) / 1000)
            tops = _importtime([sys.executable, "-X", "importtime", "-c", "import requests"], env)
            requests_only.append(tops.get("requests", 0) / 1000)
            tops = _importtime(_cli(config, alert_id, "-X", "importtime"), env)
            user = {k: v for k, v in tops.items() if k not in _STARTUP}
            run_total.append(sum(user.values()) / 1000)
            packages: dict[str, int] = {}
            for name, us in user.items():
                top = name.split(".")[0] if not name.startswith("connector") else ".".join(name.split(".")[:2])
                packages[top] = packages.get(top, 0) + us
            for name, us in packages.items():
                per_package.setdefault(name, []).append(us / 1000)
    heaviest = sorted(((percentile(v, 50), k) for k, v in per_package.items()), reverse=True)[:12]
    return {
        "repeats": repeats,
        "import_connector_cli_ms": round(percentile(cli_only, 50), 1),
        "imports_of_one_run_ms": round(percentile(run_total, 50), 1),
        "import_requests_alone_ms": round(percentile(requests_only, 50), 1),
        "heaviest_in_a_run_ms": {k: round(v, 1) for v, k in heaviest},
    }
