"""Network failures say what was tried (issue 14, item 8): a name that does not
resolve, a refused connection and a server that never answers are three
different sentences, with real sockets on loopback (offline: the unresolvable
name is under .invalid, which no resolver answers). Retries in progress and
rate-budget waits are told to a terminal."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.errors import NetworkError
from connector.http.transport import connection_failure


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A listening socket that accepts connections (the kernel does) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _failure(url: str, timeout: float | tuple[float, float] = 5.0) -> tuple[str, str]:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, timeout=timeout)
    return connection_failure(caught.value, url, timeout)


def test_a_refused_connection_says_refused_and_where() -> None:
    port = _free_port()
    sentence, hint = _failure(f"http://127.0.0.1:{port}/api")
    assert f"127.0.0.1:{port} refused the connection" in sentence
    assert "port" in hint


def test_an_unresolvable_name_is_a_dns_failure() -> None:
    sentence, hint = _failure("https://api.mde-connector-test.invalid/api")
    assert "api.mde-connector-test.invalid could not be resolved (DNS lookup failed)" in sentence
    assert "refused" not in sentence and "timed out" not in sentence
    assert "DNS" in hint


def test_a_server_that_never_answers_is_a_timeout_after_connecting(silent_server: int) -> None:
    sentence, hint = _failure(f"http://127.0.0.1:{silent_server}/api", timeout=(5.0, 0.3))
    assert f"127.0.0.1:{silent_server} accepted the connection, then timed out" in sentence
    assert "after 0.3 s" in sentence and "refused" not in sentence and "resolved" not in sentence
    assert "timeout_seconds" in hint


def test_a_connect_timeout_is_its_own_sentence() -> None:
    import urllib3.exceptions

    inner = urllib3.exceptions.ConnectTimeoutError(None, "timed out")
    exc = requests.exceptions.ConnectTimeout(urllib3.exceptions.MaxRetryError(None, "/", inner))  # type: ignore[arg-type]
    sentence, _ = connection_failure(exc, "https://10.255.255.1/api", (4.0, 30.0))
    assert sentence.startswith("Connecting to 10.255.255.1:443 timed out after 4 s: nothing answered")


def test_the_three_sentences_differ(silent_server: int) -> None:
    refused = _failure(f"http://127.0.0.1:{_free_port()}/")[0]
    dns = _failure("http://nothing-here.invalid/")[0]
    silent = _failure(f"http://127.0.0.1:{silent_server}/", timeout=(5.0, 0.3))[0]
    keywords = ("refused", "could not be resolved", "timed out")
    found = [[k for k in keywords if k in sentence] for sentence in (refused, dns, silent)]
    assert found == [["refused"], ["could not be resolved"], ["timed out"]]


# -- through the client and the command line ----------------------------------------------


class _Tokens:
    def token(self) -> str:
        return "token"

    def invalidate(self) -> None:
        pass


def _config(tmp_path: Path, api: str, authority: str = "https://127.0.0.1:9/tenant") -> Any:
    from connector.config import resolve

    return resolve({"tenant_id": "contoso.onmicrosoft.com", "client_id": "client", "client_secret": "secret-1234",
                    "api_base_url": api, "authority_url": authority, "state_dir": str(tmp_path / "state"),
                    "timeout_seconds": 2, "max_retries": 2})


def test_the_client_reports_a_refused_api_and_tells_each_retry(tmp_path: Path) -> None:
    from connector.http.client import DefenderClient
    from connector.http.transport import build_session

    port = _free_port()
    config = _config(tmp_path, f"https://127.0.0.1:{port}")
    told: list[str] = []
    waits: list[float] = []
    client = DefenderClient(config, session=build_session(config), tokens=_Tokens(), sleep=waits.append,
                            rng=lambda: 1.0)
    client.notify = told.append
    with pytest.raises(NetworkError) as caught:
        client.alert_files("da123")
    assert f"127.0.0.1:{port} refused the connection" in caught.value.message
    assert len(told) == 2 == len(waits)
    assert told[0].endswith(f"retrying in {max(1, round(waits[0]))} s, attempt 2 of 3")
    assert "refused the connection" in told[0] and told[1].endswith("attempt 3 of 3")


def test_test_connectivity_names_a_refused_sign_in_authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    port = _free_port()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"tenant_id": "contoso.onmicrosoft.com", "client_id": "client",
                                  "client_secret": "secret-1234", "api_base_url": "https://127.0.0.1:9",
                                  "authority_url": f"https://127.0.0.1:{port}/contoso.onmicrosoft.com",
                                  "state_dir": str(tmp_path / "state")}), encoding="utf-8")
    config.chmod(0o600)
    assert main(["test-connectivity", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"The sign-in authority https://127.0.0.1:{port} could not be reached: 127.0.0.1:{port} refused" in err
    assert "secret-1234" not in err


def test_a_rate_budget_wait_tells_its_real_remaining_time(tmp_path: Path) -> None:
    from connector.http.ratelimit import RateBudget

    now = [1_700_000_000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    budget = RateBudget(tmp_path / "rate.sqlite", [(1, 60)], clock=lambda: now[0], sleep=sleep)
    told: list[float] = []
    budget.on_wait = told.append
    budget.acquire()
    now[0] += 15
    budget.acquire()
    assert len(told) == 1 and 44 < told[0] < 46  # 60 s window, 15 s already passed


def _on_a_terminal(*args: str, expect: int) -> str:
    """Run the command with stdout and stderr on a pseudo-terminal; what it showed."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDE_")}
    proc = subprocess.Popen([sys.executable, "-m", "connector", *args], stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=300) == expect
    return b"".join(chunks).decode("utf-8", "replace")


def _config_file(tmp_path: Path, values: dict[str, Any]) -> str:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**values, "state_dir": str(tmp_path / "state")}), encoding="utf-8")
    config.chmod(0o600)
    return str(config)


def test_retries_show_on_a_terminal(simulator: Any, tmp_path: Path) -> None:
    """On a pseudo-terminal, ``run`` tells each retry as it waits; the token
    comes from the simulator, the API's port refuses."""
    port = _free_port()
    config = _config_file(tmp_path, {**simulator.connector_config(), "api_base_url": f"https://127.0.0.1:{port}",
                                     "max_retries": 2})
    shown = _on_a_terminal("run", "get_alert_related_files", "--param", "alert_id=da123", "--config", config,
                           expect=1)
    assert "retrying in" in shown and "attempt 2 of 3" in shown and "attempt 3 of 3" in shown
    assert f"127.0.0.1:{port} refused the connection" in shown


def test_watch_shows_a_rate_budget_wait_on_a_terminal(simulator: Any, tmp_path: Path) -> None:
    """One call a (scaled) minute: watch tells the wait for the next call,
    where the backlog's ETA would have said 0 s."""
    config = _config_file(tmp_path, {**simulator.connector_config(), "rate_per_minute": 1,
                                     "rate_time_scale": 0.1})  # a minute lasts 6 s
    shown = _on_a_terminal("watch", "--once", "--no-playbooks", "--page-size", "20", "--since", "30d",
                           "--config", config, expect=0)
    import re

    waits = [int(n) for n in re.findall(r"the connector's rate budget is full; next call in (\d+) s", shown)]
    assert waits and all(1 <= n <= 6 for n in waits)
    assert "ETA 0 s" not in shown
