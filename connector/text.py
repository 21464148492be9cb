"""The rules for text and JSON that leave the process: terminal, SQLite, stdout.

Every string from the API may hold lone UTF-16 surrogates (``\\ud800``),
control characters (ESC, BEL, C1), bidi overrides (U+202E) or line
separators, and every number may be NaN or Infinity (Python's ``json``
accepts those literals). Each destination refuses or misreads a different
part of that, so each has one function here:

- :func:`escape_text`: a terminal or a one-line sentence. Anything that is not
  printable becomes a visible escape (``\\x1b``, ``\\u202e``, ``\\ud800``);
  printable non-ASCII (Cyrillic, CJK, U+FFFD) is kept as it is.
- :func:`db_text` / :func:`db_json`: SQLite stores UTF-8 and refuses lone
  surrogates. Plain text columns get U+FFFD in their place; JSON columns stay
  lossless (the surrogate is kept as a ``\\ud800`` JSON escape).
- :func:`dumps_output`: strict JSON for ``--output json``: no NaN or Infinity
  literals (they become ``null``), and lone surrogates as JSON escapes, so
  the text can always be written to a UTF-8 stream and read by any parser.
"""

from __future__ import annotations

import json
import math
from typing import Any


def escape_text(text: str) -> str:
    """``text`` with every non-printable character shown as a visible escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def db_text(text: str) -> str:
    """``text`` as SQLite can store it: lone surrogates become U+FFFD."""
    if not _has_surrogate(text):
        return text
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (a copy
    only where one is needed)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _dumps(value: Any, *, indent: int | None, separators: tuple[str, str] | None, sort_keys: bool) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent,
                          separators=separators, sort_keys=sort_keys)
    except ValueError:  # NaN or Infinity somewhere: rare, so the copy is paid only then
        value = finite(value)
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent,
                          separators=separators, sort_keys=sort_keys)
    if _has_surrogate(text):
        # ensure_ascii escapes the surrogates (and the rest of non-ASCII):
        # lossless, and valid UTF-8.
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, indent=indent,
                          separators=separators, sort_keys=sort_keys)
    return text


def db_json(value: Any) -> str:
    """Compact JSON text for a SQLite column, lossless for lone surrogates;
    NaN and Infinity are stored as null."""
    return _dumps(value, indent=None, separators=(",", ":"), sort_keys=False)


def dumps_output(value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON for a user or a pipe (``--output json``)."""
    return _dumps(value, indent=indent, separators=None, sort_keys=sort_keys)
