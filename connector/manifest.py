"""Load ``manifest.json`` and answer questions from it.

The manifest is the connector's single source of truth: identity, the
instance configuration schema, the clouds table, declared HTTP behaviour and
the actions with their parameter schemas, output data paths and artifact
mappings. Everything user-facing is derived from it here::

    manifest = load_manifest()                    # packaged manifest, cached
    spec = manifest.action("get-alert-related-files")
    params = spec.validate_params({"alert_id": " 6366_21 "})  # -> stripped
    config = manifest.validate_configuration(raw_config)      # -> defaults

Errors: a broken manifest raises :class:`ManifestError`, bad parameters
:class:`InputError`, bad configuration :class:`ConfigError`; each carries one
sentence naming the JSON path at fault.

The module imports only ``json``/``re``-level stdlib at import time;
``jsonschema`` is loaded when something is first validated.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from connector import coerce, validation
from connector.errors import ConfigError, InputError, ManifestError

__all__ = [
    "ActionSpec",
    "Endpoint",
    "Manifest",
    "ManifestReport",
    "default_manifest_path",
    "load_manifest",
    "validate_manifest_file",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
_SCHEMA_PATH = _PACKAGE_DIR / "schemas" / "manifest.schema.json"

# Annotations a platform reads on a parameter's schema that are not JSON Schema
# (Splunk-style `contains: [types]` clashes with the 2020-12 array keyword).
_PARAM_ANNOTATIONS = ("contains", "primary")

_CACHE: dict[Path, Manifest] = {}
_SCHEMA_CACHE: list[dict[str, Any]] = []
_DEFAULT: list[Manifest] = []  # the packaged manifest, once loaded

# The packaged manifest's proof of validation, made where it can be written
# (the source tree, by ``python -m connector.manifest --stamp``) and shipped
# with the package: the digest of a manifest and schema that passed every
# check, tests included (tests/test_manifest_memo.py fails when it is
# stale). A manifest with the same digest is not validated again, so no
# process imports jsonschema on the happy path and nothing is ever written
# beside the installed code; any other manifest (edited in place, or
# another file) is validated in full.
_STAMP = _PACKAGE_DIR / "manifest.validated"


def default_manifest_path() -> Path:
    """Path of the manifest shipped with the package (``connector/manifest.json``)."""
    return _PACKAGE_DIR / "manifest.json"


def load_manifest(path: str | Path | None = None, *, validate: bool = True) -> Manifest:
    """Load, validate and cache a manifest (default: the packaged one).

    The same path returns the same :class:`Manifest` object on later calls.
    Raises :class:`ManifestError` if the file is missing, is not JSON, or does
    not satisfy ``schemas/manifest.schema.json`` and the rules a schema cannot
    express (unique action names, unique output paths).
    """
    if path is None and _DEFAULT:
        return _DEFAULT[0]  # every action asks: skip resolving the path again
    resolved = Path(path if path is not None else default_manifest_path()).resolve()
    cached = _CACHE.get(resolved)
    if cached is not None:
        return cached
    text = _read_text(resolved)
    raw = _parse_json(text, resolved)
    if validate:
        digest = _validation_digest(text)
        if not _validated_before(digest):
            problems = _problems(raw, resolved.name, first_only=True)
            if problems:
                raise ManifestError(problems[0])
    manifest = Manifest(raw, source=resolved)
    _CACHE[resolved] = manifest
    if path is None:
        _DEFAULT.append(manifest)
    return manifest


def _validation_digest(text: str) -> str:
    """Digest of a manifest's text and the schema it is checked against."""
    import hashlib

    digest = hashlib.sha256(text.encode("utf-8"))
    try:
        digest.update(hashlib.sha256(_SCHEMA_PATH.read_bytes()).digest())
    except OSError:
        digest.update(b"unreadable")
    return digest.hexdigest()


def _validated_before(digest: str) -> bool:
    try:
        return _STAMP.read_text(encoding="ascii").strip() == digest
    except (OSError, UnicodeDecodeError):
        return False


