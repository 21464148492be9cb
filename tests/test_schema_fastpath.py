"""The quick validity check agrees with jsonschema whenever it answers.

``connector.schema_fastpath`` lets a CLI run skip importing jsonschema for
valid input; these tests hold it to jsonschema's verdicts (Draft 2020-12 with
format checking, as the connector compiles it) on the schemas it is used for
and on hand-picked edge cases.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from connector import schema_fastpath as fp
from connector.manifest import load_manifest
from tests.strategies import hostile_floats, hostile_text

CONFIG_SCHEMA = load_manifest().configuration_schema
PARAMS_SCHEMA = load_manifest().action("get_alert_related_files").validation_schema()


def reference(schema: dict[str, Any], instance: Any) -> bool:
    return bool(Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).is_valid(instance))


def agrees(schema: dict[str, Any], instance: Any) -> int:
    answer = fp.verdict(schema, instance)
    if answer != fp.UNKNOWN:
        assert answer == (fp.VALID if reference(schema, instance) else fp.INVALID), instance
    return answer


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 2000), hostile_floats,
    hostile_text(max_size=12), st.sampled_from(["commercial", "gcc", "gcc-high", "dod", "eu", "us", "x", " ", ""]),
)
urls = st.one_of(
    st.sampled_from([
        "https://127.0.0.1:8443", "https://api.security.microsoft.com", "https://h/t%20x?a=b#f",
        "https://host/a b", "https://[::1]:443/x", "https://user@host/", "https://h/%zz", "https://",
        "http://host", "https://ho st", "https://h/\u00e9", "https://h:port/", "https:///path",
    ]),
    st.builds(lambda host, path: f"https://{host}/{path}", st.from_regex(r"[a-z0-9.\-]{1,20}", fullmatch=True),
              hostile_text(max_size=15)),
)


@st.composite
def configurations(draw: Any) -> dict[str, Any]:
    props = list(CONFIG_SCHEMA["properties"])
    out: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(props + ["timeout", "extra"]), max_size=8, unique=True)):
        if key in ("api_base_url", "authority_url", "proxy") and draw(st.booleans()):
            out[key] = draw(urls)
        else:
            out[key] = draw(scalars)
    if draw(st.booleans()):
        out.setdefault("tenant_id", "t")
        out.setdefault("client_id", "c")
        out.setdefault("client_secret", "s")
    return out


@settings(max_examples=400, deadline=None)
@given(configurations())
def test_configuration_verdicts_match_jsonschema(config: dict[str, Any]) -> None:
    agrees(CONFIG_SCHEMA, config)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["alert_id", "alertid", "x"]),
                       st.one_of(scalars, hostile_text(max_size=300)), max_size=3))
def test_parameter_verdicts_match_jsonschema(params: dict[str, Any]) -> None:
    agrees(PARAMS_SCHEMA, params)


VALID_CONFIG = {"tenant_id": "t", "client_id": "c", "client_secret": "s", "cloud": "commercial",
                "timeout_seconds": 30, "max_retries": 4}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, fp.VALID),
        ({"api_base_url": "https://127.0.0.1:41735"}, fp.VALID),
        ({"cloud": "gcc", "region": "eu"}, fp.INVALID),  # if/then/not
        ({"cloud": "commercial", "region": "eu"}, fp.VALID),
        ({"certificate_password": "p"}, fp.INVALID),  # dependentRequired
        ({"client_secret": None}, fp.INVALID),
        ({"max_retries": True}, fp.INVALID),  # a bool is not an integer
        ({"max_retries": 4.0}, fp.UNKNOWN),  # jsonschema decides (it accepts 4.0)
        ({"timeout_seconds": math.nan}, fp.VALID),  # NaN fails no bound in jsonschema either
        ({"timeout_seconds": 0}, fp.INVALID),
        ({"rate_time_scale": 0}, fp.INVALID),  # exclusiveMinimum
        ({"timeout": 5}, fp.INVALID),  # additionalProperties
        ({"tenant_id": ""}, fp.INVALID),
        ({"api_base_url": "https://h/a b"}, fp.INVALID),  # the pattern rejects the space
        ({"api_base_url": "https://[::1]:443/x"}, fp.UNKNOWN),  # an IP literal: left to jsonschema
    ],
)
def test_configuration_edge_cases(change: dict[str, Any], expected: int) -> None:
    config = {**VALID_CONFIG, **change}
    config = {k: v for k, v in config.items() if v is not None}
    assert agrees(CONFIG_SCHEMA, config) == expected


def test_values_of_other_types_are_left_to_jsonschema() -> None:
    assert fp.verdict(CONFIG_SCHEMA, OrderedDict(VALID_CONFIG)) == fp.UNKNOWN
    assert fp.verdict(PARAMS_SCHEMA, {"alert_id": type("S", (str,), {})("636688558380765161_2136280442")}) == fp.UNKNOWN


def test_parameters() -> None:
    assert agrees(PARAMS_SCHEMA, {"alert_id": "636688558380765161_2136280442"}) == fp.VALID
    assert agrees(PARAMS_SCHEMA, {"alert_id": ".."}) == fp.INVALID
    assert agrees(PARAMS_SCHEMA, {"alert_id": "a\x00b"}) == fp.INVALID
    assert agrees(PARAMS_SCHEMA, {}) == fp.INVALID
    assert agrees(PARAMS_SCHEMA, {"alert_id": "a", "other": 1}) == fp.INVALID


@pytest.mark.parametrize("schema", [
    {"$ref": "#/$defs/x"}, {"const": 1}, {"items": {}}, {"patternProperties": {"a": {}}},
    {"format": "email"}, {"enum": [1, 2]}, {"minLength": 1.5}, {"properties": {"a": {"oneOf": [{}]}}},
])
def test_schemas_beyond_the_supported_keywords_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert fp.compile_quick(schema) is None
    assert fp.verdict(schema, {"a": 1}) == fp.UNKNOWN


def test_a_schema_is_compiled_once() -> None:
    schema = copy.deepcopy(PARAMS_SCHEMA)
    assert fp.compile_quick(schema) is fp.compile_quick(schema)
