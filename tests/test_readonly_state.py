"""A read-only state directory and store: the listing commands still work;
the commands that write fail in one sentence with exit code 2.

Root ignores permission bits, so when the tests run as root the CLI runs in
a subprocess without root's capabilities (``setpriv``): still the owner of
the state directory, it can no longer write it (mode 0500, files 0400)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.runtime.store import Store

ALERT = "da637308392288907382_-880718168"
REPO = Path(__file__).resolve().parent.parent
CONFIG = {"tenant_id": "8b6b2c1e-5f0c-4f5e-9d43-2a1e6f3b7c90", "client_id": "3c2f1b7a-9e44-4d1c-8a5b-6f0e2d9c1a37",
          "client_secret": "Kq8~S3cr3t.V4lue-Never-Printed", "api_base_url": "https://127.0.0.1:9",
          "authority_url": "https://127.0.0.1:9/tenant"}


@pytest.fixture
def read_only_state() -> Iterator[tuple[Path, Path]]:
    """(state directory, config file), a store with one container and one
    artifact in it, read-only for the user the CLI runs as."""
    base = Path(tempfile.mkdtemp(prefix="mde-ro-"))
    try:
        base.chmod(0o755)
        state = base / "state"
        store = Store.open(state)
        with store.transaction() as conn:
            store.upsert_container(conn, ALERT, name="Suspicious file", severity="high")
            store.upsert_artifacts(conn, [{
                "name": "File", "label": "file", "type": "file", "severity": "high", "container": ALERT,
                "source_data_identifier": f"{ALERT}:sha256:" + "a" * 64,
                "cef": {"fileHashSha256": "a" * 64}, "cef_types": {"fileHashSha256": ["sha256", "hash"]},
            }])
        store.close()
        config = base / "mde.json"
        config.write_text(json.dumps({**CONFIG, "state_dir": str(state)}), encoding="utf-8")
        config.chmod(0o600)
        for path in state.iterdir():
            path.chmod(0o400)
        state.chmod(0o500)
        yield state, config
    finally:
        for path in [base, *base.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o700)
        shutil.rmtree(base)


def _unprivileged() -> list[str]:
    """The command prefix that makes root obey permission bits."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: root would write a read-only directory anyway")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all"]


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONPATH": str(REPO),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([*_unprivileged(), sys.executable, "-m", "connector", *args], capture_output=True,
                          text=True, env=env, cwd="/", timeout=120, check=False)


def test_the_fixture_really_cannot_write(read_only_state: tuple[Path, Path]) -> None:
    state, _ = read_only_state
    probe = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
             "c.execute('CREATE TABLE probe (x)')")
    proc = subprocess.run([*_unprivileged(), sys.executable, "-c", probe, str(state / "store.sqlite")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "readonly" in proc.stderr


@pytest.mark.parametrize("command", [["containers", "list"], ["runs", "list"], ["artifacts", "list"]])
def test_listing_commands_work_on_a_read_only_state_directory(read_only_state: tuple[Path, Path],
                                                              command: list[str]) -> None:
    state, _ = read_only_state
    proc = cli(*command, "--state-dir", str(state), "--output", "json", home=state.parent)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert isinstance(listed, list)
    if command[0] == "containers":
        assert [c["alert_id"] for c in listed] == [ALERT]
    if command[0] == "artifacts":
        assert [a["container"] for a in listed] == [ALERT]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in state.iterdir()) == ["store.sqlite"]  # nothing written


def test_listing_through_the_configuration_works_too(read_only_state: tuple[Path, Path]) -> None:
    state, config = read_only_state
    proc = cli("containers", "list", "--config", str(config), home=state.parent)
    assert proc.returncode == 0, proc.stderr
    assert ALERT in proc.stdout


def test_running_an_action_on_a_read_only_state_directory_fails_in_one_sentence(
        read_only_state: tuple[Path, Path]) -> None:
    state, config = read_only_state
    proc = cli("run", "get_alert_related_files", "-p", f"alert_id={ALERT}", "--config", str(config),
               home=state.parent)
    assert proc.returncode == 2
    assert "read-only" in proc.stderr and str(state) in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert CONFIG["client_secret"] not in proc.stderr + proc.stdout


def test_watch_on_a_read_only_state_directory_fails_in_one_sentence(read_only_state: tuple[Path, Path]) -> None:
    state, config = read_only_state
    proc = cli("watch", "--once", "--config", str(config), home=state.parent)
    assert proc.returncode == 2, proc.stderr
    assert "read-only" in proc.stderr and "Traceback" not in proc.stderr


def test_an_action_on_a_read_only_store_in_a_writable_directory_fails_in_one_sentence(
        read_only_state: tuple[Path, Path]) -> None:
    state, config = read_only_state
    state.chmod(0o700)  # the directory is writable again; the store file is not
    proc = cli("run", "get_alert_related_files", "-p", f"alert_id={ALERT}", "--config", str(config),
               home=state.parent)
    assert proc.returncode == 2
    assert "The store" in proc.stderr and "read-only" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_listing_a_writable_older_store_still_brings_its_schema_up_to_date(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    from connector.cli.main import main

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with sqlite3.connect(state / "store.sqlite") as conn:  # a store from before playbook runs
        conn.execute("CREATE TABLE containers (alert_id TEXT PRIMARY KEY, name TEXT NOT NULL)")
    conn.close()
    assert main(["runs", "list", "--state-dir", str(state), "--output", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and err == ""


@pytest.mark.parametrize("command", [["containers", "show", ALERT], ["artifacts", "list", "--hash", "A" * 64],
                                     ["containers", "list", "--limit", "1"], ["artifacts", "list", "--limit", "1"]])
def test_show_search_and_paging_work_on_a_read_only_state_directory(read_only_state: tuple[Path, Path],
                                                                   command: list[str]) -> None:
    state, _ = read_only_state
    proc = cli(*command, "--state-dir", str(state), "--output", "json", home=state.parent)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    found = [shown] if isinstance(shown, dict) else shown
    assert [item.get("alert_id") or item.get("container") for item in found] == [ALERT]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in state.iterdir()) == ["store.sqlite"]  # nothing written
