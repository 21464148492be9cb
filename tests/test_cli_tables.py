"""What an analyst sees: file tables, colour, cards, paging, containers show,
artifacts by hash, run-id prefixes (issue 14 items 1-4, issue 13 target 6).

The CLI runs as a subprocess: on a pseudo-terminal (``pty``, 80x24) for the
colour, page and width behaviour, and through pipes for the plain form.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.cli.tables import (
    VERDICT_ORDER,
    View,
    color_enabled,
    declared_columns,
    file_sort_key,
    pick_columns,
)
from connector.errors import InputError
from connector.runtime.store import Store
from connector.text import dumps_output
from mde_simulator import EXAMPLE_FILE

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RED, YELLOW = "\x1b[31m", "\x1b[33m"
HOSTILE_SIGNER = "Evil\x1b]0;pwn\x07 Corp \u202eexe.txt \u0416\u4e2d " + "x" * 150
HOSTILE_ESCAPED = "Evil\\x1b]0;pwn\\x07 Corp \\u202eexe.txt \u0416\u4e2d " + "x" * 150


def _digest(kind: str, seed: bytes) -> str:
    """A file hash of ``seed`` (test data, not security)."""
    return hashlib.new(kind, seed, usedforsecurity=False).hexdigest()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDE_") and k not in ("NO_COLOR", "COLUMNS")}
    env.update(extra)
    return env


def piped(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI with stdout and stderr on pipes."""
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True,
                          env=_env(**env), timeout=120, cwd="/")