def stamp_packaged_manifest() -> Path:
    """Validate the packaged manifest in full and write its stamp (a
    development step, in the source tree: the stamp ships with the package).
    Raises :class:`ManifestError` when the manifest is invalid."""
    path = default_manifest_path()
    validate_manifest_file(path)
    _STAMP.write_text(_validation_digest(_read_text(path)) + "\n", encoding="ascii")
    return _STAMP


class ManifestReport(list):  # type: ignore[type-arg]
    """Lines describing a validated manifest; ``str()`` joins them with newlines."""

    def __str__(self) -> str:
        return "\n".join(self)


def validate_manifest_file(path: str | Path | None = None) -> ManifestReport:
    """Check a manifest file without caching it; return what was checked.

    For ``mde-connector manifest validate``: returns a :class:`ManifestReport`
    (a list of lines; ``print(report)`` shows one per line: name, version,
    configuration keys, clouds, each action's parameters and outputs) when the
    manifest is valid, raises :class:`ManifestError` with the first problem
    otherwise.
    """
    resolved = Path(path if path is not None else default_manifest_path()).resolve()
    raw = _read_json(resolved)
    problems = _problems(raw, resolved.name, first_only=True)
    if problems:
        raise ManifestError(problems[0])
    manifest = Manifest(raw, source=resolved)
    # At run time the embedded schemas are trusted (the metaschema check would
    # slow every CLI start-up; bench/NOTES.md); this command proves them valid.
    _check_embedded_schema(manifest.configuration_schema, "configuration", resolved.name)
    for i, spec in enumerate(manifest.actions):
        _check_embedded_schema(spec.validation_schema(), f"actions[{i}].parameters", resolved.name)
    report = ManifestReport(
        [
            f"{resolved.name}: valid ({manifest.name} {manifest.version}).",
            f"configuration: {len(manifest.configuration_schema.get('properties', {}))} keys, "
            f"secrets: {', '.join(sorted(manifest.secret_keys)) or 'none'}.",
            f"clouds: {', '.join(manifest.clouds)}.",
        ]
    )
    for spec in manifest.actions:
        report.append(
            f"action {spec.name}: {len(spec.parameters_schema.get('properties', {}))} "
            f"parameter(s), {len(spec.outputs)} output path(s), "
            f"permissions {', '.join(spec.permissions) or 'none'}."
        )
    return report


