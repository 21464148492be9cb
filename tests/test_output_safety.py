"""What the CLI prints is safe and true: API text reaches a terminal with its
control characters (ESC, BEL, C1) and bidi overrides shown as visible escapes
in every table and progress line, ``--output json`` is strict JSON (no NaN or
Infinity literals), and a lone surrogate from the API never makes printing
raise, in either format.

Output is written to a strict UTF-8 stream, as a real terminal or pipe is: an
in-memory ``StringIO`` would accept a lone surrogate and hide the crash.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.cli.main import main
from connector.http import auth
from mde_simulator import EXAMPLE_FILE, ScriptedResponse
from tests.strategies import hostile_text, json_values

EXAMPLE = "636688558380765161_2136280442"
ACTION = "get_alert_related_files"
# Each would act on a terminal if printed raw: set the window title, ring the
# bell, a C1 CSI, reverse the rest of the line, a line separator.
HOSTILE = "Evil\x1b]0;pwned\x07 \u202egpj.exe\u202c \x9b31m \u2066x\u2069 \x85end"
RAW_CONTROLS = ["\x1b", "\x07", "\x9b", "\u202e", "\u202c", "\u2066", "\u2069"]


class Streams:
    """stdout and stderr as strict UTF-8 byte streams."""

    def __init__(self) -> None:
        self._out, self._err = io.BytesIO(), io.BytesIO()
        self.stdout = io.TextIOWrapper(self._out, encoding="utf-8", errors="strict", write_through=True)
        self.stderr = io.TextIOWrapper(self._err, encoding="utf-8", errors="strict", write_through=True)

    @property
    def out(self) -> str:
        self.stdout.flush()
        return self._out.getvalue().decode("utf-8")

    @property
    def err(self) -> str:
        self.stderr.flush()
        return self._err.getvalue().decode("utf-8")


@contextlib.contextmanager
def utf8_streams() -> Iterator[Streams]:
    streams = Streams()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = streams.stdout, streams.stderr
    try:
        yield streams
    finally:
        sys.stdout, sys.stderr = saved


def cli(*args: str) -> tuple[int, str, str]:
    with utf8_streams() as streams:
        code = main(list(args))
    return code, streams.out, streams.err


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity, as strict parsers do."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def assert_no_raw_controls(text: str) -> None:
    found = [c for c in RAW_CONTROLS if c in text]
    assert not found, f"raw control characters reached the terminal: {found!r}"


@pytest.fixture
def config_file(simulator: Any, tmp_path: Path) -> Iterator[Path]:
    auth._apps.clear()
    simulator.clear_script()
    yield simulator.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"))
    simulator.clear_script()


def serve_files(simulator: Any, *files: dict[str, Any]) -> None:
    # Python's json writes NaN/Infinity literals and \ud800 escapes, as a
    # broken or hostile API might.
    body = json.dumps({"value": list(files)}).encode()
    simulator.script(ScriptedResponse(200, body=body, path_contains=f"/api/alerts/{EXAMPLE}/files"))


def hostile_file(**fields: Any) -> dict[str, Any]:
    return dict(EXAMPLE_FILE, signer=HOSTILE, issuer=HOSTILE, fileProductName=HOSTILE, filePublisher=HOSTILE,
                **fields)


# -- tables ------------------------------------------------------------------------------


def test_run_table_shows_control_and_bidi_characters_from_the_api_escaped(simulator: Any,
                                                                         config_file: Path) -> None:
    serve_files(simulator, hostile_file())
    code, out, err = cli("run", ACTION, "-p", f"alert_id={EXAMPLE}", "--config", str(config_file))
    assert code == 0, err
    assert_no_raw_controls(out + err)
    assert "\\x1b]0;pwned\\x07" in out and "\\u202egpj.exe" in out


def test_artifacts_list_shows_api_text_escaped_in_table_and_cards(simulator: Any, config_file: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    serve_files(simulator, hostile_file())
    assert cli("run", ACTION, "-p", f"alert_id={EXAMPLE}", "--config", str(config_file), "--output", "json")[0] == 0
    for columns in ("300", "60"):  # a table, then cards
        monkeypatch.setenv("COLUMNS", columns)
        code, out, err = cli("artifacts", "list", "--config", str(config_file))
        assert code == 0, err
        assert_no_raw_controls(out)
        assert "\\x1b" in out and "\\u202e" in out


# -- JSON ---------------------------------------------------------------------------------


def test_json_output_turns_nan_and_infinity_from_the_api_into_null(simulator: Any, config_file: Path) -> None:
    serve_files(simulator, dict(EXAMPLE_FILE, globalPrevalence=float("nan"), size=float("inf"),
                                extra=[float("-inf"), 1.5]))
    code, out, err = cli("run", ACTION, "-p", f"alert_id={EXAMPLE}", "--config", str(config_file),
                         "--output", "json")
    assert code == 0, err
    result = strict_loads(out)
    assert result["data"][0]["globalPrevalence"] is None and result["data"][0]["size"] is None
    assert result["data"][0]["extra"] == [None, 1.5]
    code, out, err = cli("artifacts", "list", "--config", str(config_file), "--output", "json")
    assert code == 0, err
    strict_loads(out)


def test_json_output_keeps_api_control_characters_as_json_escapes(simulator: Any, config_file: Path) -> None:
    serve_files(simulator, hostile_file())
    code, out, err = cli("run", ACTION, "-p", f"alert_id={EXAMPLE}", "--config", str(config_file),
                         "--output", "json")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out  # JSON escapes them
    assert strict_loads(out)["data"][0]["signer"] == HOSTILE  # and the data is unchanged


# -- lone surrogates ------------------------------------------------------------------------


def _surrogate_result() -> Any:
    from connector.sdk import ActionResult

    file = dict(EXAMPLE_FILE, signer="Contoso \ud800 Ltd.\x1b[2J", sha1="\udcff" * 3, size=float("nan"))
    return ActionResult(action=ACTION, message="1 file \ud800 related", parameter={"alert_id": EXAMPLE},
                        data=[file], summary={"total_files": 1, "odd\udc80": "\ud800"},
                        artifacts=[{"name": "\ud800", "cef": {"signer": "\ud800\u202e"}}])


def test_result_holding_lone_surrogates_prints_as_json_on_a_utf8_stream() -> None:
    from connector.cli.main import _emit

    result = _surrogate_result()
    with utf8_streams() as streams:
        assert _emit(result, "json") == 0
    printed = strict_loads(streams.out)
    assert printed["data"][0]["signer"] == "Contoso \ud800 Ltd.\x1b[2J"  # lossless: \ud800 as a JSON escape
    assert printed["data"][0]["size"] is None


def test_result_holding_lone_surrogates_prints_as_a_table_on_a_utf8_stream() -> None:
    from connector.cli.main import _emit
    from connector.manifest import load_manifest

    result = _surrogate_result()
    with utf8_streams() as streams:
        assert _emit(result, "table", load_manifest().action(ACTION)) == 0
    assert "\\ud800" in streams.out
    assert "\x1b" not in streams.out


def test_failed_result_with_lone_surrogate_message_prints_one_escaped_line() -> None:
    from connector.cli.main import _emit
    from connector.errors import ApiError
    from connector.sdk import ActionResult

    result = ActionResult.failure(ACTION, ApiError("Defender said \ud800\x1b[31m no."))
    with utf8_streams() as streams:
        assert _emit(result, "table") == 1
    assert streams.err == "mde-connector: Defender said \\ud800\\x1b[31m no.\n"


def test_api_file_with_lone_surrogates_runs_and_prints(simulator: Any, config_file: Path) -> None:
    serve_files(simulator, dict(EXAMPLE_FILE, signer="Contoso \ud800", fileProductName="\udcff"))
    code, out, err = cli("run", ACTION, "-p", f"alert_id={EXAMPLE}", "--config", str(config_file),
                         "--output", "json")
    assert code == 0, err
    assert strict_loads(out)["data"][0]["signer"] == "Contoso \ud800"


# -- playbook runs, runs list/show, watch progress ---------------------------------------------

HOSTILE_ID = "da1\x1b]0;x\x07_\u202e2"
NOTE_ONLY = {"name": "note_only", "version": "1.0.0", "trigger": {"type": "manual"},
             "steps": [{"id": "note", "type": "add_note", "parameters": {"text": "seen {{container.alert_id}}"}}]}


def test_playbook_run_and_runs_show_escape_the_alert_id(config_file: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "note_only.json"
    playbook.write_text(json.dumps(NOTE_ONLY), encoding="utf-8")
    code, out, err = cli("playbook", "run", str(playbook), "--alert-id", HOSTILE_ID, "--config", str(config_file))
    assert code == 0, err
    assert_no_raw_controls(out + err)
    assert "\\x1b]0;x\\x07_\\u202e2" in out
    code, out, err = cli("runs", "list", "--config", str(config_file))
    assert code == 0, err
    assert_no_raw_controls(out)
    run_id = out.splitlines()[0]  # a card (too wide for 80 columns): the run id whole on its first line
    assert "ALERT: da1\\x1b]0;x\\x07_\\u202e2" in out  # the alert, escaped and not cut
    code, out, err = cli("runs", "show", run_id, "--config", str(config_file))
    assert code == 0, err
    assert_no_raw_controls(out)
    assert "alert     da1\\x1b]0;x\\x07_\\u202e2" in out
    code, out, err = cli("runs", "show", run_id, "--config", str(config_file), "--output", "json")
    assert code == 0, err
    assert strict_loads(out)["container"] == HOSTILE_ID  # JSON keeps the id exact
    code, out, err = cli("runs", "list", "--config", str(config_file), "--output", "json")
    assert code == 0, err
    assert [r["container"] for r in strict_loads(out)] == [HOSTILE_ID]


def test_playbook_run_json_is_strict(config_file: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "note_only.json"
    playbook.write_text(json.dumps(NOTE_ONLY), encoding="utf-8")
    code, out, err = cli("playbook", "run", str(playbook), "--alert-id", HOSTILE_ID, "--config", str(config_file),
                         "--output", "json")
    assert code == 0, err
    record = strict_loads(out)
    assert record["container"] == HOSTILE_ID
    assert "\x1b" not in out


def test_render_run_escapes_every_field_of_the_record() -> None:
    from connector.cli.runs import render_run

    record = {"id": "r\x1b1", "playbook": "p\u202e", "playbook_version": "1\x07", "container": "\ud800",
              "trigger": "manual\x9b", "status": "success", "message": "Ran on \x1b[2J\ud800.",
              "started_at": "2026", "finished_at": None,
              "steps": [{"id": "s\x1b", "type": "add_note", "status": "success", "duration_ms": float("nan"),
                         "message": "\u202eok"}]}
    text = render_run(record, width=120)
    assert_no_raw_controls(text)
    text.encode("utf-8")  # no lone surrogate left


def test_watch_progress_line_escapes_the_alert_title(simulator: Any, config_file: Path) -> None:
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    alert = {"id": "da9\x1b[8m_1", "title": HOSTILE + "\n\rfake line", "severity": "High\u202e",
             "alertCreationTime": stamp, "lastUpdateTime": stamp}
    simulator.script(ScriptedResponse(200, body=json.dumps({"value": [alert]}).encode(),
                                      path_contains="/api/alerts?"))
    code, out, err = cli("watch", "--once", "--no-playbooks", "--lookback", "1h", "--config", str(config_file))
    assert_no_raw_controls(out + err)
    lines = [line for line in err.splitlines() if line.startswith("alert ")]
    assert lines and lines[0].startswith("alert da9\\x1b[8m_1 High\\u202e"), err
    assert "fake line" in lines[0]  # the title stays on its own progress line
    assert code == 0, err


def test_demo_lines_are_escaped_line_by_line() -> None:
    from connector.cli.demo import _say

    with utf8_streams() as streams:
        _say("Alert da\x1b[31m_1\nTitle \u202eexe \ud800")
    assert streams.out == "Alert da\\x1b[31m_1\nTitle \\u202eexe \\ud800\n"


# -- properties over hostile data ---------------------------------------------------------------

cells = hostile_text(max_size=12) | json_values


def _terminal_safe(text: str) -> None:
    text.encode("utf-8")  # printable on a UTF-8 terminal
    assert all(c.isprintable() for line in text.split("\n") for c in line), repr(text)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(cells, min_size=3, max_size=3), max_size=4), width=st.integers(20, 200))
def test_any_api_values_render_as_terminal_safe_tables_and_cards(rows: list[list[Any]], width: int) -> None:
    from connector.cli.render import render_cards, render_rows, render_table

    headers = ["HASH", "SIGNER", "NAME"]
    for text in (render_table(headers, rows, width), render_cards(headers, rows, width),
                 render_rows(headers, rows, width)):
        _terminal_safe(text)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_api_value_prints_as_strict_json_on_a_utf8_stream(value: Any) -> None:
    from connector.text import dumps_output

    with utf8_streams() as streams:
        print(dumps_output({"data": value}))
    strict_loads(streams.out)


def test_verbose_log_lines_show_control_characters_escaped() -> None:
    import logging

    from connector.cli.main import _RedactingFormatter

    record = logging.LogRecord("connector.http.client", logging.DEBUG, __file__, 1, "GET %s -> %s",
                               ("/api/alerts/\x1b[2J",
                               "title \u202eexe \ud800"), None)
    text = _RedactingFormatter("%(message)s").format(record)
    assert text == "GET /api/alerts/\\x1b[2J -> title \\u202eexe \\ud800"