def on_terminal(*args: str, columns: int = 80, **env: str) -> tuple[int, str]:
    """The CLI with stdout and stderr on one 24 x ``columns`` pseudo-terminal;
    returns the exit code and everything it wrote (CR LF as LF)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # keep "\n" as written
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen([sys.executable, "-m", "connector", *args], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=_env(TERM="xterm", **env), cwd="/")
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                proc.kill()
                raise AssertionError("the CLI wrote nothing for 120 s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8")


def _file(n: int, **fields: Any) -> dict[str, Any]:
    """A file record with hashes of its own (``n`` makes them distinct)."""
    seed = f"file-{n}".encode()
    return dict(EXAMPLE_FILE, sha1=_digest("sha1", seed), sha256=_digest("sha256", seed),
                md5=_digest("md5", seed), **fields)


MALWARE = {"determinationType": "Malware", "determinationValue": "Trojan:Win32/Test"}
PUA = {"determinationType": "Pua", "determinationValue": "PUA:Win32/Adware"}


@pytest.fixture(scope="module")
def alert_files(simulator: Any) -> dict[str, Any]:
    """Alerts in the simulator: one of each verdict, and one with 60 files."""
    mixed = simulator.add_alert(files=[
        _file(1, globalPrevalence=5000),                                    # clean
        _file(2, signer=None, issuer=None),                                 # unsigned
        _file(3, isValidCertificate=False),                                 # invalid certificate
        _file(4, **MALWARE),                                                # malware
        _file(5, globalPrevalence=2),                                       # rare
        _file(6, **PUA),                                                    # PUA
        _file(7, signer=HOSTILE_SIGNER, globalPrevalence=5000),            # hostile text
    ])
    many = simulator.add_alert(files=[_file(100 + i) for i in range(60)])
    return {"mixed": mixed["id"], "many": many["id"]}


@pytest.fixture
def config(simulator: Any, tmp_path: Path) -> Path:
    return simulator.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"))


def _run(config: Path, alert_id: str, *extra: str) -> list[str]:
    return ["run", "get_alert_related_files", "-p", f"alert_id={alert_id}", "--config", str(config), *extra]


# -- run get_alert_related_files as a table ----------------------------------------


def test_piped_file_table_is_plain_complete_and_most_severe_first(config: Path, alert_files: dict[str, Any]) -> None:
    done = piped(*_run(config, alert_files["mixed"], "--columns", "sha256,verdict"), COLUMNS="200")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout  # never colour through a pipe
    rows = [line.split(None, 1) for line in done.stdout.splitlines() if re.match(r"^[0-9a-f]{64} ", line)]
    verdicts = [r[1].strip() for r in rows]
    assert [v.split(",")[0] for v in verdicts] == ["malware", "pua", "invalid_certificate", "unsigned",
                                                   "rare", "no findings", "no findings"]
    # SHA-256 in full; the summary precedes the table.
    assert rows[0][0] == _digest("sha256", b"file-4")
    assert done.stdout.index("Summary:") < done.stdout.index(rows[0][0])


def test_file_table_declares_every_field_the_analyst_needs() -> None:
    names = [c.name for c in pick_columns("alert_files", View())]
    assert names == ["name", "sha1", "sha256", "md5", "signer", "issuer", "valid_cert", "prevalence",
                     "determination", "threat", "verdict"]
    wide = [c.name for c in pick_columns("alert_files", View(wide=True))]
    assert wide[: len(names)] == names and {"path", "size", "signer_hash", "first_seen"} <= set(wide)


def test_unknown_column_exits_2_before_any_request(config: Path, alert_files: dict[str, Any]) -> None:
    done = piped(*_run(config, alert_files["mixed"], "--columns", "sha265"))
    assert done.returncode == 2
    assert "there is no column 'sha265'. Did you mean 'sha256'?" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_piped_run_prints_every_file_and_a_terminal_a_page(config: Path, alert_files: dict[str, Any]) -> None:
    done = piped(*_run(config, alert_files["many"], "--columns", "sha1"), COLUMNS="120")
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^[0-9a-f]{40}$", done.stdout, re.MULTILINE)) == 60
    assert "Showing" not in done.stdout
    code, out = on_terminal(*_run(config, alert_files["many"], "--columns", "sha1"))
    assert code == 0, out
    assert len(re.findall(r"^[0-9a-f]{40}\s*$", out, re.MULTILINE)) == 50
    assert "Showing 50 of 60 files" in out and "'--limit 0' shows all" in out
    code, out = on_terminal(*_run(config, alert_files["many"], "--columns", "sha1", "--limit", "0"))
    assert code == 0 and len(re.findall(r"^[0-9a-f]{40}\s*$", out, re.MULTILINE)) == 60
    done = piped(*_run(config, alert_files["many"], "--columns", "sha1", "--limit", "7"))
    assert len(re.findall(r"^[0-9a-f]{40}$", done.stdout, re.MULTILINE)) == 7 and "Showing 7 of 60" in done.stdout


# -- colour -------------------------------------------------------------------------


def test_terminal_colours_malware_and_pua_red_and_weak_signatures_yellow(
        config: Path, alert_files: dict[str, Any]) -> None:
    code, out = on_terminal(*_run(config, alert_files["mixed"], "--columns", "sha1,verdict"))
    assert code == 0, out
    lines = {line.split()[0].removeprefix(RED).removeprefix(YELLOW): line
             for line in out.splitlines() if re.match(r"^(\x1b\[3[13]m)?[0-9a-f]{40} ", line)}
    sha1 = {n: _digest("sha1", f"file-{n}".encode()) for n in range(1, 8)}
    assert lines[sha1[4]].startswith(RED) and lines[sha1[6]].startswith(RED)          # malware, PUA
    assert lines[sha1[3]].startswith(YELLOW) and lines[sha1[2]].startswith(YELLOW)    # invalid cert, unsigned
    assert "\x1b[" not in lines[sha1[1]] and "\x1b[" not in lines[sha1[5]]            # clean, rare


@pytest.mark.parametrize(("flag", "env"), [(("--color", "never"), {}), ((), {"NO_COLOR": "1"})])
def test_no_colour_when_asked_even_on_a_terminal(config: Path, alert_files: dict[str, Any],
                                                 flag: tuple[str, ...], env: dict[str, str]) -> None:
    code, out = on_terminal(*_run(config, alert_files["mixed"], *flag), **env)
    assert code == 0 and "malware" in out
    assert "\x1b[" not in out


def test_color_always_colours_a_pipe(config: Path, alert_files: dict[str, Any]) -> None:
    done = piped(*_run(config, alert_files["mixed"], "--color", "always"))
    assert done.returncode == 0 and RED in done.stdout


def test_color_auto_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert color_enabled("auto", Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not color_enabled("auto", Tty())  # type: ignore[arg-type]
    assert color_enabled("always", Tty())  # type: ignore[arg-type]
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not color_enabled("auto", Tty())  # type: ignore[arg-type]


# -- 80 columns: cards, hostile text, nothing cut -----------------------------------


def test_80_columns_switch_to_cards_and_cut_nothing(config: Path, alert_files: dict[str, Any]) -> None:
    code, out = on_terminal(*_run(config, alert_files["mixed"]))
    assert code == 0, out
    plain = ANSI.sub("", out)
    # Cards: every file's SHA-256 whole, no ellipsis-cut value, hostile text escaped and whole.
    for n in range(1, 8):
        assert _digest("sha256", f"file-{n}".encode()) in plain
    assert HOSTILE_ESCAPED in plain
    assert "\x07" not in out and "\u202e" not in out and "\x1b]" not in out
    for line in plain.splitlines():
        if HOSTILE_ESCAPED not in line:  # a value longer than a line has a line of its own
            assert len(line) <= 80, line


# -- the store: containers, artifacts, runs -------------------------------------------


def _artifact(alert: str, n: int, **cef: Any) -> dict[str, Any]:
    seed = f"a-{alert}-{n}".encode()
    body = {"fileHashSha256": _digest("sha256", seed), "fileHashSha1": _digest("sha1", seed),
            "fileHashMd5": _digest("md5", seed), **cef}
    return {"name": f"file {n}", "label": "file", "type": "file", "severity": "low",
            "source_data_identifier": f"mde:{alert}:file:{n}", "container": alert, "cef": body,
            "cef_types": {}, "tags": ["rare"], "verdict": "rare"}


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    """A state directory whose store holds 3 alerts with 7 artifacts each, a
    shared file in two of them, notes and two runs with one id prefix."""
    state = tmp_path / "state"
    store = Store.open(state)
    shared = _artifact("x", 0, signer=HOSTILE_SIGNER)
    with store.transaction() as conn:
        for k, alert in enumerate(["alert-a", "alert-b", "alert-\u202ec"]):
            store.upsert_container(conn, alert, name=f"Alert {k} \x1b[2J", severity="high" if k == 0 else "low")
            store.upsert_artifacts(conn, [_artifact(alert, n) for n in range(7)])
            if k < 2:
                store.upsert_artifacts(conn, [dict(shared, container=alert,
                                                   source_data_identifier=f"mde:{alert}:file:shared")])
        store.add_note(conn, "alert-a", "Suspicious files: 1 malware \u202e (triage)", key="run:note")
        store.add_tags(conn, "alert-a", ["suspicious-files"])
        for run_id in ("abc123" + "0" * 26, "abc456" + "0" * 26):
            store.save_playbook_run(conn, run_id, playbook="triage_new_alert", container="alert-a",
                                    trigger="new_alert", status="success",
                                    record={"id": run_id, "steps": [], "status": "success"},
                                    started_at="2026-01-01T00:00:00.000Z", finished_at=None)
    store.close()
    yield state


def test_artifacts_list_pages_with_a_cursor_until_every_artifact_was_seen(store_dir: Path) -> None:
    everything = json.loads(piped("artifacts", "list", "--state-dir", str(store_dir), "--output", "json").stdout)
    assert len(everything) == 23
    seen: list[str] = []
    after: list[str] = []
    for _ in range(10):
        done = piped("artifacts", "list", "--state-dir", str(store_dir), "--output", "json", "--limit", "5", *after)
        assert done.returncode == 0, done.stderr
        seen += [a["source_data_identifier"] for a in json.loads(done.stdout)]
        found = re.search(r"--after (\S+)$", done.stderr.strip())
        if found is None:
            assert done.stderr == ""
            break
        assert "mde-connector artifacts list" in done.stderr and "--limit 5" in done.stderr
        after = ["--after", found.group(1)]
    assert seen == [a["source_data_identifier"] for a in everything]  # same order, none twice, none lost


def test_artifacts_json_without_limit_keeps_its_shape_byte_for_byte(store_dir: Path) -> None:
    done = piped("artifacts", "list", "--state-dir", str(store_dir), "--output", "json")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == dumps_output(Store.open(store_dir, read_only=True).artifacts()) + "\n"
    empty = piped("artifacts", "list", "--state-dir", str(store_dir), "--alert-id", "none", "--output", "json")
    assert empty.stdout == "[]\n"


def test_artifacts_table_defaults_to_a_page_of_100(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store.open(state)
    with store.transaction() as conn:
        store.upsert_container(conn, "big")
        store.upsert_artifacts(conn, [_artifact("big", n) for n in range(130)])
    done = piped("artifacts", "list", "--state-dir", str(state), "--columns", "hash")
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^[0-9a-f]{64}$", done.stdout, re.MULTILINE)) == 100
    assert "100 artifact(s) on this page." in done.stdout and "--after " in done.stderr
    cursor = done.stderr.split("--after ")[1].split()[0]
    rest = piped("artifacts", "list", "--state-dir", str(state), "--columns", "hash", "--after", cursor)
    assert len(re.findall(r"^[0-9a-f]{64}$", rest.stdout, re.MULTILINE)) == 30 and rest.stderr == ""


def test_a_foreign_or_broken_cursor_exits_2_in_one_sentence(store_dir: Path) -> None:
    first = piped("containers", "list", "--state-dir", str(store_dir), "--limit", "1")
    cursor = first.stderr.split("--after ")[1].split()[0]
    for bad in (cursor, "not-a-cursor", "e30"):
        done = piped("artifacts", "list", "--state-dir", str(store_dir), "--after", bad)
        assert done.returncode == 2 and "is not a cursor of this artifact listing" in done.stderr
        assert "Traceback" not in done.stderr


def test_containers_list_pages_and_escapes(store_dir: Path) -> None:
    seen: list[str] = []
    after: list[str] = []
    while True:
        done = piped("containers", "list", "--state-dir", str(store_dir), "--limit", "2", *after)
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
        seen += re.findall(r"^alert-\S+", done.stdout, re.MULTILINE)
        if "--after" not in done.stderr:
            break
        after = ["--after", done.stderr.split("--after ")[1].split()[0]]
    assert seen == ["alert-a", "alert-b", "alert-\\u202ec"]
    full = json.loads(piped("containers", "list", "--state-dir", str(store_dir), "--output", "json").stdout)
    assert [c["alert_id"] for c in full] == ["alert-a", "alert-b", "alert-\u202ec"]
    assert set(full[0]) == {"alert_id", "name", "severity", "status", "source", "tags", "created_at",
                            "artifact_count"}  # today's shape


def test_containers_show_prints_fields_tags_notes_artifacts_and_runs(store_dir: Path) -> None:
    done = piped("containers", "show", "alert-a", "--state-dir", str(store_dir), COLUMNS="80")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "alert     alert-a" in out and "severity  high" in out and "tags      suspicious-files" in out
    assert "Notes (1):" in out and "Suspicious files: 1 malware \\u202e (triage)" in out
    assert "Artifacts (8):" in out and _digest("sha256", b"a-alert-a-3") in out
    assert "Playbook runs (2):" in out and "abc123" + "0" * 26 in out
    assert "\x1b" not in out and "\u202e" not in out
    shown = json.loads(piped("containers", "show", "alert-a", "--state-dir", str(store_dir), "--output",
                             "json").stdout)
    assert shown["notes"] == ["Suspicious files: 1 malware \u202e (triage)"] and len(shown["artifacts"]) == 8
    missing = piped("containers", "show", "nope", "--state-dir", str(store_dir))
    assert missing.returncode == 2 and "There is no container for alert 'nope'" in missing.stderr


def test_artifacts_list_hash_finds_every_alert_by_any_hash(store_dir: Path) -> None:
    seed = b"a-x-0"
    for digest in (_digest("sha256", seed), _digest("sha1", seed).upper(),
                   _digest("md5", seed)):
        done = piped("artifacts", "list", "--hash", digest, "--state-dir", str(store_dir), COLUMNS="80")
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if line.startswith("alert-")]
        assert [line.split()[0] for line in lines] == ["alert-a", "alert-b"]  # the alert id on each line
        assert "2 alert(s) hold this file." in done.stdout
    found = json.loads(piped("artifacts", "list", "--hash", _digest("md5", seed), "--state-dir",
                             str(store_dir), "--output", "json").stdout)
    assert [a["container"] for a in found] == ["alert-a", "alert-b"]
    bad = piped("artifacts", "list", "--hash", "xyz", "--state-dir", str(store_dir))
    assert bad.returncode == 2 and "is not an MD5, SHA-1 or SHA-256" in bad.stderr
    none = piped("artifacts", "list", "--hash", "0" * 64, "--state-dir", str(store_dir))
    assert none.returncode == 0 and "No stored alert holds" in none.stdout


def test_runs_show_takes_a_unique_prefix_and_lists_an_ambiguous_ones_candidates(store_dir: Path) -> None:
    done = piped("runs", "show", "abc4", "--state-dir", str(store_dir), "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "abc456" + "0" * 26
    ambiguous = piped("runs", "show", "abc", "--state-dir", str(store_dir))
    assert ambiguous.returncode == 2
    assert "matches 2 runs: abc123" in ambiguous.stderr and "abc456" in ambiguous.stderr
    none = piped("runs", "show", "zzz", "--state-dir", str(store_dir))
    assert none.returncode == 2 and "There is no playbook run with id 'zzz'" in none.stderr


def test_every_listing_turns_to_cards_on_80_columns_and_keeps_values_whole(store_dir: Path) -> None:
    for args in (("containers", "list"), ("runs", "list"), ("artifacts", "list")):
        code, out = on_terminal(*args, "--state-dir", str(store_dir))
        assert code == 0, out
        plain = ANSI.sub("", out)
        assert "…" not in plain, args
        # Only a value longer than a whole line exceeds it, on a line of its own, whole.
        assert all(len(line) <= 80 or line.strip().endswith(HOSTILE_ESCAPED) for line in plain.splitlines()), args
    code, out = on_terminal("playbook", "list")
    assert code == 0 and "…" not in out and all(len(line) <= 80 for line in out.splitlines())
    assert "triage_new_alert" in out


# -- pure rules ---------------------------------------------------------------------------


def test_files_sort_by_verdict_severity_then_name() -> None:
    def art(tags: list[str], name: str) -> dict[str, Any]:
        return {"tags": tags, "cef": {"fileName": name}, "source_data_identifier": name}

    files = [art([], "a.exe"), art(["rare"], "b"), art(["unsigned", "rare"], "c"), art(["pua"], "Z"),
             art(["malware"], "y"), art(["invalid_certificate"], "x"), art(["malware", "rare"], "B")]
    ordered = sorted(files, key=file_sort_key)
    assert [f["cef"]["fileName"] for f in ordered] == ["B", "y", "Z", "x", "c", "b", "a.exe"]
    assert VERDICT_ORDER == ("malware", "pua", "invalid_certificate", "unsigned", "rare")


def test_every_table_the_cli_prints_is_declared_in_the_manifest() -> None:
    for table in ("alert_files", "artifacts", "artifact_hits", "containers", "runs", "run_steps", "playbooks"):
        assert declared_columns(table), table
    with pytest.raises(InputError):
        pick_columns("containers", View(columns="alert,nosuch"))
    assert [c.name for c in pick_columns("containers", View(columns="name, alert"))] == ["name", "alert"]


def test_every_cef_column_names_a_key_the_artifact_mapping_declares() -> None:
    from connector.manifest import load_manifest

    manifest = load_manifest()
    cef_keys = set(manifest.action("get_alert_related_files").raw["artifacts"]["cef_mapping"])
    for table in manifest.raw["tables"]:
        for column in declared_columns(table):
            if column.path.startswith("cef."):
                assert column.path.removeprefix("cef.") in cef_keys, (table, column.path)
    assert manifest.action("get_alert_related_files").render["table"] in manifest.raw["tables"]


def test_wide_characters_keep_columns_aligned_and_within_the_width() -> None:
    from connector.cli.render import render_rows, text_width

    rows = [("1", "中文文件名.exe", "malware"), ("2", "plain.exe", "clean"), ("3", "e\u0301t\u00e9", "rare")]
    lines = render_rows(["N", "NAME", "VERDICT"], rows, 40).splitlines()
    starts = {text_width(line[: line.index(verdict)]) for line, verdict in
              zip(lines[2:], ("malware", "clean", "rare"), strict=True)}
    assert len(starts) == 1  # the verdict column starts at the same terminal column on every row
    narrow = render_rows(["N", "NAME", "VERDICT"], [("1", "中" * 30, "malware")], 40)
    # 60 columns of text cannot fit 40: a card, the value whole on a line of its own.
    assert narrow.splitlines() == ["1", "  NAME: " + "中" * 30, "  VERDICT: malware"]


def test_piped_plain_form_escapes_hostile_text_and_keeps_it_whole(config: Path, alert_files: dict[str, Any]) -> None:
    done = piped(*_run(config, alert_files["mixed"]))
    assert done.returncode == 0, done.stderr
    assert HOSTILE_ESCAPED in done.stdout  # on a line of its own, not cut
    assert not any(ch in done.stdout for ch in ("\x1b", "\x07", "\u202e"))
    for line in done.stdout.splitlines():
        assert line.isprintable(), line


def test_containers_show_caps_its_lists_on_request_and_says_how_to_see_the_rest(store_dir: Path) -> None:
    done = piped("containers", "show", "alert-a", "--state-dir", str(store_dir), "--limit", "3", COLUMNS="80")
    assert done.returncode == 0, done.stderr
    words = " ".join(done.stdout.split())  # the hint wraps at 80 columns
    assert "Artifacts (8):" in words and "Showing the 3 most severe of 8 artifacts" in words
    assert "'mde-connector artifacts list --alert-id alert-a' pages them all" in words
    assert len(re.findall(r"^[0-9a-f]{64}$", done.stdout, re.MULTILINE)) == 3
    full = piped("containers", "show", "alert-a", "--state-dir", str(store_dir), COLUMNS="80")
    assert len(re.findall(r"^[0-9a-f]{64}$", full.stdout, re.MULTILINE)) == 8 and "Showing" not in full.stdout