class Endpoint(NamedTuple):
    """One call to an API, as ``sources.<source>.endpoints.<name>`` declares
    it: method, path template (``{alert_id}``: one encoded path segment) and
    the application permission it needs (named in a 403's hint)."""

    method: str
    path: str
    permission: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class Manifest:
    """A validated manifest. Treat every attribute as read-only."""

    def __init__(self, raw: dict[str, Any], *, source: Path | None = None) -> None:
        self.raw: dict[str, Any] = raw
        self.source = source
        self.name: str = raw["name"]
        self.id: str = raw.get("id", "")
        self.version: str = raw["version"]
        self.description: str = raw.get("description", "")
        self.clouds: dict[str, dict[str, Any]] = raw["clouds"]
        self.configuration_schema: dict[str, Any] = _with_cloud_names(raw["configuration"], self.clouds)
        self.http: dict[str, Any] = raw["http"]
        # The APIs an instance may read (configuration key "source"); optional.
        self.sources: dict[str, dict[str, Any]] = raw.get("sources") or {}
        # The parameter naming the alert a result (and its container) belongs to.
        self.container_key: str = raw["container"]["key"]
        self.container_contains: tuple[str, ...] = tuple(raw["container"]["contains"])
        self.actions: list[ActionSpec] = [ActionSpec(a, manifest=self) for a in raw["actions"]]
        self._by_key: dict[str, ActionSpec] = {}
        for spec in self.actions:
            for alias in (spec.name, spec.display_name, spec.name.replace("_", "-")):
                self._by_key.setdefault(_action_key(alias), spec)
        props = self.configuration_schema.get("properties", {})
        self.secret_keys: frozenset[str] = frozenset(
            k for k, v in props.items() if v.get("writeOnly") or v.get("x-secret")
        )

    @property
    def default_source(self) -> str:
        """The source an instance reads when its configuration names none."""
        prop = self.configuration_schema.get("properties", {}).get("source") or {}
        return str(prop.get("default", next(iter(self.sources), "")))

    def config_default(self, key: str) -> Any:
        """The declared default of configuration key ``key`` (None if none)."""
        return (self.configuration_schema.get("properties", {}).get(key) or {}).get("default")

    def endpoint(self, source: str, name: str) -> Endpoint:
        """``sources.<source>.endpoints.<name>``; raises KeyError when the
        manifest does not declare it (a programming error: the manifest
        tests check every name the code asks for)."""
        raw = self.sources[source]["endpoints"][name]
        return Endpoint(raw["method"], raw["path"], raw["permission"])

    def alert_fields(self, source: str | None = None) -> frozenset[str]:
        """The alert fields a playbook may reference for ``source`` (default:
        the default source); a source declaring none uses the default's."""
        declared = (self.sources.get(source or self.default_source) or {}).get("alert_fields")
        if declared is None:
            declared = (self.sources.get(self.default_source) or {}).get("alert_fields") or ()
        return frozenset(declared)

    def action(self, name: str) -> ActionSpec:
        """The action called ``name``; its display name or a dashed form also
        work (``get-alert-related-files``, ``Get Alert Related Files``).

        Raises :class:`InputError` listing the known actions otherwise.
        """
        spec = self._by_key.get(_action_key(name))
        if spec is None:
            known = ", ".join(s.name for s in self.actions)
            raise InputError(f"Unknown action {validation.quote_value(name)}; known actions: {known}.")
        return spec

    def validate_configuration(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate an instance configuration; return a copy with defaults.

        Strings are stripped of surrounding whitespace, and strings given for
        number, integer or boolean keys (as environment variables are) are
        converted when they parse cleanly; anything else is left as given so
        that the error quotes it. Raises :class:`ConfigError` naming the key;
        secret values are never quoted.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"The configuration must be a JSON object of key/value pairs (got {type(config).__name__})."
            )
        schema = self.configuration_schema
        props = schema.get("properties", {})
        out: dict[str, Any] = {}
        for key, value in config.items():
            spec = props.get(key)
            if isinstance(value, str):
                value = value.strip()
                if spec is not None:
                    value = coerce.lenient(value, spec)
            out[key] = value
        _apply_defaults(out, props)
        validation.check(
            schema,
            out,
            subject="Configuration key",
            error_cls=ConfigError,
            context="the configuration",
            root="The configuration",
            # Trusted like the parameter schemas: validate_manifest_file()
            # checks it against the metaschema, not every start-up (bench/NOTES.md).
            check_schema=False,
        )
        return out

    def __repr__(self) -> str:
        return f"<Manifest {self.id or self.name} {self.version}: {len(self.actions)} actions>"


