"""``run --output json`` streams its result (connector.text.write_output):
the bytes written are exactly ``dumps_output(result) + "\\n"``, the text the
command printed in one piece before, for normal and hostile results."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.artifacts import build_artifacts
from connector.sdk import ActionResult
from connector.text import dumps_output, write_output
from mde_simulator import EXAMPLE_ALERT_ID, EXAMPLE_FILE
from tests.strategies import hostile_text, json_values


def _streamed(value: Any) -> str:
    pieces: list[str] = []
    write_output(value, pieces.append)
    return "".join(pieces)


def _result(files: list[Any]) -> dict[str, Any]:
    artifacts = build_artifacts(EXAMPLE_ALERT_ID, files).artifacts
    return ActionResult(action="get_alert_related_files", status="success", message="Found files.",
                        parameter={"alert_id": EXAMPLE_ALERT_ID}, data=files,
                        summary={"total_files": len(files)}, artifacts=artifacts).to_dict()


def test_a_normal_result_streams_the_same_bytes() -> None:
    # Several thousand files: more than one batch of records and one flush.
    files = [dict(EXAMPLE_FILE, sha1=f"{i:040x}", sha256=f"{i:064x}", size=i) for i in range(5000)]
    result = _result(files)
    pieces: list[str] = []
    write_output(result, pieces.append)
    assert len(pieces) > 1  # written in pieces, not as one string
    assert "".join(pieces) == dumps_output(result) + "\n"
    assert json.loads("".join(pieces))["summary"]["total_files"] == 5000


def test_a_hostile_result_streams_the_same_bytes() -> None:
    hostile = dict(EXAMPLE_FILE, fileName="\u202eexe.txt\x1b[31m", signer="{{container.name}}<b>",
                   issuer="\ud800 lone", size=float("nan"), globalPrevalence=float("inf"),
                   filePublisher="Подпись 署名 \u2028", extra={"nested": [float("-inf"), "\udfff", {}]})
    files: list[Any] = [dict(EXAMPLE_FILE, sha1=f"{i:040x}") for i in range(1500)]
    files[700:700] = [hostile, {}, [], "not an object", None]
    result = _result(files)
    text = _streamed(result)
    assert text == dumps_output(result) + "\n"
    assert text.isascii()  # a lone surrogate anywhere: the whole text is escaped
    text.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=30) | json_values | st.dictionaries(hostile_text(max_size=8), json_values))
def test_any_json_value_streams_as_dumps_output_prints_it(value: Any) -> None:
    assert _streamed(value) == dumps_output(value) + "\n"


def test_the_cli_prints_the_streamed_result(tmp_path: Any) -> None:
    # An invalid-input failure goes through the same output path: one JSON
    # document on stdout, ending in a newline.
    proc = subprocess.run([sys.executable, "-m", "connector", "run", "get_alert_related_files", "--param",
                           "alert_id=", "--output", "json"], capture_output=True, text=True, check=False,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.endswith("}\n")
    assert json.loads(proc.stdout)["status"] == "failed"
    assert io.StringIO(proc.stdout).read() == dumps_output(json.loads(proc.stdout)) + "\n"


@settings(max_examples=200, deadline=None)
@given(json_values | st.dictionaries(hostile_text(max_size=8), json_values))
def test_db_json_writes_what_json_dumps_writes(value: Any) -> None:
    # db_json calls the C encoder directly (built once) rather than through
    # json.dumps; the text stored is the same.
    from connector.text import _dumps, db_json

    assert db_json(value) == _dumps(value, indent=None, separators=(",", ":"), sort_keys=False)


def test_the_surrogate_scan_finds_one_anywhere_and_is_not_fooled_by_numbers() -> None:
    from connector.text import _holds_surrogate

    records = [{"name": "файл", "size": i} for i in range(5000)]
    assert not _holds_surrogate({"data": records})
    # A number whose binary form holds the bytes a surrogate leaves in UTF-8.
    lookalike = int.from_bytes(b"\xed\xa0\x80\x00", "little")
    assert not _holds_surrogate({"data": [*records, {"size": lookalike}, 2.0 ** -1000]})
    assert _holds_surrogate({"data": [*records, {"k\udc80": 1}]})
    assert _holds_surrogate({"data": [*records[:3000], {"name": ["x", "\ud83d"]}, *records]})
