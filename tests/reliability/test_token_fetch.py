"""Token requests: test-connectivity proves the credential with a token just
issued, and no lock (the token cache file's, the application table's) is
held while Entra ID is being asked, so a stuck sign-in host stalls no one else."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import Any

from mde_simulator import ScriptedResponse
from tests.reliability.support import EXAMPLE, assert_one_sentence, count, make_config, run_files

SAFETY = 120.0


def run_connectivity(config: Any) -> Any:
    from connector.actions import ActionContext, run_action
    from connector.http.client import DefenderClient
    from connector.runtime.store import Store

    context = ActionContext(config=config, store=Store.open(config.state_dir),
                            client_factory=lambda cfg: DefenderClient.from_config(cfg, sleep=lambda s: None))
    return run_action("test_connectivity", {}, context)


def test_connectivity_with_a_wrong_secret_fails_even_with_a_valid_token_cached(sim: Any, tmp_path: Any) -> None:
    from connector.http import auth

    count("faults")
    state = tmp_path / "state"
    good = make_config(sim, state)
    assert run_files(good)[0].ok  # caches a valid token
    auth._apps.clear()  # a new process
    wrong = make_config(sim, state, client_secret="wrong-secret-\u202e-value")
    sim.reset_log()

    result = run_connectivity(wrong)
    assert result.status == "failed" and result.error["kind"] == "authentication", result.message
    assert result.exit_code == 1
    assert "AADSTS7000215" in result.message, result.message
    assert_one_sentence(result.message)
    assert "wrong-secret" not in result.message
    assert sim.token_requests == 1 and [r for r in sim.requests if r.path.startswith("/api/")] == []

    # The action itself may still use the cached token.
    auth._apps.clear()
    assert run_files(wrong)[0].ok


def test_connectivity_calls_the_api_with_the_token_it_just_got(sim: Any, tmp_path: Any) -> None:
    count("faults")
    config = make_config(sim, tmp_path / "state")
    assert run_files(config)[0].ok
    sim.reset_log()
    result = run_connectivity(config)
    assert result.ok, result.message
    assert sim.token_requests == 1
    api_calls = [r for r in sim.requests if r.path.startswith("/api/")]
    assert len(api_calls) == 1 and api_calls[0].status == 200


def _stuck_on(sim: Any, path: str, action: Any) -> threading.Thread:
    """Start ``action`` in a thread and wait until its request to ``path`` is
    being answered (slowly) by the simulator."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    deadline = time.monotonic() + SAFETY
    while not any(path in r.path for r in sim.requests):
        assert time.monotonic() < deadline and thread.is_alive(), "the request never arrived"
        time.sleep(0.01)
    return thread


def test_the_token_cache_lock_is_free_while_entra_trickles_its_answer(own_sim: Any, tmp_path: Any) -> None:
    from connector.http.auth import TokenProvider
    from connector.http.transport import build_session

    count("faults")
    config = make_config(own_sim, tmp_path / "state", timeout_seconds=8)
    provider = TokenProvider(config, build_session(config))
    provider._application()  # discovery done; only the token request remains
    own_sim.script(ScriptedResponse(200, action="trickle", delay=0.5, path_contains="/oauth2/v2.0/token"))
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            provider.token()
        except BaseException as exc:  # noqa: BLE001 - examined below
            errors.append(exc)

    thread = _stuck_on(own_sim, "/oauth2/v2.0/token", fetch)
    fd = os.open(config.state_dir / "token_cache.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError when held
        still_fetching = thread.is_alive()
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    assert still_fetching
    thread.join(SAFETY)
    assert not thread.is_alive()
    assert errors and getattr(errors[0], "kind", None) == "network", errors


def test_the_application_table_lock_is_free_while_discovery_trickles(own_sim: Any, tmp_path: Any) -> None:
    from connector.http import auth
    from connector.http.auth import TokenProvider
    from connector.http.transport import build_session

    count("faults")
    config = make_config(own_sim, tmp_path / "state", timeout_seconds=8)
    provider = TokenProvider(config, build_session(config))
    own_sim.script(ScriptedResponse(200, action="trickle", delay=0.5, path_contains="openid-configuration"))
    thread = _stuck_on(own_sim, "openid-configuration", lambda: _quietly(provider._application))
    acquired = auth._apps_lock.acquire(blocking=False)
    still_building = thread.is_alive()
    if acquired:
        auth._apps_lock.release()
    assert acquired and still_building
    thread.join(SAFETY)
    assert not thread.is_alive()


def _quietly(action: Any) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001, S110 - the outcome is not what this test checks
        pass


def test_files_run_after_connectivity_reuse_the_cache(sim: Any, tmp_path: Any) -> None:
    count("faults")
    config = make_config(sim, tmp_path / "state")
    assert run_files(config, EXAMPLE)[0].ok
    sim.reset_log()
    assert run_files(config, EXAMPLE)[0].ok
    assert sim.token_requests == 0


def test_no_rate_budget_or_store_lock_is_held_while_a_body_trickles(own_sim: Any, tmp_path: Any) -> None:
    import sqlite3

    from tests.reliability.support import FILES_PATH

    count("faults")
    config = make_config(own_sim, tmp_path / "state", timeout_seconds=8, max_retries=0)
    assert run_files(config)[0].ok  # both databases exist
    own_sim.reset_log()
    own_sim.script(ScriptedResponse(200, action="trickle", delay=0.5, path_contains=FILES_PATH))
    results: list[Any] = []
    thread = _stuck_on(own_sim, FILES_PATH, lambda: results.append(run_files(config)[0]))
    writable = []
    conn = sqlite3.connect(config.state_dir / "store.sqlite", timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # "database is locked" if a writer held it
        conn.execute("ROLLBACK")
        writable.append("store.sqlite")
    finally:
        conn.close()
    fd = os.open(config.state_dir / "rate_budget.sqlite.slots", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if a caller held it
        writable.append("rate_budget.sqlite.slots")
    finally:
        os.close(fd)
    still_fetching = thread.is_alive()
    thread.join(SAFETY)
    assert not thread.is_alive()
    assert writable == ["store.sqlite", "rate_budget.sqlite.slots"] and still_fetching
    assert results and results[0].error["kind"] == "network", results
