"""The small part of OData v4 that ``GET /api/alerts`` needs.

Timestamps are handled as integer *ticks* (100 ns units since the Unix epoch)
because Microsoft sends seven fractional digits and a poller's watermark must
compare exactly: ``datetime`` would silently drop the seventh digit.

``$filter`` supports comparisons (``eq ne gt ge lt le``) of one alert property
with a literal (datetime, quoted string, number, ``null``, ``true``/``false``),
combined with ``and`` / ``or`` / ``not`` and parentheses. Anything else raises
:class:`ODataError`, which the server turns into a 400 ``ODataError``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

TICKS_PER_SECOND = 10_000_000

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


class ODataError(ValueError):
    """A query option the simulated service cannot parse (HTTP 400)."""


def parse_ticks(text: str) -> int:
    """Parse an ISO-8601 timestamp (any number of fractional digits, ``Z`` or
    an offset, or none meaning UTC) to ticks. Raises :class:`ValueError`."""
    m = _ISO.match(text.strip())
    if not m:
        raise ValueError(f"not an ISO-8601 datetime: {text!r}")
    year, month, day, hour, minute, second, frac, tz = m.groups()
    # Validate the calendar fields (raises ValueError on 2026-02-30 etc.).
    stamp = dt.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
    )
    seconds = calendar.timegm(stamp.timetuple())
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    fraction = int((frac or "0")[:7].ljust(7, "0"))
    return seconds * TICKS_PER_SECOND + fraction


def format_ticks(ticks: int) -> str:
    """Format ticks like Microsoft does: ``2026-11-27T07:00:00.1234567Z``."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    stamp = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{fraction:07d}Z"


def now_ticks() -> int:
    """The current UTC time in ticks (microsecond resolution)."""
    delta = dt.datetime.now(dt.timezone.utc) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


# Alert properties that can be filtered and ordered on, by kind.
DATETIME_FIELDS = (
    "alertCreationTime",
    "lastUpdateTime",
    "firstEventTime",
    "lastEventTime",
    "resolvedTime",
)
STRING_FIELDS = (
    "id",
    "incidentId",
    "investigationId",
    "assignedTo",
    "severity",
    "status",
    "classification",
    "determination",
    "investigationState",
    "detectionSource",
    "detectorId",
    "category",
    "threatFamilyName",
    "threatName",
    "title",
    "machineId",
    "computerDnsName",
    "rbacGroupName",
    "aadTenantId",
)
NUMBER_FIELDS = ("incidentId", "investigationId")

