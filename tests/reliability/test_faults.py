"""Every transport and server fault against the simulator, over real sockets.

For each fault the action either succeeds within its retry budget or fails
with the right error kind, exit code and one clear sentence; the store holds
the whole result or nothing of it; the time spent (real request time plus
every retry wait) stays within ``timeout_seconds + retry_budget_seconds``;
no more requests are sent than ``max_retries`` allows; and no single wait is
longer than ``max_retry_after_seconds``.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from mde_simulator import ScriptedResponse
from tests.reliability.support import (
    EXAMPLE,
    FILES_PATH,
    VirtualTime,
    assert_all_or_nothing,
    assert_one_sentence,
    blackhole,
    closed_port,
    count,
    make_config,
    run_files,
)

MAX_RETRIES = 3
BUDGET = 20.0
MAX_RETRY_AFTER = 10.0
TIMEOUT = 1.0
SETTINGS = {"max_retries": MAX_RETRIES, "retry_budget_seconds": BUDGET,
            "max_retry_after_seconds": MAX_RETRY_AFTER, "timeout_seconds": TIMEOUT}
EXIT = {"invalid_input": 2, "invalid_config": 2}
TOKEN_PATH = "/oauth2/v2.0/token"


@dataclass(frozen=True)
class Fault:
    """A fault, scripted ``times`` times on ``path``, and what must follow."""

    name: str
    response: ScriptedResponse | None
    expect: str  # "success" or an error kind
    needle: str = ""  # a phrase the failure sentence must contain
    times: int = 1
    config: dict[str, Any] = field(default_factory=dict)

    def scripts(self) -> list[ScriptedResponse]:
        if self.response is None:
            return []
        from dataclasses import replace

        return [replace(self.response, times=self.times)]


def api(status: int = 500, **kw: Any) -> ScriptedResponse:
    kw.setdefault("path_contains", FILES_PATH)
    return ScriptedResponse(status=status, **kw)


def entra(status: int = 500, **kw: Any) -> ScriptedResponse:
    return ScriptedResponse(status=status, path_contains=TOKEN_PATH, **kw)


ALWAYS = MAX_RETRIES + 1  # a fault that outlasts every retry

FAULTS = [
    # 429: with and without Retry-After, absurd and unreadable values
    Fault("429 Retry-After 2 once", api(429, headers={"Retry-After": "2"}), "success"),
    Fault("429 Retry-After 2 always", api(429, headers={"Retry-After": "2"}), "rate_limited", "rate limit", ALWAYS),
    Fault("429 without Retry-After once", api(429), "success"),
    Fault("429 without Retry-After always", api(429), "rate_limited", "rate limit", ALWAYS),
    Fault("429 Retry-After 86400", api(429, headers={"Retry-After": "86400"}), "rate_limited", "86400"),
    Fault("429 Retry-After 0 always", api(429, headers={"Retry-After": "0"}), "rate_limited", "rate limit", ALWAYS),
    Fault("429 Retry-After nan always", api(429, headers={"Retry-After": "nan"}), "rate_limited", "rate limit",
          ALWAYS),
    Fault("429 Retry-After inf", api(429, headers={"Retry-After": "inf"}), "success"),
    Fault("429 Retry-After -5", api(429, headers={"Retry-After": "-5"}), "success"),
    Fault("429 Retry-After garbage", api(429, headers={"Retry-After": "soon"}), "success"),
    # 5xx, with Microsoft's error body
    *[Fault(f"{s} once", api(s), "success") for s in (500, 502, 503, 504)],
    *[Fault(f"{s} always", api(s), "api_error", f"HTTP {s}", ALWAYS) for s in (500, 502, 503, 504)],
    # the connection
    Fault("read timeout once", api(200, action="slow", delay=12 * TIMEOUT), "success"),
    Fault("read timeout always", api(200, action="respond", delay=1.5 * TIMEOUT), "network", "timed out", ALWAYS,
          {"max_retries": 1}),
    Fault("dropped before the response once", api(action="drop"), "success"),
    Fault("dropped before the response always", api(action="drop"), "network", "127.0.0.1", ALWAYS),
    Fault("dropped mid-body once", api(action="truncate"), "success"),
    Fault("dropped mid-body always", api(action="truncate"), "network", "before the whole response", ALWAYS),
    # the body
    Fault("non-JSON body once", api(200, body=b"<<not json>>"), "success"),
    Fault("non-JSON body always", api(200, body=b"<<not json>>"), "api_error", "not the documented JSON", ALWAYS),
    Fault("JSON cut short always", api(200, body=b'{"value": [{"sha1": "f2a0'), "api_error", "not the documented JSON",
          ALWAYS),
    Fault("empty body always", api(200, body=b""), "api_error", "not the documented JSON", ALWAYS),
    Fault("JSON list instead of an object", api(200, body=[{"sha1": "x"}]), "api_error", "not the documented JSON",
          ALWAYS),
    Fault("'value' is not a list", api(200, body={"value": {"sha1": "x"}}), "api_error", "'value' list"),
    Fault("no 'value' at all", api(200, body={"files": []}), "api_error", "'value' list"),
    Fault("HTML page from a proxy once", api(action="html"), "success"),
    Fault("HTML page from a proxy always", api(action="html"), "api_error", "HTML page", ALWAYS),
    Fault("HTML page with 200", api(200, action="html"), "api_error", "HTML page", ALWAYS),
    Fault("error body that is not Microsoft's", api(500, body={"error": "x" * 5000}), "api_error", "HTTP 500",
          ALWAYS),
    # tokens
    Fault("401 once (token revoked)", api(401), "success"),
    Fault("401 always", api(401), "unauthorized", "even after a fresh one", 2),
    Fault("403", api(403), "forbidden", "File.Read.All"),
    Fault("404", api(404), "not_found", "was not found"),
    Fault("400", api(400), "api_error", "HTTP 400"),
    # Entra ID unavailable or misbehaving
    Fault("Entra 503", entra(503), "authentication", "HTTP 503", 10),
    Fault("Entra 500", entra(500), "authentication", "HTTP 500", 10),
    Fault("Entra HTML page", entra(action="html"), "authentication", "HTML", 10),
    Fault("Entra non-JSON 200", entra(200, body=b"<<not json>>"), "authentication", "not JSON", 10),
    Fault("Entra 200 without a token", entra(200, body={"token_type": "Bearer"}), "authentication",
          "access token", 10),
    Fault("Entra dropped", entra(action="drop"), "network", "could not be reached", 10),
    Fault("Entra dropped mid-body", entra(action="truncate"), "network", "could not be reached", 10),
    Fault("Entra read timeout", entra(200, action="respond", delay=1.5 * TIMEOUT), "network",
          "could not be reached", 10),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_ends_in_success_or_the_right_error_within_budget(request: Any, tmp_path: Any, fault: Fault) -> None:
    count("faults")
    slow = fault.response is not None and fault.response.delay > 0
    sim = request.getfixturevalue("own_sim" if slow else "sim")
    sim.script(*fault.scripts())
    settings = {**SETTINGS, **fault.config}
    config = make_config(sim, tmp_path / "state", **settings)
    vt = VirtualTime()
    result, context = run_files(config, vt=vt)

    if fault.expect == "success":
        assert result.ok, result.message
        assert result.artifacts and len(result.data) == len(sim.files_of(EXAMPLE))
    else:
        assert result.status == "failed"
        assert result.error["kind"] == fault.expect, result.message
        assert result.exit_code == EXIT.get(fault.expect, 1)
        assert fault.needle in result.message, result.message
        assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)

    # Bounded: time, number of waits, length of each wait, number of requests.
    assert vt.elapsed <= TIMEOUT + BUDGET + 1.0, (vt.elapsed, vt.waits)
    assert sum(vt.waits) <= BUDGET
    assert len(vt.waits) <= settings["max_retries"]
    assert all(0 < w <= MAX_RETRY_AFTER for w in vt.waits), vt.waits
    api_calls = [r for r in sim.requests if r.path.startswith("/api/")]
    assert len(api_calls) <= settings["max_retries"] + 2  # + one retry with a fresh token after a 401
    if fault.response is not None and fault.response.path_contains == TOKEN_PATH:
        assert api_calls == []  # no token, no API call


def test_retry_after_is_obeyed_to_the_second(sim: Any, tmp_path: Any) -> None:
    count("faults")
    sim.script(api(429, headers={"Retry-After": "7"}))
    vt = VirtualTime()
    result, _ = run_files(make_config(sim, tmp_path / "state", **SETTINGS), vt=vt)
    assert result.ok and vt.waits == [7.0]


def test_retry_after_as_an_http_date_is_read_against_the_servers_date(sim: Any, tmp_path: Any,
                                                                      monkeypatch: Any) -> None:
    # This machine's clock is an hour behind Defender's: the Retry-After date
    # is 4 s after the response's Date header, not an hour and 4 s from now.
    import connector.http.client

    count("faults")
    real = time.time
    monkeypatch.setattr(connector.http.client, "time", _SkewedTime(real, -3600.0))
    when = email.utils.formatdate(real() + 4, usegmt=True)
    sim.script(api(429, headers={"Retry-After": when}))
    vt = VirtualTime()
    result, _ = run_files(make_config(sim, tmp_path / "state", **SETTINGS), vt=vt)
    assert result.ok, result.message
    assert len(vt.waits) == 1 and 2.0 <= vt.waits[0] <= 5.0, vt.waits


class _SkewedTime:
    """Stands in for the ``time`` module with a wall clock off by ``skew``."""

    def __init__(self, real: Any, skew: float) -> None:
        self._real, self._skew = real, skew

    def time(self) -> float:
        return float(self._real() + self._skew)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_connect_timeout_is_retried_then_named(sim: Any, tmp_path: Any) -> None:
    count("faults")
    with blackhole() as port:
        config = make_config(sim, tmp_path / "state", **{**SETTINGS, "max_retries": 1},
                             api_base_url=f"https://127.0.0.1:{port}")
        vt = VirtualTime()
        result, context = run_files(config, vt=vt)
    assert result.error["kind"] == "network"
    assert "timed out" in result.message and f"127.0.0.1:{port}" in result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)
    assert vt.elapsed <= TIMEOUT + BUDGET + 1.0
    assert len(vt.waits) == 1


def test_connection_refused_is_a_network_error(sim: Any, tmp_path: Any) -> None:
    count("faults")
    with closed_port() as port:
        config = make_config(sim, tmp_path / "state", **SETTINGS, api_base_url=f"https://127.0.0.1:{port}")
        result, context = run_files(config)
    assert result.error["kind"] == "network" and f"127.0.0.1:{port}" in result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)


def test_entra_unreachable_is_a_network_error_naming_the_authority(sim: Any, tmp_path: Any) -> None:
    count("faults")
    with closed_port() as port:
        config = make_config(sim, tmp_path / "state", **SETTINGS,
                             authority_url=f"https://127.0.0.1:{port}/{sim.tenant_id}")
        result, context = run_files(config)
    assert result.error["kind"] == "network" and f"127.0.0.1:{port}" in result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)


def test_a_slow_retry_is_cut_to_the_remaining_budget(own_sim: Any, tmp_path: Any) -> None:
    # Every answer takes longer than timeout_seconds (2 s). The first attempt
    # uses its full timeout; the retry only gets what is left of the 3 s
    # budget, so the action ends at the budget, not a whole timeout later.
    count("faults")
    sim = own_sim
    sim.script(api(200, action="respond", delay=3.0, times=ALWAYS))
    config = make_config(sim, tmp_path / "state", **{**SETTINGS, "timeout_seconds": 2.0,
                                                      "retry_budget_seconds": 3.0})
    vt = VirtualTime()
    result, _ = run_files(config, vt=vt)
    assert result.error["kind"] == "network" and "timed out" in result.message
    assert len(vt.waits) >= 1
    assert vt.elapsed <= 3.0 + 0.75, (vt.elapsed, vt.waits)  # without the cut: 2 + ~0.4 + 2


def test_a_token_that_expired_between_calls_is_replaced_once(sim: Any, tmp_path: Any) -> None:
    # The first run caches a token; then this machine's cache still believes
    # it valid while Defender has expired it (clock skew, revocation).
    import json

    count("faults")
    config = make_config(sim, tmp_path / "state", **SETTINGS)
    first, _ = run_files(config)
    assert first.ok
    cache_file = config.state_dir / "token_cache.json"
    cache = json.loads(cache_file.read_text())
    (entry,) = cache["AccessToken"].values()
    entry["secret"] = sim.issue_token(lifetime=-120)
    cache_file.write_text(json.dumps(cache))
    from connector.http import auth

    auth._apps.clear()  # a new process
    sim.reset_log()
    result, context = run_files(config)
    assert result.ok, result.message
    assert sim.token_requests == 1
    assert [r.status for r in sim.requests if r.path.startswith("/api/")] == [401, 200]
    assert len(context.store.artifacts(EXAMPLE)) == len(result.artifacts)


# -- hostile bodies: every exchange is bounded in time and size ---------------------

SAFETY = 120.0  # a hung client fails the test instead of hanging the suite


def _bounded(action: Any) -> Any:
    """``action()`` in a daemon thread; fails when it does not end within SAFETY."""
    import threading

    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(action()), daemon=True)
    thread.start()
    thread.join(SAFETY)
    assert not thread.is_alive(), f"still running after the {SAFETY:g} s safety timeout"
    return out[0]


@pytest.mark.parametrize("response", [
    api(200, action="trickle", delay=0.2, times=ALWAYS),
    api(200, action="endless", delay=0.01, times=ALWAYS),
], ids=["a body trickling one byte at a time", "an endless chunked body"])
def test_a_body_that_never_ends_is_a_network_error_naming_the_deadline(own_sim: Any, tmp_path: Any,
                                                                       response: ScriptedResponse) -> None:
    count("faults")
    own_sim.script(response)
    config = make_config(own_sim, tmp_path / "state", **{**SETTINGS, "max_retries": 1})
    result, context = _bounded(lambda: run_files(config))
    assert result.error["kind"] == "network", result.message
    assert "timeout_seconds" in result.message and "whole" in result.message, result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)


def test_a_trickling_token_endpoint_is_a_network_error_naming_the_deadline(own_sim: Any, tmp_path: Any) -> None:
    count("faults")
    own_sim.script(entra(200, action="trickle", delay=0.2, times=10))
    config = make_config(own_sim, tmp_path / "state", **SETTINGS)
    result, _ = _bounded(lambda: run_files(config))
    assert result.error["kind"] == "network", result.message
    assert "timeout_seconds" in result.message and own_sim.base_url.split("//")[1] in result.message
    assert_one_sentence(result.message)
    assert [r for r in own_sim.requests if r.path.startswith("/api/")] == []


def test_a_body_larger_than_the_cap_is_an_api_error_naming_the_key(sim: Any, tmp_path: Any) -> None:
    count("faults")
    sim.script(api(200, action="endless"))
    config = make_config(sim, tmp_path / "state", **{**SETTINGS, "max_response_mb": 1, "timeout_seconds": 30})
    result, context = _bounded(lambda: run_files(config))
    assert result.error["kind"] == "api_error", result.message
    assert "max_response_mb" in result.message and "1 MB" in result.message, result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)
    assert len([r for r in sim.requests if r.path.startswith("/api/")]) == 1  # the same answer is not asked again


def test_a_gzip_bomb_is_an_api_error_with_bounded_memory(sim: Any, tmp_path: Any) -> None:
    # 1 GiB of decompressed body from about 1 MB on the wire, read by a CLI
    # process whose address space is limited: reading it whole would end in
    # a MemoryError, not the api_error.
    import json
    import subprocess
    import sys

    from tests.reliability.support import ROOT, cli_env

    count("faults")
    count("processes")
    sim.script(api(200, action="gzip_bomb", size=1 << 30, times=ALWAYS))
    config_file = sim.write_config(tmp_path / "config.json", state_dir=str(tmp_path / "state"),
                                   **{**SETTINGS, "timeout_seconds": 60, "max_response_mb": 64})
    limit = 1536 << 20

    def cap_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "connector", "run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}",
         "--config", str(config_file), "--output", "json"],
        capture_output=True, text=True, env=cli_env(), cwd=ROOT, timeout=SAFETY, preexec_fn=cap_memory)
    assert proc.returncode == 1 and proc.stdout.startswith("{"), (proc.returncode, proc.stderr[-2000:])
    result = json.loads(proc.stdout)
    assert result["error"]["kind"] == "api_error", result["message"]
    assert "max_response_mb" in result["message"] and "64 MB" in result["message"], result["message"]
    assert_one_sentence(result["message"])


def test_a_next_link_back_to_a_served_page_ends_paging_at_once(fresh_simulator: Any, tmp_path: Any) -> None:
    from connector.http import auth

    count("faults")
    auth._apps.clear()
    sim = fresh_simulator(rate_per_minute=1_000_000, rate_per_hour=10_000_000, files_page_size=2)
    sim.script(api(200, action="loop", path_contains="$skip="))
    config = make_config(sim, tmp_path / "state", **{**SETTINGS, "max_pages": 50})
    result, context = _bounded(lambda: run_files(config))
    assert result.error["kind"] == "api_error", result.message
    assert "already served" in result.message, result.message
    assert_one_sentence(result.message)
    assert_all_or_nothing(context.store, EXAMPLE, result)
    # page 1, page 2 pointing back to page 1, and nothing more
    assert len([r for r in sim.requests if r.path.startswith("/api/")]) == 2


def test_a_next_link_to_the_same_page_ends_paging_at_once(sim: Any, tmp_path: Any) -> None:
    count("faults")
    sim.script(api(200, action="loop"))
    config = make_config(sim, tmp_path / "state", **{**SETTINGS, "max_pages": 50})
    result, _ = _bounded(lambda: run_files(config))
    assert result.error["kind"] == "api_error" and "already served" in result.message, result.message
    assert len([r for r in sim.requests if r.path.startswith("/api/")]) == 1


def test_json_nested_too_deeply_is_an_api_error(sim: Any, tmp_path: Any) -> None:
    count("faults")
    deep = b'{"value": [' + b"[" * 200_000 + b"]" * 200_000 + b"]}"
    sim.script(api(200, body=deep, times=ALWAYS))
    result, context = run_files(make_config(sim, tmp_path / "state", **SETTINGS))
    assert result.error["kind"] == "api_error" and "nested too deeply" in result.message, result.message
    assert_one_sentence(result.message)
    # The same answer again would be as deep: one request, no retries spent on it.
    assert len([r for r in sim.requests if r.path.startswith("/api/")]) == 1
    assert_all_or_nothing(context.store, EXAMPLE, result)


def test_nan_and_infinity_in_a_file_are_read_as_null(sim: Any, tmp_path: Any) -> None:
    count("faults")
    file = b'{"sha1": "f2a00fd2f2de1be0214b8594e0e1a5b8a5b3e4c1", "fileName": "\\ud800\\u202e.exe", '
    sim.script(api(200, body=b'{"value": [' + file + b'"size": NaN, "fileSize": Infinity, "x": -Infinity}]}'))
    result, _ = run_files(make_config(sim, tmp_path / "state", **SETTINGS))
    assert result.ok, result.message
    (only,) = result.data
    assert only["size"] is None and only["fileSize"] is None and only["x"] is None
