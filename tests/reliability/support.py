"""Helpers of the reliability and security suite.

``STATS`` counts what the suite tried (faults, hypothesis examples, kill
points, processes, canaries); ``conftest.py`` prints the counts at the end of
the run and the README's "Reliability and security" section quotes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mde_simulator import EXAMPLE_ALERT_ID

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = EXAMPLE_ALERT_ID
FILES_PATH = f"/api/alerts/{EXAMPLE}/files"

STATS: Counter[str] = Counter()


def count(what: str, n: int = 1) -> None:
    """Add ``n`` to the suite's counter ``what`` (shown at the end of the run)."""
    STATS[what] += n


class VirtualTime:
    """An injected clock and sleep for DefenderClient: sleeping is instant but
    counted, and the clock is real time plus everything slept, so a budget
    check sees both real request time (timeouts) and the retry waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.slept = 0.0
        self.start = time.monotonic()

    def clock(self) -> float:
        return time.monotonic() + self.slept

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.slept += seconds

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start


def make_config(sim: Any, state_dir: Path, **overrides: Any) -> Any:
    """A resolved Config for ``sim`` (None removes a key)."""
    from connector.config import resolve

    values = sim.connector_config(state_dir=str(state_dir))
    for key, value in overrides.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = str(value) if isinstance(value, Path) else value
    return resolve(values)


def run_files(config: Any, alert_id: str = EXAMPLE, vt: VirtualTime | None = None) -> tuple[Any, Any]:
    """Run get_alert_related_files in-process with injected time; returns
    (result, context)."""
    from connector.actions import ActionContext, run_action
    from connector.http.client import DefenderClient
    from connector.runtime.store import Store

    vt = vt or VirtualTime()

    def factory(cfg: Any) -> Any:
        return DefenderClient.from_config(cfg, sleep=vt.sleep, clock=vt.clock)

    context = ActionContext(config=config, store=Store.open(config.state_dir), client_factory=factory)
    return run_action("get_alert_related_files", {"alert_id": alert_id}, context), context


def assert_one_sentence(text: str) -> None:
    """A user-facing error: one printable line ending with a full stop, no
    traceback, no Python repr noise."""
    assert text and text.isprintable(), repr(text)
    assert text.rstrip().endswith("."), text
    assert "Traceback" not in text and "internal error" not in text, text
    assert len(text) < 600, text


def assert_all_or_nothing(store: Any, alert_id: str, result: Any) -> None:
    """The store holds the whole result (container, every artifact, one run
    record) or, for a failure, nothing of it but the failed run record."""
    stored = store.artifacts(alert_id)
    container = store.container(alert_id)
    runs = [r for r in store.action_runs() if r["container"] == alert_id]
    assert [r["status"] for r in runs] == [result.status]
    if result.ok:
        assert container is not None
        assert stored == result.artifacts
        assert container["artifact_count"] == len(result.artifacts)
    else:
        assert container is None and stored == []
        assert json.loads(runs[0]["error"])["kind"] == result.error["kind"]


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A loopback port whose accept queue is full, so a TCP connect to it
    hangs until the client's connect timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)  # let the handshakes fill the queue (no test waits on this)
    try:
        yield port
    finally:
        for sock in [*fillers, server]:
            sock.close()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield port


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: no MDE_* or CA/proxy variables
    inherited from the developer's shell."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MDE_") and k not in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY",
                                                      "https_proxy", "HTTP_PROXY", "http_proxy"}}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60,
            umask: int | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m connector ARGS`` as a subprocess."""
    count("processes")

    def pre() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True,
                          env=cli_env(env), timeout=timeout, cwd=ROOT, preexec_fn=pre if umask is not None else None)
