"""The manifest is the single source of truth only if code reads what it
declares: every action has a handler and every handler is declared, every
endpoint the clients call is declared, and every key is read somewhere (or
sits on the commented allow-list below)."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
# The code that reads the manifest: the connector and the Splunk SOAR app build.
READERS = [ROOT / "connector", ROOT / "splunk_soar" / "src", ROOT / "scripts"]

# Keys declared for readers outside this repository's code, each with why.
ALLOW_LIST = {
    # Document the packaging's python_requires and license for a reader of
    # the manifest; test_package_metadata_matches_setup_cfg keeps them equal.
    "min_python": "setup.cfg python_requires",
    "license": "setup.cfg license",
    # The kinds of sources.<source>.time_fields: read by pairing, not by name
    # (cli/watch.py maps a field of one source to the other's of the same kind).
    "created": "a time_fields kind",
    "updated": "a time_fields kind",
}

# JSON Schema 2020-12 keywords: jsonschema reads these, not our code.
SCHEMA_KEYWORDS = frozenset({
    "$schema", "$id", "$ref", "$defs", "$comment", "type", "enum", "const", "properties", "required",
    "additionalProperties", "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas",
    "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern",
    "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "allOf",
    "oneOf", "not", "if", "then", "else", "minProperties", "maxProperties",
})
# Keywords whose value is a map of names to subschemas.
SCHEMA_NAME_MAPS = frozenset({"properties", "$defs", "patternProperties", "dependentSchemas"})


def _schema_keys(node: Any) -> Iterator[str]:
    """Keys in a JSON Schema that are not JSON Schema keywords (annotations
    such as x-message, contains, title, examples that our code reads)."""
    if isinstance(node, list):
        for item in node:
            yield from _schema_keys(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in SCHEMA_NAME_MAPS and isinstance(value, dict):
            for sub in value.values():
                yield from _schema_keys(sub)
        elif key in SCHEMA_KEYWORDS:
            if key != "dependentRequired":
                yield from _schema_keys(value)
        else:
            yield key


def _names_map(node: Any, inner: Any) -> Iterator[str]:
    for value in (node or {}).values():
        yield from inner(value)


def _plain(node: Any, rules: dict[str, Any] | None = None) -> Iterator[str]:
    """Keys of a plain object; ``rules`` say how to read a key's value."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        yield key
        rule = (rules or {}).get(key)
        if rule is not None:
            yield from rule(value)
        elif isinstance(value, dict):
            yield from _plain(value)
        elif isinstance(value, list):
            for item in value:
                yield from _plain(item)


def _action_keys(action: Any) -> Iterator[str]:
    yield from _plain(action, {
        "parameters": _schema_keys,
        "endpoints": lambda v: iter(()),  # source name -> endpoint name
        "artifacts": lambda v: _plain(v, {"cef_mapping": lambda m: _names_map(m, _plain)}),
    })


def manifest_keys() -> set[str]:
    """Every key the manifest declares, except names (of clouds, regions,
    sources, endpoints, CEF fields, configuration keys, parameters)."""
    raw = load_manifest().raw
    rules = {
        "configuration": _schema_keys,
        "clouds": lambda v: _names_map(v, lambda c: _plain(c, {"regions": lambda r: iter(())})),
        "sources": lambda v: _names_map(v, lambda s: _plain(s, {"endpoints": lambda e: _names_map(e, _plain)})),
        "actions": lambda v: (k for a in v for k in _action_keys(a)),
        "tables": lambda v: _names_map(v, _plain),  # table name -> its description and columns
    }
    return set(_plain(raw, rules))


def _source_strings() -> set[str]:
    """Every string literal and attribute name in the reading code."""
    found: set[str] = set()
    for base in READERS:
        for path in base.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                          if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                          and n.body and isinstance(n.body[0], ast.Expr)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    found.add(node.value)
                elif isinstance(node, ast.Attribute):
                    found.add(node.attr)
    return found


def test_every_manifest_key_is_read_somewhere() -> None:
    strings = _source_strings()
    unread = sorted(k for k in manifest_keys() - set(ALLOW_LIST) if k not in strings)
    assert not unread, f"manifest keys no code reads (read them, remove them, or allow-list them): {unread}"


def test_the_allow_list_holds_only_declared_keys() -> None:
    assert set(ALLOW_LIST) <= manifest_keys()


def test_package_metadata_matches_setup_cfg() -> None:
    setup = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    required = re.search(r"python_requires\s*=\s*>=\s*([0-9.]+)", setup)
    license_ = re.search(r"^license\s*=\s*(\S+)", setup, re.MULTILINE)
    assert required is not None and required.group(1) == load_manifest().raw["min_python"]
    assert license_ is not None and license_.group(1) == load_manifest().raw["license"]


def test_the_key_walk_sees_the_keys_it_must() -> None:
    keys = manifest_keys()
    # A plain key, a schema annotation, a source's endpoint field, an action key.
    assert {"jitter", "x-message", "permission", "handler", "rows", "data_path", "columns", "wrap"} <= keys
    # Names are not keys.
    assert not {"commercial", "eu", "alert_files", "fileName", "tenant_id"} & keys


# -- the action registry --------------------------------------------------------------


@pytest.mark.parametrize("spec", load_manifest().actions, ids=lambda s: s.name)
def test_every_declared_action_has_a_handler(spec: Any) -> None:
    module = importlib.import_module(spec.handler)
    assert callable(getattr(module, "handler", None)), f"{spec.handler} has no handler(params, context)"


def test_every_action_module_is_declared() -> None:
    declared = {spec.handler for spec in load_manifest().actions}
    modules = {f"connector.actions.{p.stem}" for p in (ROOT / "connector" / "actions").glob("*.py")
               if p.stem != "__init__"}
    assert modules <= declared, f"action modules no manifest action declares: {sorted(modules - declared)}"


def test_every_action_endpoint_is_declared_by_its_source() -> None:
    manifest = load_manifest()
    for spec in manifest.actions:
        for source, name in spec.endpoints.items():
            endpoint = manifest.endpoint(source, name)
            assert endpoint.method == "GET" and endpoint.path.startswith("/")


@pytest.mark.parametrize(("source", "name"), [
    ("defender", "alert_files"), ("defender", "list_alerts"),
    ("graph", "get_alert"), ("graph", "list_alerts"), ("graph", "enrich_file"),
])
def test_the_endpoints_the_code_calls_are_declared(source: str, name: str) -> None:
    endpoint = load_manifest().endpoint(source, name)
    assert re.fullmatch(r"[A-Za-z]+(\.[A-Za-z]+)+", endpoint.permission)
    assert endpoint.permission in load_manifest().sources[source]["permissions"] or source == "graph"
