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
import marshal
import math
import re
from collections.abc import Callable
from itertools import chain
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
    if text.isascii() or not _has_surrogate(text):
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


def _not_serialisable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder(ensure_ascii: bool, item_separator: str, key_separator: str,
               allow_nan: bool) -> Callable[[Any], str] | None:
    """The C accelerator's encoder (what ``json.dumps`` builds on every call)
    built once; None without the accelerator. No circular-reference check:
    values come from parsed JSON."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    string = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    encode = make(None, _not_serialisable, string, None, key_separator, item_separator, False, False, allow_nan)

    def encoder(value: Any) -> str:
        return "".join(encode(value, 0))

    return encoder


_DB_JSON = _c_encoder(False, ",", ":", False)
_DB_JSON_ASCII = _c_encoder(True, ",", ":", False)


def db_json(value: Any) -> str:
    """Compact JSON text for a SQLite column, lossless for lone surrogates;
    NaN and Infinity are stored as null."""
    if _DB_JSON is None or _DB_JSON_ASCII is None:
        return _dumps(value, indent=None, separators=(",", ":"), sort_keys=False)
    try:
        text = _DB_JSON(value)
    except ValueError:  # NaN or Infinity somewhere: rare, so the copy is paid only then
        value = finite(value)
        text = _DB_JSON(value)
    if not text.isascii() and _has_surrogate(text):
        text = _DB_JSON_ASCII(value)
    return text


def dumps_output(value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON for a user or a pipe (``--output json``)."""
    return _dumps(value, indent=indent, separators=None, sort_keys=sort_keys)


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})
_DICT = frozenset({dict})
_LIST = frozenset({list})
_SMALL_CONTAINERS = (dict, list)
_FLUSH_PIECES = 16_384


