"""The shared hostile strategies really draw what they promise: a property
test built on them meets lone surrogates, control characters, bidi overrides,
line separators, templates, NaN and Infinity."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import find, settings

from tests.strategies import hostile_characters, hostile_floats, hostile_text, json_values

FAST = settings(max_examples=2000, database=None)


@pytest.mark.parametrize(("what", "condition"), [
    ("a lone surrogate", lambda c: "\ud800" <= c <= "\udfff"),
    ("a C0 control", lambda c: ord(c) < 0x20),
    ("a C1 control", lambda c: 0x80 <= ord(c) <= 0x9f),
    ("a bidi override", lambda c: c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"),
    ("a line separator", lambda c: c in "\u2028\u2029"),
    ("a character outside the BMP", lambda c: ord(c) > 0xFFFF),
])
def test_hostile_characters_include(what: str, condition: Any) -> None:
    assert condition(find(hostile_characters, condition, settings=FAST)), what


def test_hostile_text_includes_templates_and_escape_sequences() -> None:
    find(hostile_text(), lambda s: "{{" in s and "}}" in s, settings=FAST)
    find(hostile_text(), lambda s: "\x1b[" in s, settings=FAST)


def test_hostile_floats_and_json_values_include_nan_and_infinity() -> None:
    find(hostile_floats, math.isnan, settings=FAST)
    find(hostile_floats, lambda f: f == math.inf, settings=FAST)
    find(json_values, lambda v: isinstance(v, dict) and any(isinstance(x, float) and math.isnan(x)
                                                           for x in v.values()), settings=FAST)
    find(json_values, lambda v: isinstance(v, str) and any("\ud800" <= c <= "\udfff" for c in v), settings=FAST)