class ActionSpec:
    """One action as declared in the manifest."""

    def __init__(self, raw: dict[str, Any], *, manifest: Manifest | None = None) -> None:
        self.raw = raw
        self.manifest = manifest
        self.name: str = raw["name"]
        self.display_name: str = raw.get("display_name", self.name)
        self.description: str = raw.get("description", "")
        self.type: str = raw.get("type", "generic")
        self.read_only: bool = bool(raw.get("read_only", True))
        self.permissions: list[str] = list(raw.get("permissions", []))
        # The module whose handler(params, context) runs the action.
        self.handler: str = raw.get("handler", "")
        # source -> name of the endpoint the action calls there.
        self.endpoints: dict[str, str] = dict(raw.get("endpoints") or {})
        self.parameters_schema: dict[str, Any] = raw["parameters"]
        self.outputs: list[dict[str, Any]] = list(raw["output"])
        self.artifact_mapping: dict[str, Any] | None = raw.get("artifacts")
        self.render: dict[str, Any] = raw.get("render", {})
        self.output_paths: frozenset[str] = frozenset(o["data_path"] for o in self.outputs)
        ordered = sorted(
            (o for o in self.outputs if "column_order" in o and "column_name" in o),
            key=lambda o: o["column_order"],
        )
        self.table_columns: list[tuple[str, str]] = [(o["data_path"], o["column_name"]) for o in ordered]
        self._validator: Any = None
        self._params_schema: dict[str, Any] | None = None

    def output_paths_for(self, source: str, *, enriched: bool = False) -> frozenset[str]:
        """The output paths an instance reading ``source`` (``defender`` or
        ``graph``) produces; ``enriched`` (``enrich_files``) adds the
        ``<source>_enriched`` ones. An output without ``sources`` belongs to all."""
        wanted = {source, f"{source}_enriched"} if enriched else {source}
        return frozenset(o["data_path"] for o in self.outputs if wanted & set(o.get("sources") or wanted))

    # -- validation ----------------------------------------------------------

    def validation_schema(self) -> dict[str, Any]:
        """The parameters schema minus platform annotations (``contains``
        lists, ``primary``), i.e. what input is actually validated against."""
        schema = dict(self.parameters_schema)
        props = {}
        for name, prop in schema.get("properties", {}).items():
            if any(k in prop for k in _PARAM_ANNOTATIONS):
                prop = {k: v for k, v in prop.items() if k not in _PARAM_ANNOTATIONS}
            props[name] = prop
        schema["properties"] = props
        return schema

    def _trusted_schema(self) -> dict[str, Any]:
        # Built once, so that the validator and the quick check compiled from
        # it are cached under one object. Trusted: validate_manifest_file()
        # checks it against the metaschema (CI runs it), and the manifest
        # schema shapes it.
        if self._params_schema is None:
            self._params_schema = self.validation_schema()
        return self._params_schema

    def validator(self) -> Any:
        """The compiled validator of the parameters (built once)."""
        if self._validator is None:
            self._validator = validation.compile_validator(self._trusted_schema(), check_schema=False)
        return self._validator

    def validate_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate action parameters; return a clean copy.

        Leading and trailing whitespace is stripped from string values (and
        strings inside lists) BEFORE validation, so a pasted ``" 6366..._... "``
        works and a whitespace-only value counts as empty. Declared defaults
        are applied. Raises :class:`InputError` with one sentence naming the
        parameter and the fix.
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise InputError(
                f"Parameters of {self.name} must be a JSON object of name/value pairs (got {type(params).__name__})."
            )
        clean: dict[str, Any] = {}
        for key, value in params.items():
            if isinstance(value, str):
                value = value.strip()
            elif isinstance(value, list):
                value = [v.strip() if isinstance(v, str) else v for v in value]
            clean[key] = value
        _apply_defaults(clean, self.parameters_schema.get("properties", {}))
        validation.check(
            self._trusted_schema(),
            clean,
            check_schema=False,  # valid input needs no jsonschema import at all
            subject="Parameter",
            error_cls=InputError,
            context=self.name,
            root=f"The parameters of {self.name}",
        )
        return clean

    def params_from_cli(self, pairs: Iterable[str]) -> dict[str, Any]:
        """Parse ``KEY=VALUE`` strings (``--param`` values) into parameters.

        Splits on the first ``=``; converts VALUE by the parameter's declared
        type: integer, number, boolean (true/false/yes/no/1/0), array (a JSON
        list or a comma-separated list), object (JSON), string (as is). Unknown
        keys are passed through for :meth:`validate_params` to reject with the
        list of accepted ones. Raises :class:`InputError` for a malformed pair
        or a value that does not convert. The result still needs
        :meth:`validate_params`.
        """
        props = self.parameters_schema.get("properties", {})
        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise InputError(
                    f"Parameter {validation.quote_value(pair)} is not a KEY=VALUE pair; "
                    f"write it as --param {self._cli_example()}."
                )
            if key in out:
                raise InputError(f"Parameter '{validation.format_path([key])}' is given twice; pass it once.")
            out[key] = coerce.strict(key, value, props.get(key, {}))
        return out

    def _cli_example(self) -> str:
        for name, prop in self.parameters_schema.get("properties", {}).items():
            examples = prop.get("examples") or []
            return f"{name}={examples[0] if examples else '...'}"
        return "name=value"

    # -- documentation ---------------------------------------------------------

    def help_text(self) -> str:
        """Plain-text help generated from the manifest: description,
        permissions, parameters (type, required/optional, default, contains,
        examples) and output data paths."""
        lines = [f"{self.name} ({self.display_name})", "", self.description, ""]
        if self.manifest is not None:
            for source, endpoint in self.endpoints.items():
                where = "" if source == self.manifest.default_source else f" (source {source})"
                lines.append(f"Calls{where}: {self.manifest.endpoint(source, endpoint)}")
        lines.append("Permissions: " + (", ".join(self.permissions) if self.permissions else "none"))
        lines.append(f"Read only: {'yes' if self.read_only else 'no'}")
        lines.append("")
        props = self.parameters_schema.get("properties", {})
        required = set(self.parameters_schema.get("required", []))
        if props:
            lines.append("Parameters:")
            for name, prop in props.items():
                bits = [_type_word(prop), "required" if name in required else "optional"]
                if "default" in prop:
                    bits.append(f"default {json.dumps(prop['default'])}")
                if prop.get("contains"):
                    bits.append("contains " + ", ".join(prop["contains"]))
                lines.append(f"  {name} ({'; '.join(bits)})")
                if prop.get("description"):
                    lines.append(f"      {prop['description']}")
                if prop.get("examples"):
                    lines.append("      Examples: " + ", ".join(map(str, prop["examples"])))
        else:
            lines.append("Parameters: none")
        lines.append("")
        lines.append("Outputs:")
        for o in self.outputs:
            contains = f" [{', '.join(o['contains'])}]" if o.get("contains") else ""
            lines.append(f"  {o['data_path']} ({o['data_type']}){contains}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ActionSpec {self.name}>"


# -- helpers ---------------------------------------------------------------------


def _action_key(name: str) -> str:
    return "".join(c for c in str(name).lower() if c.isalnum())


def _read_json(path: Path) -> dict[str, Any]:
    return _parse_json(_read_text(path), path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"Manifest file {path} does not exist.") from None
    except OSError as exc:
        raise ManifestError(f"Manifest file {path} cannot be read: {exc.strerror}.") from None


def _parse_json(text: str, path: Path) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{path.name} is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path.name} must hold a JSON object at the top level.")
    return data