class _Indented:
    """``json.dumps(value, indent=2, ensure_ascii=..., allow_nan=False)``
    piece by piece, with the C encoder doing every container whose items are
    all scalars (the pure-Python indenting encoder is ~5x slower)."""

    def __init__(self, ensure_ascii: bool) -> None:
        self.ensure_ascii = ensure_ascii
        self._encoders: dict[int, Callable[[Any], str]] = {}
        self._compact: Callable[[Any], str] | None = None
        self._column: Callable[[Any], str] | None = None
        #: called with the pieces so far (to write and clear them), if set
        self.flush: Callable[[list[str]], None] | None = None
        self._string: Callable[[str], str] = (
            json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring)

    def _encoder(self, depth: int) -> Callable[[Any], str]:
        encoder = self._encoders.get(depth)
        if encoder is None:
            # Item separator "," + newline + the items' indent: a string never
            # holds a raw newline in JSON, so this is exactly indent=2's layout.
            separator = ",\n" + "  " * (depth + 1)
            encoder = (_c_encoder(self.ensure_ascii, separator, ": ", False)
                       or json.JSONEncoder(ensure_ascii=self.ensure_ascii, allow_nan=False,
                                           separators=(separator, ": ")).encode)
            self._encoders[depth] = encoder
        return encoder

    def compact(self, value: Any) -> str:
        """Compact JSON text of ``value``, NaN written as such (for scanning)."""
        if self._compact is None:
            self._compact = (_c_encoder(self.ensure_ascii, ",", ":", True)
                             or json.JSONEncoder(ensure_ascii=self.ensure_ascii, check_circular=False).encode)
        return self._compact(value)

    def _reference(self, value: Any, depth: int) -> str:
        # Anything unusual (a key that is not a string, a subclass): the
        # standard encoder, re-indented to this depth.
        try:
            text = json.dumps(value, ensure_ascii=self.ensure_ascii, allow_nan=False, indent=2)
        except ValueError:
            text = json.dumps(finite(value), ensure_ascii=self.ensure_ascii, allow_nan=False, indent=2)
        return text.replace("\n", "\n" + "  " * depth) if depth else text

    def _flat(self, value: Any, depth: int) -> str:
        try:
            text = self._encoder(depth)(value)
        except ValueError:  # NaN or Infinity: null, as dumps_output does
            text = self._encoder(depth)(finite(value))
        if not isinstance(value, (dict, list)) or len(text) <= 2:
            return text
        return f"{text[0]}\n{'  ' * (depth + 1)}{text[1:-1]}\n{'  ' * depth}{text[-1]}"

    def _records(self, batch: list[dict[str, Any]], depth: int) -> str:
        """Non-empty flat objects (see :func:`_flat_records`) at ``depth``,
        separated as list items, in one C encoder call: the objects' own
        separator also falls between them as ``},\n<indent>{``, a sequence
        only an object boundary can produce (strings hold no raw newline),
        which is then re-indented to the list's level."""
        inner, outer = "  " * (depth + 1), "  " * depth
        try:
            text = self._encoder(depth)(batch)
        except ValueError:  # NaN or Infinity: null, as dumps_output does
            text = self._encoder(depth)(finite(batch))
        body = text[2:-2].replace(f"}},\n{inner}{{", f"\n{outer}}},\n{outer}{{\n{inner}")
        return f"{{\n{inner}{body}\n{outer}}}"

    def _values(self, values: list[Any], depth: int) -> list[str]:
        """The text of each value (its first line at ``depth``), a whole
        column at a time where the C encoder can do it."""
        kinds = set(map(type, values))
        if kinds <= _SCALAR_TYPES:
            # Separated by NUL, which JSON text never holds raw.
            if self._column is None:
                self._column = _c_encoder(self.ensure_ascii, "\x00", ": ", False)
            if self._column is not None:
                try:
                    text = self._column(values)
                except ValueError:  # NaN or Infinity: null, as dumps_output does
                    text = self._column(finite(values))
                return text[1:-1].split("\x00")
        if (len(kinds) == 1 and all(values)
                and ((kinds == _DICT and _STR.issuperset(map(type, chain.from_iterable(values)))
                      and _SCALAR_TYPES.issuperset(map(type, chain.from_iterable(map(dict.values, values)))))
                     or (kinds == _LIST and _SCALAR_TYPES.issuperset(map(type, chain.from_iterable(values)))))):
            # Non-empty flat objects (or lists): one call, split where one
            # ends and the next begins (see _records).
            opener, closer = ("{", "}") if kinds == _DICT else ("[", "]")
            inner, outer = "  " * (depth + 1), "  " * depth
            try:
                text = self._encoder(depth)(values)
            except ValueError:
                text = self._encoder(depth)(finite(values))
            return [f"{opener}\n{inner}{body}\n{outer}{closer}"
                    for body in text[2:-2].split(f"{closer},\n{inner}{opener}")]
        # Anything else, one by one; small objects repeat (an artifact's
        # cef_types), so each distinct one is rendered once.
        seen: dict[str, str] = {}
        texts = []
        for value in values:
            key = self.compact(value) if type(value) in _SMALL_CONTAINERS and len(value) <= 16 else None
            rendered = seen.get(key) if key is not None else None
            if rendered is None:
                pieces: list[str] = []
                self.parts(value, depth, pieces)
                rendered = "".join(pieces)
                if key is not None:
                    seen[key] = rendered
            texts.append(rendered)
        return texts

    def _table(self, batch: list[Any], depth: int) -> list[str] | None:
        """The texts of objects (at ``depth``) that all have the same keys
        in the same order, built column by column; None otherwise."""
        if not _DICT.issuperset(map(type, batch)):
            return None
        keys = list(batch[0])
        if not keys or not _STR.issuperset(map(type, keys)) or any(list(item) != keys for item in batch):
            return None
        inner = "  " * (depth + 1)
        template = ",".join(f"\n{inner}{self._string(k).replace('%', '%%')}: %s" for k in keys)
        template = f"{{{template}\n{'  ' * depth}}}"
        columns = [self._values([item[k] for item in batch], depth + 1) for k in keys]
        return [template % row for row in zip(*columns, strict=True)]

    def parts(self, value: Any, depth: int, out: list[str]) -> None:
        """Append the JSON text of ``value`` (its first line at ``depth``) to
        ``out`` in pieces; :attr:`flush` (when set) may empty ``out`` between
        the items of a list."""
        kind = type(value)
        if kind is str:
            out.append(self._string(value))
            return
        if kind in _SCALAR_TYPES:
            out.append(self._flat(value, depth))
            return
        if kind is dict:
            # (type checks through map(): C loops, no generator frames)
            if not _STR.issuperset(map(type, value)):
                out.append(self._reference(value, depth))
                return
            if _SCALAR_TYPES.issuperset(map(type, value.values())):
                out.append(self._flat(value, depth))
                return
            lead = "\n" + "  " * (depth + 1)
            key = self._string
            out.append("{")
            for i, (k, v) in enumerate(value.items()):
                head = f"{',' if i else ''}{lead}{key(k)}: "
                item_kind = type(v)
                if item_kind is str:
                    out.append(head + key(v))
                elif item_kind in _SCALAR_TYPES or (
                        item_kind is list and _SCALAR_TYPES.issuperset(map(type, v))):
                    out.append(head + self._flat(v, depth + 1))
                else:
                    out.append(head)
                    self.parts(v, depth + 1, out)
            out.append("\n" + "  " * depth + "}")
            return
        if kind is list:
            if _SCALAR_TYPES.issuperset(map(type, value)):
                out.append(self._flat(value, depth))
                return
            lead = "\n" + "  " * (depth + 1)
            out.append("[")
            flush = self.flush
            long_list = len(value) > 64
            for start in range(0, len(value), _BATCH):
                batch = value[start:start + _BATCH]
                if start:
                    out.append(",")
                if _flat_records(batch):
                    out.append(lead)
                    out.append(self._records(batch, depth + 1))
                elif (table := self._table(batch, depth + 1)) is not None:
                    out.append(lead)
                    out.append(f",{lead}".join(table))
                else:
                    for i, v in enumerate(batch):
                        out.append(f",{lead}" if i else lead)
                        self.parts(v, depth + 1, out)
                if flush is not None and (long_list or len(out) >= _FLUSH_PIECES):
                    flush(out)  # a batch of a long list: a few MB at most
            out.append("\n" + "  " * depth + "]")
            return
        out.append(self._reference(value, depth))


