"""Strings to typed values, by a JSON Schema property's declared type.

Environment variables (``MDE_*``) and ``--param KEY=VALUE`` arrive as text;
both are converted here, by one set of rules:

- ``integer``: ``int(text)``; ``number``: an integer literal stays an int,
  anything else a finite float (NaN and infinities are not numbers);
- ``boolean``: true/yes/1/on or false/no/0/off, in any case;
- ``array``: a JSON list, or a comma-separated list whose items are
  converted by the ``items`` type; ``object``: a JSON object;
- ``string`` (or no type): the text as is.

:func:`lenient` (configuration) leaves text that does not convert as it is,
so that validation quotes it in its error; :func:`strict` (``--param``)
raises :class:`InputError` naming the parameter and the way to write it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from connector.errors import InputError
from connector.validation import format_path, quote_value

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "lenient", "schema_types", "strict"]

TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})


class _NoValue:
    """The text does not convert to the type asked for."""


_NO = _NoValue()


def schema_types(prop: Mapping[str, Any]) -> list[str]:
    """The property's ``type`` as a list (``string`` when it declares none)."""
    t = prop.get("type", "string")
    return [t] if isinstance(t, str) else list(t)


def _integer(text: str) -> int | _NoValue:
    try:
        return int(text)
    except ValueError:
        return _NO


def _number(text: str) -> int | float | _NoValue:
    as_int = _integer(text)
    if not isinstance(as_int, _NoValue):
        return as_int
    try:
        number = float(text)
    except ValueError:
        return _NO
    return number if math.isfinite(number) else _NO


def _boolean(text: str) -> bool | _NoValue:
    low = text.lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    return _NO


def _json(text: str, kind: type) -> Any:
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return _NO
    return parsed if isinstance(parsed, kind) else _NO


def _array(text: str, prop: Mapping[str, Any]) -> list[Any] | _NoValue:
    if text.startswith("["):
        parsed: list[Any] | _NoValue = _json(text, list)
        return parsed
    if not text:
        return []
    items: list[Any] = [part.strip() for part in text.split(",")]
    item_prop: Mapping[str, Any] = prop.get("items") or {}
    if schema_types(item_prop) != ["string"]:
        items = [lenient(item, item_prop) for item in items]
    return items


def _convert(text: str, prop: Mapping[str, Any]) -> Any:
    """The value, or ``_NO`` when no declared type accepts the text."""
    types = schema_types(prop)
    if "string" in types or not prop:
        return text
    for kind in types:
        if kind == "integer":
            value: Any = _integer(text)
        elif kind == "number":
            value = _number(text)
        elif kind == "boolean":
            value = _boolean(text)
        elif kind == "array":
            value = _array(text, prop)
        elif kind == "object":
            value = _json(text, dict)
        else:
            continue
        if not isinstance(value, _NoValue):
            return value
    return _NO


def lenient(text: str, prop: Mapping[str, Any]) -> Any:
    """``text`` converted by ``prop``'s type, or ``text`` itself when it does
    not convert cleanly (validation then names the key and quotes it)."""
    value = _convert(text.strip(), prop)
    return text if isinstance(value, _NoValue) else value


# The problem and the fix for text of each type that does not convert.
_HOW = {
    "integer": ("must be an integer", "write it as {key}=10"),
    "number": ("must be a number", "write it as {key}=1.5"),
    "boolean": ("must be true or false", "use true/false, yes/no or 1/0"),
    "array": ("is not a valid JSON list", 'write it as {key}=["a","b"] or {key}=a,b'),
    "object": ("must be a JSON object", 'write it as {key}={{"name":"value"}}'),
}


def strict(key: str, text: str, prop: Mapping[str, Any]) -> Any:
    """``--param`` text converted by ``prop``'s type (a string parameter, or
    one not declared, keeps the text as given). Raises :class:`InputError`
    naming the parameter and how to write it when it does not convert."""
    types = schema_types(prop)
    if "string" in types or not prop:
        return text
    value = _convert(text.strip(), prop)
    if not isinstance(value, _NoValue):
        return value
    kind = next((t for t in types if t in _HOW), None)
    if kind is None:
        return text  # no conversion can help (null): validation decides
    problem, fix = _HOW[kind]
    raise InputError(f"Parameter '{format_path([key])}' {problem} (got {quote_value(text)}); "
                     f"{fix.format(key=key)}.")