def _check_embedded_schema(schema: dict[str, Any], where: str, filename: str) -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        inner = validation.format_path(exc.absolute_path)
        at = f"{where}.{inner}" if inner else where
        raise ManifestError(
            f"{filename} is invalid at {at}: not a valid JSON Schema ({validation.quote_value(exc.message, 100)})."
        ) from None


def _manifest_schema() -> dict[str, Any]:
    if not _SCHEMA_CACHE:
        _SCHEMA_CACHE.append(json.loads(_SCHEMA_PATH.read_text(encoding="utf-8")))
    return _SCHEMA_CACHE[0]


def _problems(raw: dict[str, Any], filename: str, *, first_only: bool) -> list[str]:
    """Sentences for what is wrong with a manifest (empty when valid)."""
    # The manifest schema ships with the code and CI checks it against the
    # metaschema (test_manifest.py): skip that check at start-up.
    validator = validation.compile_validator(_manifest_schema(), key="manifest", check_schema=False)
    error = validation.find_error(validator, raw)
    if error is not None:
        return [_manifest_sentence(error, filename)]
    problems = _semantic_problems(raw, filename)
    return problems[:1] if first_only else problems


def _manifest_sentence(error: Any, filename: str) -> str:
    p = validation.explain(error, subject="Manifest path")
    if p.keyword == "required":
        where = validation.format_path(p.path[:-1]) or "the top level"
        return f"{filename} is invalid at {where}: '{p.names[0]}' is a required property."
    if p.keyword in ("additionalProperties", "unevaluatedProperties"):
        where = validation.format_path(p.path[:-1]) or "the top level"
        names = ", ".join(f"'{n}'" for n in p.names)
        return f"{filename} is invalid at {where}: unexpected key {names}; {p.fix}."
    where = validation.format_path(p.path) or "the top level"
    fix = f"; {p.fix}" if p.fix else ""
    return f"{filename} is invalid at {where}: {p.problem}{fix}."


