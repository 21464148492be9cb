"""A quick, exact answer to "is this instance valid?" for simple schemas.

Importing jsonschema costs about 40 ms, more than everything else a CLI run
does apart from importing requests. The schemas checked on every run (the
instance configuration and the action parameters) use a handful of keywords,
so valid input is recognised here without it; jsonschema still decides
everything else and writes every error sentence:

- :func:`compile_quick` turns a schema into a check once (``None`` when the
  schema uses any keyword outside the small set below);
- a check answers VALID, INVALID or UNKNOWN. It answers VALID or INVALID only
  when jsonschema (Draft 2020-12, with format checking) certainly agrees, and
  UNKNOWN whenever it cannot be sure: an unfamiliar value type, a float where
  an integer is expected, a URI it cannot prove valid. Callers treat anything
  but VALID as "ask jsonschema".

Supported: ``type``, ``properties``, ``required``, ``additionalProperties``,
``dependentRequired``, ``minLength``, ``maxLength``, ``pattern``, ``enum``
(of strings), ``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``anyOf``, ``allOf``, ``not``, ``if``/``then``/``else``,
``format: uri`` (an ASCII ``scheme://host[:port]/path?query#fragment`` that
every RFC 3986 / 3987 checker accepts), and annotations (``title``,
``description``, ``examples``, ``default``, ``readOnly``, ``writeOnly``,
``deprecated``, ``$schema``, ``$comment``, ``x-*``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

VALID, INVALID, UNKNOWN = 1, 0, -1

Check = Callable[[Any], int]

_ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "readOnly", "writeOnly", "deprecated", "$schema", "$comment"}
)
# Value types that JSON decoding (and the CLI's conversions) produce; anything
# else (subclasses included) is UNKNOWN to every check.
_PLAIN = frozenset({str, int, float, bool, type(None), dict, list})

# RFC 3986 URI with an authority, no userinfo, no IP literal: a subset of what
# every "uri" format checker (rfc3987, rfc3986-validator) accepts.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*://"
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+"  # reg-name (IPv4 included)
    r"(?::[0-9]+)?"
    rf"(?:/{_PCHAR}*)*"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?"
    rf"(?:#(?:{_PCHAR}|[/?])*)?"
)

_CACHE: dict[int, tuple[Any, Check | None]] = {}


class _Unsupported(Exception):
    pass


def compile_quick(schema: Any) -> Check | None:
    """The check of ``schema`` (compiled once per schema object), or None
    when the schema uses a keyword this module does not implement."""
    entry = _CACHE.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    try:
        check: Check | None = _compile(schema)
    except _Unsupported:
        check = None
    _CACHE[id(schema)] = (schema, check)  # holds `schema`: its id stays unique
    return check


def verdict(schema: Any, instance: Any) -> int:
    """VALID, INVALID or UNKNOWN for ``instance`` against ``schema``."""
    check = compile_quick(schema)
    return UNKNOWN if check is None else check(instance)


def _combine(results: list[int]) -> int:
    if INVALID in results:
        return INVALID
    return UNKNOWN if UNKNOWN in results else VALID


def _compile(schema: Any) -> Check:
    if schema is True or schema == {}:
        return lambda instance: VALID
    if schema is False:
        return lambda instance: INVALID
    if not isinstance(schema, dict):
        raise _Unsupported
    checks: list[Check] = []
    for key, value in schema.items():
        if key in _ANNOTATIONS or key.startswith("x-") or key in ("then", "else"):
            continue
        maker = _KEYWORDS.get(key)
        if maker is None:
            raise _Unsupported
        checks.append(maker(value, schema))
    # "then"/"else" are read by "if" (and ignored without it, as in jsonschema).

    def check(instance: Any) -> int:
        if type(instance) not in _PLAIN:
            return UNKNOWN
        result = VALID
        for c in checks:
            r = c(instance)
            if r == INVALID:
                return INVALID
            if r == UNKNOWN:
                result = UNKNOWN
        return result

    return check


# -- keywords: each maker returns a check of the instance ----------------------


def _type(value: Any, schema: dict[str, Any]) -> Check:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(n in _TYPE_CHECKS for n in names):
        raise _Unsupported
    tests = [_TYPE_CHECKS[n] for n in names]
    return lambda instance: _any(t(instance) for t in tests)


def _any(results: Any) -> int:
    seen_unknown = False
    for r in results:
        if r == VALID:
            return VALID
        if r == UNKNOWN:
            seen_unknown = True
    return UNKNOWN if seen_unknown else INVALID


def _is_string(v: Any) -> int:
    return VALID if type(v) is str else INVALID


def _is_integer(v: Any) -> int:
    if type(v) is int:
        return VALID
    if type(v) is float:
        return UNKNOWN  # 1.0 is an integer to jsonschema; let it say so
    return INVALID


def _is_number(v: Any) -> int:
    return VALID if type(v) in (int, float) else INVALID


_TYPE_CHECKS: dict[str, Check] = {
    "string": _is_string,
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: VALID if type(v) is bool else INVALID,
    "object": lambda v: VALID if type(v) is dict else INVALID,
    "array": lambda v: VALID if type(v) is list else INVALID,
    "null": lambda v: VALID if v is None else INVALID,
}


def _int_arg(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise _Unsupported
    return value


def _min_length(value: Any, schema: dict[str, Any]) -> Check:
    n = _int_arg(value)
    return lambda v: (VALID if len(v) >= n else INVALID) if type(v) is str else VALID


def _max_length(value: Any, schema: dict[str, Any]) -> Check:
    n = _int_arg(value)
    return lambda v: (VALID if len(v) <= n else INVALID) if type(v) is str else VALID


def _pattern(value: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(value, str):
        raise _Unsupported
    try:
        compiled = re.compile(value)  # jsonschema: re.search(pattern, instance)
    except re.error:
        raise _Unsupported from None
    return lambda v: (VALID if compiled.search(v) else INVALID) if type(v) is str else VALID


def _format(value: Any, schema: dict[str, Any]) -> Check:
    if value != "uri":
        raise _Unsupported
    # Proven valid, or left to jsonschema (which may or may not check "uri",
    # depending on the libraries installed).
    return lambda v: (VALID if _URI.fullmatch(v) else UNKNOWN) if type(v) is str else UNKNOWN


def _enum(value: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(value, list) or not all(type(e) is str for e in value):
        raise _Unsupported
    members = frozenset(value)
    # A string equals only an equal string in jsonschema's comparison.
    return lambda v: (VALID if v in members else INVALID) if type(v) is str else UNKNOWN


def _bound(fails: Callable[[Any, Any], bool]) -> Callable[[Any, dict[str, Any]], Check]:
    # ``fails`` is jsonschema's own failing comparison (so NaN passes, as there).
    def maker(value: Any, schema: dict[str, Any]) -> Check:
        if type(value) not in (int, float):
            raise _Unsupported
        # Applies to numbers only; a bool is not a number to jsonschema.
        return lambda v: (INVALID if fails(v, value) else VALID) if type(v) in (int, float) else VALID

    return maker


def _properties(value: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(value, dict):
        raise _Unsupported
    subs = {name: _compile(sub) for name, sub in value.items()}

    def check(v: Any) -> int:
        if type(v) is not dict:
            return VALID
        return _combine([sub(v[name]) for name, sub in subs.items() if name in v])

    return check


def _required(value: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise _Unsupported
    names = tuple(value)
    return lambda v: (VALID if all(n in v for n in names) else INVALID) if type(v) is dict else VALID


def _additional(value: Any, schema: dict[str, Any]) -> Check:
    if "patternProperties" in schema:
        raise _Unsupported
    declared = frozenset((schema.get("properties") or {}).keys())
    sub = _compile(value)

    def check(v: Any) -> int:
        if type(v) is not dict:
            return VALID
        if not all(type(k) is str for k in v):
            return UNKNOWN
        return _combine([sub(item) for k, item in v.items() if k not in declared])

    return check


def _dependent_required(value: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(value, dict) or not all(isinstance(d, list) for d in value.values()):
        raise _Unsupported
    rules = [(k, tuple(d)) for k, d in value.items()]

    def check(v: Any) -> int:
        if type(v) is not dict:
            return VALID
        ok = all(all(n in v for n in needed) for trigger, needed in rules if trigger in v)
        return VALID if ok else INVALID

    return check


def _any_of(value: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(value, list) or not value:
        raise _Unsupported
    subs = [_compile(s) for s in value]
    return lambda v: _any(s(v) for s in subs)


def _all_of(value: Any, schema: dict[str, Any]) -> Check:
    if not isinstance(value, list) or not value:
        raise _Unsupported
    subs = [_compile(s) for s in value]
    return lambda v: _combine([s(v) for s in subs])


def _not(value: Any, schema: dict[str, Any]) -> Check:
    sub = _compile(value)
    flip = {VALID: INVALID, INVALID: VALID, UNKNOWN: UNKNOWN}
    return lambda v: flip[sub(v)]


def _if(value: Any, schema: dict[str, Any]) -> Check:
    condition = _compile(value)
    then = _compile(schema["then"]) if "then" in schema else None
    otherwise = _compile(schema["else"]) if "else" in schema else None

    def check(v: Any) -> int:
        holds = condition(v)
        if holds == UNKNOWN:
            return UNKNOWN
        branch = then if holds == VALID else otherwise
        return VALID if branch is None else branch(v)

    return check


_KEYWORDS: dict[str, Callable[[Any, dict[str, Any]], Check]] = {
    "type": _type,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "format": _format,
    "enum": _enum,
    "minimum": _bound(lambda v, b: v < b),
    "maximum": _bound(lambda v, b: v > b),
    "exclusiveMinimum": _bound(lambda v, b: v <= b),
    "exclusiveMaximum": _bound(lambda v, b: v >= b),
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional,
    "dependentRequired": _dependent_required,
    "anyOf": _any_of,
    "allOf": _all_of,
    "not": _not,
    "if": _if,
}
