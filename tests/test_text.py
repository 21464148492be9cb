"""The one set of rules for text leaving the process (connector/text.py)."""

from __future__ import annotations

import json
import math

import pytest

from connector.text import db_json, db_text, dumps_output, escape_text, finite

HOSTILE = "a\x1b[31mred\x07\u202eevil\u2066\ud800\x9b\n{{x}}<b>"


def test_escape_text_leaves_nothing_a_terminal_acts_on():
    shown = escape_text(HOSTILE)
    assert shown.isprintable()
    for raw in ("\x1b", "\x07", "\u202e", "\u2066", "\ud800", "\x9b", "\n"):
        assert raw not in shown
    assert "\\x1b" in shown and "\\u202e" in shown and "\\ud800" in shown
    # printable text, HTML and braces are kept as they are
    assert "{{x}}<b>" in shown


def test_escape_text_keeps_printable_non_ascii():
    assert escape_text("Microsoft\ufffd Windows — Ж 中") == "Microsoft\ufffd Windows — Ж 中"


def test_db_text_replaces_lone_surrogates_only():
    assert db_text("ok\ud800ok") == "ok\ufffdok"
    db_text("ok\ud800ok").encode("utf-8")
    assert db_text("Ж\U0001f600") == "Ж\U0001f600"


def test_db_json_is_lossless_and_utf8_encodable():
    value = {"title": "x\udfffy", "n": 1, "list": ["Ж"]}
    text = db_json(value)
    text.encode("utf-8")
    assert json.loads(text) == value


def test_db_json_keeps_plain_text_compact_and_unescaped():
    assert db_json({"a": "Ж"}) == '{"a":"Ж"}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_dumps_output_never_writes_nan_or_infinity(bad):
    text = dumps_output({"size": bad, "nested": [bad, {"x": bad}], "ok": 1.5})
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "size": None, "nested": [None, {"x": None}], "ok": 1.5}


def test_dumps_output_with_a_lone_surrogate_is_valid_utf8_json():
    text = dumps_output({"name": "evil\ud800"})
    text.encode("utf-8")
    assert json.loads(text) == {"name": "evil\ud800"}


def test_finite_copies_only_what_it_must():
    value = {"a": [1, 2.5, "x"]}
    assert finite(value) == value
    assert finite(math.nan) is None