def _semantic_problems(raw: dict[str, Any], filename: str) -> list[str]:
    # Rules JSON Schema cannot express: uniqueness of names across array items
    # and references between sections.
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, action in enumerate(raw["actions"]):
        first = seen.setdefault(_action_key(action["name"]), i)
        if first != i:
            problems.append(
                f"{filename} is invalid at actions[{i}].name: action "
                f"'{action['name']}' is already declared at actions[{first}]; "
                "action names must be unique."
            )
        paths: dict[str, int] = {}
        for j, out in enumerate(action["output"]):
            k = paths.setdefault(out["data_path"], j)
            if k != j:
                problems.append(
                    f"{filename} is invalid at actions[{i}].output[{j}].data_path: "
                    f"'{out['data_path']}' is already declared at actions[{i}].output[{k}]."
                )
        props = action["parameters"].get("properties", {})
        for name in action["parameters"].get("required", []):
            if name not in props:
                problems.append(
                    f"{filename} is invalid at actions[{i}].parameters.required: "
                    f"'{name}' is required but not declared in properties."
                )
        sources = raw.get("sources") or {}
        for source, endpoint in (action.get("endpoints") or {}).items():
            if endpoint not in (sources.get(source) or {}).get("endpoints", {}):
                problems.append(
                    f"{filename} is invalid at actions[{i}].endpoints.{source}: '{endpoint}' is not declared in "
                    f"sources.{source}.endpoints."
                )
    config = raw["configuration"]
    for name in config.get("required", []):
        if name not in config["properties"]:
            problems.append(
                f"{filename} is invalid at configuration.required: '{name}' is required but not declared in properties."
            )
    return problems


def _with_cloud_names(schema: dict[str, Any], clouds: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The configuration schema with the names the clouds table declares
    filled in where it says ``"x-enum"``: ``clouds`` (every cloud),
    ``regions`` (every region of every cloud) and ``clouds without regions``,
    so that cloud and region names are written once, in the clouds table."""
    names = {
        "clouds": list(clouds),
        "regions": list(dict.fromkeys(r for c in clouds.values() for r in (c.get("regions") or {}))),
        "clouds without regions": [n for n, c in clouds.items() if not c.get("regions")],
    }

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: fill(v) for k, v in node.items() if k != "x-enum"}
            if node.get("x-enum") in names:
                out["enum"] = names[node["x-enum"]]
            return out
        if isinstance(node, list):
            return [fill(v) for v in node]
        return node

    filled: dict[str, Any] = fill(schema)
    return filled


def _apply_defaults(target: dict[str, Any], props: Mapping[str, Any]) -> None:
    for name, prop in props.items():
        if name not in target and "default" in prop:
            default = prop["default"]
            target[name] = copy.deepcopy(default) if isinstance(default, (dict, list)) else default


def _type_word(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + "|".join(map(str, prop["enum"]))
    return "|".join(coerce.schema_types(prop))


if __name__ == "__main__":  # python -m connector.manifest --stamp
    import sys

    if sys.argv[1:] != ["--stamp"]:
        sys.exit("usage: python -m connector.manifest --stamp")
    print(f"wrote {stamp_packaged_manifest()}")