_COMPACT = _Indented(ensure_ascii=False)
_BATCH = 1024


def _flat_records(batch: list[Any]) -> bool:
    """Whether every item is a non-empty object of string keys and scalar values."""
    return (_DICT.issuperset(map(type, batch)) and all(batch)
            and _SCALAR_TYPES.issuperset(map(type, chain.from_iterable(map(dict.values, batch))))
            and _STR.issuperset(map(type, chain.from_iterable(batch))))


# marshal writes every non-ASCII str as UTF-8 with surrogates passed through,
# so a lone surrogate always leaves these three bytes; their absence proves
# there is none. Binary numbers may look like them too: then the exact check.
_MAYBE_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")


def _holds_surrogate(value: Any, top: bool = True) -> bool:
    """Whether any string (or key) in ``value`` is a lone surrogate, checked
    a slice at a time so that no text as large as the whole value is built."""
    if top and isinstance(value, dict):
        return any(_holds_surrogate(k, False) or _holds_surrogate(v, False) for k, v in value.items())
    if isinstance(value, list) and len(value) > _BATCH:
        return any(_holds_surrogate(value[i:i + _BATCH], False) for i in range(0, len(value), _BATCH))
    try:
        if not _MAYBE_SURROGATE.search(marshal.dumps(value)):
            return False  # ~5x faster than encoding it as JSON
    except ValueError:  # a type marshal does not know: the exact check decides
        pass
    text = _COMPACT.compact(value)
    return not text.isascii() and _has_surrogate(text)


def write_output(value: Any, write: Callable[[str], object]) -> None:
    """Write ``dumps_output(value) + "\\n"`` through ``write`` piece by piece
    (a few MB at a time), never holding the whole text: the same bytes,
    for results of any size. Lone surrogates anywhere make the whole text
    ASCII-escaped, as in :func:`dumps_output`, so the value is scanned for
    them first."""
    encoder = _Indented(ensure_ascii=_holds_surrogate(value))

    def flush(pieces: list[str]) -> None:
        write("".join(pieces))
        pieces.clear()

    encoder.flush = flush
    pieces: list[str] = []
    encoder.parts(value, 0, pieces)
    pieces.append("\n")
    flush(pieces)
