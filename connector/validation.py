"""JSON Schema validation that ends in one clear sentence.

Every user-supplied document (action parameters, instance configuration, the
manifest, playbooks) is checked against a Draft 2020-12 schema here, and the
first (most relevant) problem becomes one sentence naming the element at fault
and how to fix it, raised as the :class:`~connector.errors.ConnectorError`
subclass the caller chooses::

    check(schema, params, subject="Parameter", error_cls=InputError,
          context="get_alert_related_files")
    # InputError: Parameter 'alert_id' must not be empty; pass the Defender
    # alert id, e.g. 636688558380765161_2136280442.

Schemas may carry a few annotations that only this module reads:

``title``
    A noun phrase used in the fix ("pass the Defender alert id").
``examples``
    The first example is quoted in the fix ("e.g. 6366...").
``x-message``
    Replaces the generated problem text, e.g. ``"must not contain control
    characters or be '.' or '..'"``. A string speaks for the shape keywords
    (pattern, format, not, anyOf, oneOf, allOf, const...); an object maps
    keywords to texts (``{"maxLength": "..."}``). A text containing ``;``
    already says the fix and gets none appended.
``writeOnly`` / ``x-secret``
    The value is a secret: sentences say "the value" instead of quoting it.

Values are quoted on one line: control characters are escaped repr-style and
anything longer than 60 characters is cut with an ellipsis.

``jsonschema`` is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from connector.errors import ConnectorError
from connector.text import escape_text

if TYPE_CHECKING:  # pragma: no cover - typing only
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
    from jsonschema.protocols import Validator  # type: ignore[import-untyped]

__all__ = [
    "Problem",
    "check",
    "compile_validator",
    "describe",
    "explain",
    "find_error",
    "format_path",
    "quote_value",
]

MAX_QUOTED = 60

# Compiled validators keyed by the schema object's id(). The schema itself is
# kept in the entry: holding a reference means the id cannot be recycled by a
# different object while the entry lives, and `is` confirms the hit.
_VALIDATORS: dict[int, tuple[Any, Any]] = {}
_KEYED: dict[str, Any] = {}

# Verbs for the fix part of a sentence, by subject.
_FIX_VERBS = {
    "parameter": "pass",
    "configuration key": "set",
    "playbook field": "set",
    "manifest path": "set",
}


def compile_validator(schema: dict[str, Any], *, key: str | None = None, check_schema: bool = True) -> Validator:
    """Return a Draft 2020-12 validator (format checking on) for ``schema``.

    Compiled once: later calls with the same schema object, or the same
    ``key``, return the cached validator. Unless ``check_schema`` is False the
    schema itself is first checked against the 2020-12 metaschema (costly,
    see bench/NOTES.md, so trusted schemas that CI checks skip it); a broken schema raises
    ``jsonschema.exceptions.SchemaError`` (a programming error, not user input).
    """
    if key is not None:
        cached = _KEYED.get(key)
        if cached is not None:
            return cached
    entry = _VALIDATORS.get(id(schema))
    if entry is not None and entry[0] is schema:
        validator = entry[1]
    else:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

        if check_schema:
            Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        _VALIDATORS[id(schema)] = (schema, validator)
    if key is not None:
        _KEYED[key] = validator
    return validator


def find_error(schema_or_validator: dict[str, Any] | Validator, instance: Any) -> ValidationError | None:
    """The most relevant validation error for ``instance``, or None if valid."""
    validator = _as_validator(schema_or_validator)
    if validator.is_valid(instance):  # fast path: no error objects built
        return None
    from jsonschema.exceptions import best_match

    return best_match(validator.iter_errors(instance), key=_relevance)


class Problem(NamedTuple):
    """One validation error, explained.

    ``path`` is the JSON path of the element at fault (for a missing or an
    unexpected key: the path of that key). ``problem`` is a verb phrase ("is
    required", "must be a number between 1 and 300 (got "abc")"); ``fix`` an
    optional imperative ("pass the Defender alert id, e.g. ...").
    ``keyword`` is the JSON Schema keyword that failed; ``names`` the keys at
    fault for required/unexpected-key errors.
    """

    path: tuple[str | int, ...]
    problem: str
    fix: str | None
    keyword: str
    names: tuple[str, ...] = ()


def explain(
    error: ValidationError,
    *,
    subject: str = "Field",
    context: str | None = None,
    examples: Sequence[Any] | None = None,
    secret_keys: Iterable[str] = (),
) -> Problem:
    """Turn a jsonschema error into a :class:`Problem` (see :func:`describe`)."""
    keyword = str(error.validator)
    schema = error.schema if isinstance(error.schema, dict) else {}
    path = tuple(error.absolute_path)
    instance = error.instance
    secret = _is_secret(schema) or bool(set(map(str, path)) & set(secret_keys))
    custom = _custom_message(error)
    prop_schema = schema

    if keyword == "required":
        missing = [k for k in error.validator_value if k not in instance]
        name = missing[0] if missing else str(error.validator_value[0])
        prop_schema = (schema.get("properties") or {}).get(name, {})
        return Problem(
            path + (name,),
            "is required",
            _fix(subject, prop_schema, examples, _is_secret(prop_schema)),
            keyword,
            (name,),
        )
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        allowed = list((schema.get("properties") or {}).keys())
        extras = [k for k in instance if k not in allowed] if isinstance(instance, dict) else []
        extras = extras or ["?"]
        where = f" by {context}" if context else ""
        if allowed:
            fix = f"accepted {_plural(subject)}: {', '.join(allowed)}"
            close = _close_match(extras[0], allowed)
            if close:
                fix += f" (did you mean '{close}'?)"
        else:
            fix = f"{context or 'it'} accepts no {_plural(subject)}"
        verb = "is" if len(extras) == 1 else "are"
        return Problem(
            path + (extras[0],),
            f"{verb} not accepted{where}",
            fix,
            keyword,
            tuple(str(e) for e in extras),
        )
    if keyword == "dependentRequired":
        for trigger, needed in error.validator_value.items():
            if trigger in instance:
                lacking = [n for n in needed if n not in instance]
                if lacking:
                    return Problem(
                        path + (trigger,),
                        f"needs {_join_names(lacking)} as well",
                        f"set {_join_names(lacking)} or remove {_q(trigger)}",
                        keyword,
                        (trigger,),
                    )
    got = "" if secret else f" (got {quote_value(instance)})"

    if custom is not None:
        if isinstance(instance, (dict, list)) or keyword in ("anyOf", "oneOf", "not"):
            got = ""
        text, _, fix = custom.partition(";")
        return Problem(path, text.strip() + got, fix.strip() or None, keyword)
    if keyword == "type":
        return Problem(path, f"must be {_expectation(schema)}{got}", None, keyword)
    if keyword == "minLength" and isinstance(instance, str) and not instance:
        return Problem(path, "must not be empty", _fix(subject, schema, examples, secret), keyword)
    if keyword in ("minLength", "maxLength"):
        n = error.validator_value
        bound = "at least" if keyword == "minLength" else "at most"
        unit = "character" if n == 1 else "characters"
        length = f" (got {len(instance)} characters)" if isinstance(instance, str) else ""
        return Problem(path, f"must be {bound} {n} {unit} long{length}", None, keyword)
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return Problem(path, f"must be {_expectation(schema)}{got}", None, keyword)
    if keyword == "enum":
        return Problem(path, f"must be {_expectation(schema)}{got}", None, keyword)
    if keyword == "const":
        return Problem(path, f"must be {quote_value(error.validator_value)}{got}", None, keyword)
    if keyword == "format":
        return Problem(
            path,
            f"must be a valid {error.validator_value}{got}",
            _fix(subject, schema, examples, secret),
            keyword,
        )
    if keyword == "pattern":
        return Problem(path, f"has an invalid format{got}", _fix(subject, schema, examples, secret), keyword)
    if keyword in ("minItems", "maxItems"):
        bound = "at least" if keyword == "minItems" else "at most"
        n = error.validator_value
        return Problem(path, f"must have {bound} {n} item{'s' if n != 1 else ''}", None, keyword)
    if keyword == "uniqueItems":
        return Problem(path, "must not repeat an item", None, keyword)
    if keyword in ("minProperties", "maxProperties"):
        bound = "at least" if keyword == "minProperties" else "at most"
        return Problem(path, f"must have {bound} {error.validator_value} keys", None, keyword)
    if keyword == "not":
        return Problem(path, "is not allowed here", None, keyword)
    if keyword in ("anyOf", "oneOf"):
        return Problem(path, "does not match any accepted form", None, keyword)
    if keyword == "propertyNames":
        return Problem(path, f"has an invalid key{got}", None, keyword)
    if secret:
        return Problem(path, "has an invalid value", None, keyword)
    # Fallback: jsonschema's own message, kept on one line and short.
    return Problem(path, f"is invalid: {_one_line(error.message, 160)}", None, keyword)


def describe(
    error: ValidationError,
    *,
    subject: str,
    context: str | None = None,
    examples: Sequence[Any] | None = None,
    secret_keys: Iterable[str] = (),
    root: str | None = None,
) -> str:
    """One sentence for ``error``: ``{subject} '{path}' {problem}; {fix}.``

    ``subject`` names what the path points into ("Parameter", "Configuration
    key", "Manifest path", "Playbook field"). An error about the whole instance
    (empty path) is phrased with ``root`` (default: "The parameters", "The
    configuration", ... derived from the subject).
    """
    p = explain(error, subject=subject, context=context, examples=examples, secret_keys=secret_keys)
    return sentence(p, subject=subject, root=root)


def sentence(problem: Problem, *, subject: str, root: str | None = None) -> str:
    """Render a :class:`Problem` as one sentence ending with a full stop."""
    if problem.path:
        if len(problem.names) > 1:
            head = f"{subject}s {_join_names(problem.names)}"
        else:
            head = f"{subject} {_q(format_path(problem.path))}"
    else:
        head = root or _root_noun(subject)
    text = f"{head} {problem.problem}"
    if problem.fix:
        text += f"; {problem.fix}"
    return text.rstrip(".") + "."


def check(
    schema_or_validator: dict[str, Any] | Validator,
    instance: Any,
    *,
    subject: str,
    error_cls: type[ConnectorError],
    context: str | None = None,
    examples: Sequence[Any] | None = None,
    root: str | None = None,
    check_schema: bool = True,
) -> None:
    """Validate ``instance``; on failure raise ``error_cls`` with one sentence.

    ``subject``: what a path names, e.g. "Parameter" or "Configuration key".
    ``context``: the owner of the schema, e.g. the action name, used in
    "is not accepted by get_alert_related_files". ``examples``: fallback
    examples for the fix when the failing property's schema has none.
    Values of properties marked ``writeOnly``/``x-secret`` are never quoted.
    ``check_schema``: as in :func:`compile_validator`, for a schema dict.

    A compiled validator, or a trusted schema dict (``check_schema=False``),
    that :mod:`connector.schema_fastpath` can read recognises valid input
    without importing jsonschema; anything else, and every error, goes to
    jsonschema.
    """
    if isinstance(schema_or_validator, dict):
        trusted = None if check_schema else schema_or_validator
    else:
        trusted = getattr(schema_or_validator, "schema", None)
    if trusted is not None:
        from connector import schema_fastpath

        if schema_fastpath.verdict(trusted, instance) == schema_fastpath.VALID:
            return
    validator = _as_validator(schema_or_validator, check_schema=check_schema)
    error = find_error(validator, instance)
    if error is None:
        return
    message = describe(
        error,
        subject=subject,
        context=context,
        examples=examples,
        secret_keys=secret_keys_of(validator.schema),
        root=root,
    )
    raise error_cls(message)


def secret_keys_of(schema: Any) -> frozenset[str]:
    """Names of the top-level properties marked ``writeOnly`` or ``x-secret``."""
    if not isinstance(schema, dict):
        return frozenset()
    props = schema.get("properties") or {}
    return frozenset(k for k, v in props.items() if _is_secret(v))


def format_path(path: Iterable[str | int]) -> str:
    """``['actions', 1, 'output']`` -> ``actions[1].output``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = escape_text(str(part))
            out += f".{name}" if out else name
    return out


def quote_value(value: Any, limit: int = MAX_QUOTED) -> str:
    """A value as shown in a sentence: strings in double quotes with control
    characters escaped, other values as compact JSON, cut to ``limit`` chars."""
    if isinstance(value, str):
        return f'"{_cut(escape_text(value), limit)}"'
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return _cut(escape_text(text), limit)


# -- helpers -----------------------------------------------------------------


def _as_validator(schema_or_validator: Any, *, check_schema: bool = True) -> Any:
    if isinstance(schema_or_validator, dict):
        return compile_validator(schema_or_validator, check_schema=check_schema)
    return schema_or_validator


# Among errors at the same place, the one a user should fix first: a wrong
# type before a wrong length, an empty value before a malformed one.
_PRIORITY = {
    "type": 6,
    # An unexpected key is usually a misspelt expected one: say so first.
    "additionalProperties": 6,
    "unevaluatedProperties": 6,
    "required": 5,
    "minLength": 4,
    "maxLength": 3,
    "enum": 3,
    "const": 3,
}
_WEAK = frozenset({"anyOf", "oneOf", "allOf", "if", "then", "else"})

# Keywords a plain-string x-message speaks for: those about the value's shape,
# where a generated text ("has an invalid format") says too little. Type,
# length and range errors keep their generated, more precise text.
_SHAPE_KEYWORDS = frozenset(
    {"pattern", "format", "not", "anyOf", "oneOf", "allOf", "const", "contains", "propertyNames", "dependentSchemas"}
)


def _relevance(error: ValidationError) -> Any:
    return (
        -len(error.path),
        error.validator not in _WEAK,
        _PRIORITY.get(error.validator, 1),
        not error._matches_type(),
    )


def _custom_message(error: ValidationError) -> str | None:
    # The nearest applicable x-message, on the error itself or on the
    # anyOf/oneOf/not error containing it: a branch of "client_secret or
    # certificate_path" alone would wrongly claim one particular key is
    # required. x-message is either one text for the shape keywords, or an
    # object {keyword: text}.
    node: Any = error
    while node is not None:
        schema = node.schema
        if isinstance(schema, dict):
            custom = schema.get("x-message")
            if isinstance(custom, dict) and isinstance(custom.get(node.validator), str):
                return str(custom[node.validator])
            if isinstance(custom, str) and node.validator in _SHAPE_KEYWORDS:
                return custom
        node = node.parent
    return None


def _is_secret(schema: Any) -> bool:
    return isinstance(schema, dict) and bool(schema.get("writeOnly") or schema.get("x-secret"))


def _fix(subject: str, schema: dict[str, Any], examples: Sequence[Any] | None, secret: bool) -> str | None:
    verb = _FIX_VERBS.get(subject.lower(), "use")
    title = schema.get("title") if isinstance(schema, dict) else None
    ex = None
    if not secret:
        candidates = schema.get("examples") if isinstance(schema, dict) else None
        candidates = candidates or examples
        if candidates:
            ex = candidates[0]
    if title and ex is not None:
        return f"{verb} {title}, e.g. {_example(ex)}"
    if title:
        return f"{verb} {title}"
    if ex is not None:
        return f"for example {_example(ex)}"
    return None


def _example(value: Any) -> str:
    return _cut(escape_text(value), MAX_QUOTED) if isinstance(value, str) else quote_value(value)


def _expectation(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(v if isinstance(v, str) else quote_value(v) for v in schema["enum"])
    if "const" in schema:
        return quote_value(schema["const"])
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    words = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "array": "a list",
        "object": "an object",
        "null": "null",
    }
    text = " or ".join(words.get(t, t) for t in types) or "a valid value"
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        text += f" between {_num(low)} and {_num(high)}"
    elif low is not None:
        text += f" {'greater than' if 'exclusiveMinimum' in schema else 'of at least'} {_num(low)}"
    elif high is not None:
        text += f" {'less than' if 'exclusiveMaximum' in schema else 'of at most'} {_num(high)}"
    return text


def _num(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _plural(subject: str) -> str:
    return subject.lower() + "s"


def _root_noun(subject: str) -> str:
    words = subject.split()
    if len(words) == 1:
        return f"The {words[0].lower()}s"
    return f"The {words[0].lower()}"


def _q(name: str) -> str:
    return f"'{name}'"


def _join_names(names: Sequence[str]) -> str:
    quoted = [_q(escape_text(str(n))) for n in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _close_match(word: str, choices: Sequence[str]) -> str | None:
    import difflib

    hits = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    if hits:
        return hits[0]
    # "timeout" for "timeout_seconds": a prefix is a likely abbreviation.
    prefixed = [c for c in choices if len(word) >= 4 and c.startswith(word)]
    return prefixed[0] if len(prefixed) == 1 else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _one_line(text: str, limit: int) -> str:
    return _cut(escape_text(text), limit)
