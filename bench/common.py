"""Shared pieces of the benchmark: statistics, machine facts, and the
simulator running in a child process.

The simulator runs in its own process (``SimProcess``) so that its request
handling never competes with the measured client for the GIL, as a real
server would not. The benchmark drives it over a ``multiprocessing`` pipe:
add alerts, read the request log, count token requests.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


# -- statistics -----------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks."""
    if not values:
        return float("nan")
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return float(data[low] + (data[high] - data[low]) * (pos - low))


def summary_ms(samples_ns: Sequence[int]) -> dict[str, Any]:
    """p50/p90/p99/min/max in milliseconds of nanosecond samples."""
    ms = [s / 1e6 for s in samples_ns]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(min(ms), 3) if ms else None,
        "max_ms": round(max(ms), 3) if ms else None,
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    import requests
    import urllib3

    info["requests"] = requests.__version__
    info["urllib3"] = urllib3.__version__
    try:
        import msal

        info["msal"] = msal.__version__
    except ImportError:
        pass
    import sqlite3

    info["sqlite"] = sqlite3.sqlite_version
    return info


def git_revision() -> dict[str, Any]:
    """HEAD and whether product files differ from it (the numbers then
    describe the work tree, not HEAD)."""
    import subprocess

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "connector_modified": bool(git("status", "--porcelain", "--", "connector")),
    }


# -- the simulator in a child process -------------------------------------------


def _serve(conn: Any, state_dir: str, options: dict[str, Any]) -> None:
    """Child process: run a Simulator and answer commands until 'stop'."""
    from mde_simulator import EXAMPLE_FILE, Simulator, SimulatorOptions

    sim = Simulator(Path(state_dir), SimulatorOptions(**options)).start()
    conn.send({"base_url": sim.base_url, "ca_bundle": str(sim.ca_bundle), "config": sim.connector_config()})
    while True:
        try:
            command, args = conn.recv()
        except EOFError:
            break
        try:
            if command == "stop":
                break
            if command == "add_alerts":
                count, files = args
                files = [EXAMPLE_FILE] if files is None else files
                reply: Any = [sim.add_alert(files=files)["id"] for _ in range(count)]
            elif command == "requests":
                reply = [
                    {"method": r.method, "path": r.path, "status": r.status, "started": r.started,
                     "duration": r.duration}
                    for r in sim.requests
                ]
            elif command == "token_requests":
                reply = sim.token_requests
            elif command == "reset_log":
                sim.reset_log()
                reply = None
            elif command == "reset_rate_limits":
                sim.reset_rate_limits()
                reply = None
            elif command == "warm":
                sim.warm(*args)
                reply = None
            elif command == "clock":
                reply = time.monotonic()
            else:
                raise ValueError(f"unknown command {command!r}")
            conn.send(("ok", reply))
        except Exception as exc:  # noqa: BLE001 - report to the parent
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    sim.stop()


class SimProcess:
    """The simulator, started in a child process with ``SimulatorOptions(**options)``.

    Request records come back as dicts with ``started`` on the child's
    ``time.monotonic`` clock (the same clock as the parent's on Linux).
    """

    def __init__(self, state_dir: Path, **options: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, str(state_dir), options), daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60):
            self._proc.kill()
            raise RuntimeError("the simulator did not start within 60 s")
        info = self._conn.recv()
        self.base_url: str = info["base_url"]
        self.ca_bundle: str = info["ca_bundle"]
        self.config: dict[str, Any] = info["config"]
        self.options = options

    def _call(self, command: str, *args: Any) -> Any:
        self._conn.send((command, args))
        status, reply = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"simulator: {reply}")
        return reply

    def add_alerts(self, count: int, files: list[dict[str, Any]] | None = None) -> list[str]:
        """Add ``count`` alerts, each with ``files`` (default: one documented
        example file); returns their ids."""
        return list(self._call("add_alerts", count, files))

    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("requests"))

    def token_requests(self) -> int:
        return int(self._call("token_requests"))

    def reset_log(self) -> None:
        self._call("reset_log")

    def reset_rate_limits(self) -> None:
        self._call("reset_rate_limits")

    def warm(self, *alert_ids: str) -> None:
        self._call("warm", *alert_ids)

    def stop(self) -> None:
        try:
            self._conn.send(("stop", ()))
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of every process the benchmark starts: no MDE_*
    variables, and compiled bytecode as an installed package has it.

    pip compiles a package when it installs it; this work tree is installed
    in editable mode, and a ``PYTHONDONTWRITEBYTECODE`` in the environment
    would make every CLI run compile the connector from source (~30 ms) while
    requests, from site-packages, runs from bytecode. The benchmark keeps its
    own bytecode cache (``PYTHONPYCACHEPREFIX``, outside the tree) so that the
    CLI and the baseline scripts both run from bytecode after a warm-up run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDE_") and k != "BENCH_TOKEN"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / f"mde-connector-bench-pycache-{os.getuid()}")
    env.update(extra)
    return env


def write_config(path: Path, values: dict[str, Any]) -> Path:
    """A connector configuration file (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh, indent=2)
    return path


def cached_access_token(state_dir: Path) -> str:
    """The access token the connector cached (for the baseline scripts, which
    must not pay for a token request)."""
    cache = json.loads((state_dir / "token_cache.json").read_text(encoding="utf-8"))
    entries = list((cache.get("AccessToken") or {}).values())
    if not entries:
        raise RuntimeError(f"no access token cached in {state_dir}")
    return str(entries[0]["secret"])


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
