"""The app's typed SDK models, generated from the connector's ``manifest.json``.

Nothing here names a parameter, an output data path or a configuration key:
the asset class comes from the manifest's configuration schema (secrets become
password fields, ``enum`` becomes a dropdown), each action's parameters and
output/summary data paths from its declaration. The SDK turns these models
into the app JSON (``soarapps manifests create`` / ``package build``), so the
app JSON and ``manifest.json`` cannot drift apart.

Only the ingestion settings SOAR needs on top of the connector's own
configuration (which alert time to poll on, the overlap, the first run's
look-back, whether to add file artifacts) are written here, because they are
SOAR-only: the embedded runtime takes them as ``watch`` options.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import create_model
from soar_sdk.action_results import OutputField, PermissiveActionOutput
from soar_sdk.asset import AssetField, BaseAsset, FieldCategory
from soar_sdk.params import Param, Params

from connector.manifest import ActionSpec, Manifest, load_manifest
from connector.runtime.poller import FIELDS

#: The manifest's JSON Schema types as the Python types the SDK maps to SOAR
#: data types (str -> string, int/float -> numeric, bool -> boolean).
SCHEMA_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}
#: The manifest's output data types as Python types.
OUTPUT_TYPES: dict[str, type] = {"string": str, "numeric": float, "boolean": bool}

#: SOAR-only ingestion settings of the asset: name -> (type, default, description, choices).
INGEST_SETTINGS: dict[str, tuple[type, Any, str, list[str] | None]] = {
    "poll_time_field": (str, FIELDS[0], "Alert time the poll follows (alertCreationTime: new alerts; "
                        "lastUpdateTime: also alerts that changed)", list(FIELDS)),
    "poll_overlap_minutes": (int, 10, "Minutes each poll reaches back behind its checkpoint, for alerts "
                             "Defender makes visible late (already ingested alerts are skipped)", None),
    "first_poll_lookback_hours": (int, 24, "Hours the first poll reaches back", None),
    "ingest_related_files": (bool, True, "Add one file artifact per related file (hashes, signer, "
                             "verdict) to each alert's container", None),
}


def ingest_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every ingestion setting, its default where ``values`` has none (the SDK
    hands an optional asset field that was left empty over as None)."""
    out = {}
    for key, (_, default, _, _) in INGEST_SETTINGS.items():
        value = values.get(key)
        out[key] = default if value is None or value == "" else value
    return out


def app_id(manifest: Manifest) -> str:
    """A stable SOAR app id derived from the connector id (the same on every build)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:mde-connector:splunk-soar:{manifest.id}"))


def soar_action_name(spec: ActionSpec) -> str:
    """SOAR's action name: the display name in lower case (``get alert related files``)."""
    return spec.display_name.lower()


def _label(prop: dict[str, Any], key: str) -> str:
    text = str(prop.get("description") or prop.get("title") or key)
    return text if len(text) <= 500 else text[:499] + "…"


def asset_class(manifest: Manifest) -> type[BaseAsset]:
    """The asset (instance configuration) model: one field per configuration key."""
    schema = manifest.configuration_schema
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for key, prop in schema.get("properties", {}).items():
        py_type = SCHEMA_TYPES[str(prop.get("type", "string"))]
        secret = key in manifest.secret_keys
        annotation: Any = py_type if key in required else py_type | None
        fields[key] = (annotation, AssetField(
            description=_label(prop, key),
            required=key in required,
            default=prop.get("default"),
            value_list=list(prop["enum"]) if "enum" in prop else None,
            sensitive=secret,
        ))
    for key, (py_type, default, description, choices) in INGEST_SETTINGS.items():
        fields[key] = (py_type | None, AssetField(description=description, required=False, default=default,
                                                  value_list=choices, category=FieldCategory.INGEST))
    return create_model("Asset", __base__=BaseAsset, **fields)


def params_class(spec: ActionSpec) -> type[Params]:
    """An action's parameters: type, description, ``contains`` and ``primary``
    from its JSON Schema. The connector's own validation (patterns, lengths,
    trimming) still runs in ``run_action``; this model only types the input."""
    schema = spec.parameters_schema
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for key, prop in schema.get("properties", {}).items():
        py_type = SCHEMA_TYPES[str(prop.get("type", "string"))]
        annotation: Any = py_type if key in required else py_type | None
        fields[key] = (annotation, Param(
            description=_label(prop, key),
            required=key in required,
            primary=bool(prop.get("primary", False)),
            default=prop.get("default"),
            value_list=list(prop["enum"]) if "enum" in prop else None,
            cef_types=list(prop.get("contains") or []) or None,
        ))
    name = "".join(part.title() for part in spec.name.split("_")) + "Params"
    return create_model(name, __base__=Params, **fields)


def _output_model(spec: ActionSpec, prefix: str, suffix: str) -> type[PermissiveActionOutput] | None:
    fields: dict[str, Any] = {}
    nested: dict[str, str] = {}
    for out in spec.outputs:
        path = out["data_path"]
        if not path.startswith(prefix):
            continue
        key = path[len(prefix):]
        if "." in key:
            head, _, rest = key.partition(".")
            if "*" not in key and "." not in rest:
                nested[head] = prefix + head + "."  # an object's field, e.g. Graph's fileDetails.sha256
            continue  # deeper or array-typed paths have no model field
        if out["data_type"] not in OUTPUT_TYPES:
            continue
        examples = [v for v in out.get("example_values", []) if v is not None] or None
        fields[key] = (OUTPUT_TYPES[out["data_type"]] | None, OutputField(
            cef_types=list(out.get("contains") or []) or None, example_values=examples))
    for head, sub_prefix in nested.items():
        title = "".join(part[:1].upper() + part[1:] for part in head.split("_"))
        sub = _output_model(spec, sub_prefix, suffix + title)
        if sub is not None and head not in fields:
            fields[head] = (sub | None, None)
    if not fields:
        return None
    name = "".join(part.title() for part in spec.name.split("_")) + suffix
    # Permissive: the API's records are kept exactly as received (a wrong
    # type in one field is the connector's artifact mapper's business, not a
    # reason to lose the record).
    return create_model(name, __base__=PermissiveActionOutput, **fields)


def output_class(spec: ActionSpec) -> type[PermissiveActionOutput]:
    """One ``action_result.data.*`` item (e.g. a File with sha256, signer...)."""
    model = _output_model(spec, "action_result.data.*.", "Output")
    if model is None:
        name = "".join(part.title() for part in spec.name.split("_")) + "Output"
        model = create_model(name, __base__=PermissiveActionOutput)
    return model


def summary_class(spec: ActionSpec) -> type[PermissiveActionOutput] | None:
    """The ``action_result.summary.*`` keys the action declares, or None."""
    return _output_model(spec, "action_result.summary.", "Summary")


__all__ = ["INGEST_SETTINGS", "app_id", "asset_class", "ingest_settings", "load_manifest", "output_class",
           "params_class", "soar_action_name", "summary_class"]
