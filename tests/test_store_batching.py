"""Fewer writes for the same data: an unchanged artifact list is not written
again, a triggered playbook run through ``watch`` costs at most three store
write transactions per alert, and writes held for a run that does not
finish are never written by a later transaction."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import connector.runtime.store as store_module
from connector.artifacts import build_artifacts
from connector.runtime.engine import triggered_run_id
from connector.runtime.poller import parse_since
from connector.runtime.store import Store
from mde_simulator import EXAMPLE_FILE
from tests.conftest import make_config
from tests.test_poller import make_poller


class Statements:
    """Every SQL statement run on the store connections opened from now on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.sql: list[str] = []
        real = store_module.open_database

        def traced(path: Path, **kwargs: Any) -> Any:
            conn = real(path, **kwargs)
            conn.set_trace_callback(self._add)
            return conn

        monkeypatch.setattr(store_module, "open_database", traced)

    def _add(self, sql: str) -> None:
        with self.lock:
            self.sql.append(sql)

    def take(self) -> list[str]:
        with self.lock:
            out, self.sql = self.sql, []
        return out

    @staticmethod
    def writes(sql: list[str]) -> int:
        return sum(1 for s in sql if s.startswith("BEGIN IMMEDIATE"))


def _artifacts(alert_id: str, n: int) -> list[dict[str, Any]]:
    files = [dict(EXAMPLE_FILE, sha1=f"{i:040x}", sha256=f"{i:064x}") for i in range(n)]
    return build_artifacts(alert_id, files).artifacts


def test_an_unchanged_artifact_list_is_not_written_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    statements = Statements(monkeypatch)
    store = Store.open(tmp_path / "state")
    artifacts = _artifacts("a1", 50)
    with store.transaction() as conn:
        store.upsert_container(conn, "a1")
        assert store.upsert_artifacts(conn, artifacts) == 50
    statements.take()
    with store.transaction() as conn:
        assert store.upsert_artifacts(conn, [dict(a) for a in artifacts]) == 0
    assert not [s for s in statements.take() if "INTO artifacts" in s]
    # One artifact changed: the list is written (that row updated), none added.
    changed = [dict(a) for a in artifacts]
    changed[7] = dict(changed[7], severity="high", name="renamed")
    with store.transaction() as conn:
        assert store.upsert_artifacts(conn, changed) == 0
    assert [s for s in statements.take() if "INTO artifacts" in s]
    assert store.artifacts("a1")[7]["name"] == "renamed"
    # Back to the first list: written again, not mistaken for unchanged.
    with store.transaction() as conn:
        store.upsert_artifacts(conn, artifacts)
    assert store.artifacts("a1") == artifacts


def test_a_triggered_run_costs_at_most_three_write_transactions(
        fresh_simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = fresh_simulator()
    unsigned = dict(EXAMPLE_FILE, sha1="4" * 40, sha256="5" * 64, signer=None, issuer=None, signerHash=None,
                    isValidCertificate=None)
    statements = Statements(monkeypatch)
    poller = make_poller(make_config(sim.connector_config(), tmp_path / "state"), workers=1)
    poller.poll_once(since=parse_since("1s"))
    alerts = [sim.add_alert(files=[dict(EXAMPLE_FILE), unsigned]) for _ in range(3)]
    statements.take()
    report = poller.poll_once()
    assert sorted(report.processed) == sorted(a["id"] for a in alerts)
    assert [r["status"] for r in report.playbook_runs] == ["success"] * 3
    # Per alert: the alert with its queued run, the action's result, the run's
    # end; plus one for the whole poll's checkpoint.
    assert Statements.writes(statements.take()) <= 3 * len(alerts) + 1
    for alert in alerts:
        container = poller.store.container(alert["id"])
        assert container["severity"] in ("medium", "high")
        assert container["tags"] == ["suspicious-files"] and len(container["notes"]) == 1
        row = poller.store.playbook_run(triggered_run_id("triage_new_alert", alert["id"]))
        assert row["status"] == "success" and row["attempts"] == 1 and row["lease_expires"] is None


def test_held_writes_of_a_run_that_did_not_finish_are_dropped(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state")
    store.later(lambda conn: store.add_note(conn, "a1", "from an abandoned run"))
    store.drop_later()
    with store.transaction() as conn:
        store.upsert_container(conn, "a1")
    assert store.container("a1")["notes"] == []
    # Held writes undone by a failed transaction are held again, not lost.
    store.later(lambda conn: store.add_note(conn, "a1", "kept"))
    with pytest.raises(RuntimeError), store.transaction():
        raise RuntimeError("boom")
    store.flush_later()
    assert store.container("a1")["notes"] == ["kept"]


def test_a_write_of_several_containers_forgets_their_digests(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state")
    first, other = _artifacts("a1", 3), _artifacts("a2", 2)
    with store.transaction() as conn:
        store.upsert_container(conn, "a1")
        store.upsert_container(conn, "a2")
        store.upsert_artifacts(conn, first)
        # Both containers at once (no digest), a1's first artifact changed.
        store.upsert_artifacts(conn, [dict(first[0], name="changed"), *other])
        assert store.artifacts("a1")[0]["name"] == "changed"
        # The first list again: not mistaken for unchanged, so written.
        store.upsert_artifacts(conn, first)
    assert store.artifacts("a1") == first