_FIELDS = {name.lower(): name for name in DATETIME_FIELDS + STRING_FIELDS}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<string>'(?:[^']|'')*') |
        (?P<datetime>\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?) |
        (?P<number>-?\d+(?:\.\d+)?) |
        (?P<word>[A-Za-z_][A-Za-z0-9_./]*)
    )""",
    re.VERBOSE,
)

_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}

Predicate = Callable[[Mapping[str, Any]], bool]
TickLookup = Callable[[Any, str], "int | None"]


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ODataError(
                f"Syntax error at position {pos} in '{text}'."
            )
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def _default_ticks(alert: Mapping[str, Any], field: str) -> int | None:
    value = alert.get(field)
    if value is None:
        return None
    try:
        return parse_ticks(str(value))
    except ValueError:
        return None


class _Parser:
    def __init__(self, text: str, ticks: TickLookup) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.ticks = ticks

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ODataError(f"Unexpected end of the $filter expression '{self.text}'.")
        self.pos += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        pred = self.or_expr()
        if self.peek() is not None:
            raise ODataError(
                f"Syntax error: unexpected '{self.peek()[1]}' in the $filter expression '{self.text}'."  # type: ignore[index]
            )
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda alert: any(p(alert) for p in parts)

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda alert: all(p(alert) for p in parts)

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda alert: not inner(alert)
        tok = self.peek()
        if tok and tok[0] == "lparen":
            self.pos += 1
            inner = self.or_expr()
            close = self.take()
            if close[0] != "rparen":
                raise ODataError(f"')' expected in the $filter expression '{self.text}'.")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, word = self.take()
        if kind != "word":
            raise ODataError(f"A property name was expected, found '{word}'.")
        field = _FIELDS.get(word.lower())
        if field is None:
            raise ODataError(
                f"Could not find a property named '{word}' on type "
                "'microsoft.windowsDefenderATP.api.PublicAlertV2Entity'."
            )
        op_kind, op = self.take()
        op = op.lower()
        if op_kind != "word" or op not in _COMPARISONS:
            raise ODataError(f"Unsupported operator '{op}' after '{word}'.")
        lit_kind, lit = self.take()
        if field in DATETIME_FIELDS:
            return self._datetime_comparison(field, op, lit_kind, lit)
        return self._value_comparison(field, op, lit_kind, lit)

    def _datetime_comparison(self, field: str, op: str, kind: str, lit: str) -> Predicate:
        if kind == "word" and lit.lower() == "null":
            if op not in ("eq", "ne"):
                raise ODataError(f"Operator '{op}' cannot be applied to null.")
            want_null = op == "eq"
            return lambda alert: (alert.get(field) is None) == want_null
        text = lit[1:-1].replace("''", "'") if kind == "string" else lit
        if kind not in ("datetime", "string"):
            raise ODataError(
                f"The literal '{lit}' cannot be compared with the DateTimeOffset property '{field}'."
            )
        try:
            bound = parse_ticks(text)
        except ValueError:
            raise ODataError(f"The DateTimeOffset literal '{lit}' is not valid.") from None
        compare = _compare(op)
        ticks = self.ticks

        def pred(alert: Mapping[str, Any]) -> bool:
            value = ticks(alert, field)
            return value is not None and compare(value, bound)

        return pred

    def _value_comparison(self, field: str, op: str, kind: str, lit: str) -> Predicate:
        value: Any
        if kind == "string":
            value = lit[1:-1].replace("''", "'").lower()
        elif kind == "number":
            value = lit
        elif kind == "word" and lit.lower() in ("null", "true", "false"):
            value = None if lit.lower() == "null" else lit.lower()
        else:
            raise ODataError(f"A literal was expected after '{field} {op}', found '{lit}'.")
        if value is None:
            if op not in ("eq", "ne"):
                raise ODataError(f"Operator '{op}' cannot be applied to null.")
            want_null = op == "eq"
            return lambda alert: (alert.get(field) is None) == want_null
        compare = _compare(op)
        numeric = kind == "number" and field in NUMBER_FIELDS

        def pred(alert: Mapping[str, Any]) -> bool:
            actual = alert.get(field)
            if actual is None:
                return op == "ne"
            if numeric:
                try:
                    return compare(float(actual), float(value))
                except (TypeError, ValueError):
                    return False
            return compare(str(actual).lower(), str(value))

        return pred


def _compare(op: str) -> Callable[[Any, Any], bool]:
    return {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
    }[op]


def compile_filter(text: str, ticks: TickLookup | None = None) -> Predicate:
    """Compile a ``$filter`` expression into a predicate over alert dicts.

    ``ticks(alert, field)`` returns a datetime property as ticks (or None); the
    default parses the alert's string value each time, callers with many
    alerts pass a cached lookup. Raises :class:`ODataError` on bad syntax or an
    unknown property.
    """
    if not text.strip():
        raise ODataError("The $filter query option must not be empty.")
    return _Parser(text, ticks or _default_ticks).parse()


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """Parse ``$orderby`` into ``[(property, descending), ...]``."""
    result: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise ODataError(f"The $orderby expression '{text}' is not valid.")
        field = _FIELDS.get(words[0].lower())
        if field is None:
            raise ODataError(
                f"Could not find a property named '{words[0]}' on type "
                "'microsoft.windowsDefenderATP.api.PublicAlertV2Entity'."
            )
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ODataError(f"Unknown sort direction '{words[1]}' in $orderby.")
        result.append((field, direction == "desc"))
    return result


def sort_alerts(
    alerts: list[dict[str, Any]],
    order: list[tuple[str, bool]],
    ticks: TickLookup | None = None,
) -> list[dict[str, Any]]:
    """Stable multi-key sort; nulls sort first ascending (last descending).

    Ties keep the input order, so paging with ``$skip`` over an unchanged data
    set is consistent.
    """
    lookup = ticks or _default_ticks
    result = list(alerts)
    for field, descending in reversed(order):
        if field in DATETIME_FIELDS:

            def time_key(alert: Mapping[str, Any], field: str = field) -> tuple[int, int]:
                value = lookup(alert, field)
                return (0, 0) if value is None else (1, value)

            result.sort(key=time_key, reverse=descending)
        else:

            def value_key(alert: Mapping[str, Any], field: str = field) -> tuple[int, int, Any]:
                value = alert.get(field)
                if value is None:
                    return (0, 0, 0)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return (1, 0, value)
                return (1, 1, str(value).lower())

            result.sort(key=value_key, reverse=descending)
    return result
