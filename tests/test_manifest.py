"""The manifest: valid, complete, and true to what the code produces."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import connector
from connector.artifacts import SUMMARY_KEYS, build_artifacts
from connector.errors import InputError, ManifestError
from connector.manifest import (
    ActionSpec,
    default_manifest_path,
    load_manifest,
    validate_manifest_file,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
ACTION = "get_alert_related_files"
ALERT = "636688558380765161_2136280442"

CONFIG_KEYS = {
    "tenant_id", "client_id", "client_secret", "certificate_path", "certificate_password", "cloud", "region",
    "api_base_url", "authority_url", "token_scope", "ca_bundle", "proxy", "timeout_seconds", "state_dir",
}  # fmt: skip
FILE_FIELDS = [
    "sha1", "sha256", "md5", "globalPrevalence", "globalFirstObserved", "globalLastObserved", "size", "fileType",
    "isPeFile", "filePublisher", "fileProductName", "signer", "issuer", "signerHash", "isValidCertificate",
    "determinationType", "determinationValue",
]  # fmt: skip


def raw_manifest() -> dict[str, Any]:
    return json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))


def fixture(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["value"]


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def broken(tmp_path: Path, mutate: Any) -> str:
    data = raw_manifest()
    mutate(data)
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, data))
    text = str(info.value)
    assert "\n" not in text and info.value.exit_code == 2
    return text


def action_raw(data: dict[str, Any], name: str = ACTION) -> dict[str, Any]:
    return next(a for a in data["actions"] if a["name"] == name)


# -- the shipped manifest ---------------------------------------------------------------


def test_shipped_manifest_validates_and_is_the_packaged_one() -> None:
    assert default_manifest_path().resolve() == (ROOT / "manifest.json").resolve()
    report = validate_manifest_file()
    assert str(report).startswith("manifest.json: valid (Microsoft Defender for Endpoint 0.1.0).")
    assert any(line.startswith(f"action {ACTION}: 1 parameter(s)") for line in report)


def test_manifest_version_matches_the_package_version() -> None:
    assert load_manifest().version == connector.__version__ == raw_manifest()["version"]


def test_manifest_identity() -> None:
    m = raw_manifest()
    assert (m["name"], m["id"], m["vendor"], m["product"]) == (
        "Microsoft Defender for Endpoint", "mde-connector", "Microsoft", "Defender for Endpoint",
    )  # fmt: skip
    assert m["min_python"] == "3.10"


def test_manifest_schema_is_valid_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "connector/schemas/manifest.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_load_manifest_is_cached() -> None:
    assert load_manifest() is load_manifest()
    assert load_manifest() is load_manifest(default_manifest_path())


def test_importing_the_pure_modules_does_not_import_jsonschema() -> None:
    code = (
        "import sys, connector.manifest, connector.artifacts, connector.validation; print('jsonschema' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- broken manifests ----------------------------------------------------------------------


def test_missing_output_data_type_names_the_json_path(tmp_path: Path) -> None:
    def mutate(m: dict[str, Any]) -> None:
        del m["actions"][1]["output"][3]["data_type"]

    assert broken(tmp_path, mutate) == (
        "manifest.json is invalid at actions[1].output[3]: 'data_type' is a required property."
    )


def test_data_path_outside_action_result_is_rejected(tmp_path: Path) -> None:
    def mutate(m: dict[str, Any]) -> None:
        m["actions"][1]["output"][2]["data_path"] = "result.parameter.alert_id"

    text = broken(tmp_path, mutate)
    assert text.startswith(
        "manifest.json is invalid at actions[1].output[2].data_path: must start with 'action_result.'"
    )
    assert '"result.parameter.alert_id"' in text


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    text = broken(tmp_path, lambda m: m.update(author="me"))
    assert text.startswith("manifest.json is invalid at the top level: unexpected key 'author'")


@pytest.mark.parametrize("key", ["parameters", "output"])
def test_action_without_parameters_or_outputs_is_rejected(tmp_path: Path, key: str) -> None:
    def mutate(m: dict[str, Any]) -> None:
        del m["actions"][0][key]

    assert broken(tmp_path, mutate) == f"manifest.json is invalid at actions[0]: '{key}' is a required property."


def test_output_without_data_path_is_rejected(tmp_path: Path) -> None:
    def mutate(m: dict[str, Any]) -> None:
        del m["actions"][0]["output"][0]["data_path"]

    assert "actions[0].output[0]: 'data_path' is a required property" in broken(tmp_path, mutate)


def test_duplicate_action_names_are_rejected(tmp_path: Path) -> None:
    def mutate(m: dict[str, Any]) -> None:
        m["actions"].append(copy.deepcopy(m["actions"][1]))

    text = broken(tmp_path, mutate)
    assert text == (
        "manifest.json is invalid at actions[2].name: action 'get_alert_related_files' is already declared "
        "at actions[1]; action names must be unique."
    )


def test_duplicate_output_paths_are_rejected(tmp_path: Path) -> None:
    def mutate(m: dict[str, Any]) -> None:
        m["actions"][1]["output"].append(dict(m["actions"][1]["output"][0]))

    assert "is already declared at actions[1].output[0]" in broken(tmp_path, mutate)


def test_configuration_property_without_description_is_rejected(tmp_path: Path) -> None:
    def mutate(m: dict[str, Any]) -> None:
        del m["configuration"]["properties"]["proxy"]["description"]

    assert broken(tmp_path, mutate) == (
        "manifest.json is invalid at configuration.properties.proxy: 'description' is a required property."
    )


def test_cef_mapping_entry_needs_a_source_or_a_derivation(tmp_path: Path) -> None:
    def mutate(m: dict[str, Any]) -> None:
        del action_raw(m)["artifacts"]["cef_mapping"]["fileHashMd5"]["source"]

    text = broken(tmp_path, mutate)
    assert "artifacts.cef_mapping.fileHashMd5" in text and "'source'" in text


def test_manifest_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{\n  "name": "x",\n  oops\n}', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"^manifest.json is not valid JSON at line 3, column 3: "):
        load_manifest(path)


def test_missing_manifest_file_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        validate_manifest_file(tmp_path / "nope.json")


# -- declared outputs versus produced output (both directions) -------------------------


def produced_result(files: list[dict[str, Any]]) -> dict[str, Any]:
    mapped = build_artifacts(ALERT, files)
    return {
        "status": "success",
        "message": "m",
        "parameter": {"alert_id": ALERT},
        "data": files,
        "summary": mapped.summary,
        "artifacts": mapped.artifacts,
    }


def resolve(node: Any, parts: list[str]) -> list[Any]:
    """Values at a data path ('*' walks a list); a missing key yields nothing."""
    if not parts:
        return [node]
    head, rest = parts[0], parts[1:]
    if head == "*":
        return [v for item in (node if isinstance(node, list) else []) for v in resolve(item, rest)]
    if isinstance(node, dict) and head in node:
        return resolve(node[head], rest)
    return []


def declared(prefix: str) -> set[str]:
    return {p[len(prefix) :] for p in load_manifest().action(ACTION).output_paths if p.startswith(prefix)}


def test_every_file_field_and_summary_key_produced_is_declared() -> None:
    result = produced_result(fixture("documented_example"))
    assert set(result["data"][0]) <= declared("action_result.data.*.")
    assert set(result["summary"]) == set(SUMMARY_KEYS) <= declared("action_result.summary.")
    assert set(result["artifacts"][0]["cef"]) <= declared("action_result.artifacts.*.cef.")
    assert set(result["artifacts"][0]) - {"cef", "cef_types"} <= declared("action_result.artifacts.*.")


def test_every_declared_path_appears_in_the_output_for_a_rich_fixture() -> None:
    result = produced_result(fixture("rich"))
    missing = []
    for path in load_manifest().action(ACTION).output_paths_for("defender"):
        values = resolve(result, path.split(".")[1:])
        if not any(v is not None for v in values):
            missing.append(path)
    assert missing == []


def test_declared_file_fields_are_exactly_the_file_entity() -> None:
    defender = load_manifest().action(ACTION).output_paths_for("defender")
    assert {p.removeprefix("action_result.data.*.") for p in defender
            if p.startswith("action_result.data.*.")} == set(FILE_FIELDS)


def test_declared_data_types_match_the_documented_example() -> None:
    kinds = {"string": str, "numeric": int, "boolean": bool}
    example = fixture("documented_example")[0]
    for out in load_manifest().action(ACTION).outputs:
        field = out["data_path"].removeprefix("action_result.data.*.")
        if field != out["data_path"] and example.get(field) is not None:
            assert isinstance(example[field], kinds[out["data_type"]]), field
            assert example[field] in out["example_values"], field


def test_hash_outputs_carry_contains_types() -> None:
    contains = {o["data_path"]: o["contains"] for o in load_manifest().action(ACTION).outputs}
    assert contains["action_result.data.*.sha1"] == ["sha1", "hash"]
    assert contains["action_result.data.*.sha256"] == ["sha256", "hash"]
    assert contains["action_result.data.*.md5"] == ["md5", "hash"]
    assert contains["action_result.data.*.size"] == ["file size"]
    assert contains["action_result.parameter.alert_id"] == ["defender alert id"]
    assert contains["action_result.artifacts.*.cef.fileHashSha256"] == ["sha256", "hash"]


def test_cef_mapping_declares_the_design_keys_and_their_contains() -> None:
    cef = load_manifest().action(ACTION).artifact_mapping["cef_mapping"]  # type: ignore[index]
    expected = {
        "fileHashMd5": ("md5", ["md5", "hash"]),
        "fileHashSha1": ("sha1", ["sha1", "hash"]),
        "fileHashSha256": ("sha256", ["sha256", "hash"]),
        "fileSize": ("size", ["file size"]),
        "signer": ("signer", []),
        "issuer": ("issuer", []),
        "signerHash": ("signerHash", ["certificate hash"]),
        "isValidCertificate": ("isValidCertificate", []),
    }
    for key, (source, contains) in expected.items():
        assert (cef[key]["source"], cef[key]["contains"]) == (source, contains), key
    assert cef["verdict"]["derived"] == "verdict"


def test_alert_id_parameter_is_primary_and_feeds_from_defender_alert_ids() -> None:
    prop = load_manifest().action(ACTION).parameters_schema["properties"]["alert_id"]
    assert prop["contains"] == ["defender alert id"]
    assert prop["primary"] is True
    assert (prop["minLength"], prop["maxLength"]) == (1, 256)
    assert "636688558380765161_2136280442" in prop["examples"]
    assert "da637308392288907382_-880718168" in prop["examples"]


def test_alert_id_pattern_behaves_the_same_in_python_and_in_the_schema() -> None:
    import re

    pattern = load_manifest().action(ACTION).parameters_schema["properties"]["alert_id"]["pattern"]
    for ok in ["1_2", "da637308392288907382_-880718168", "...", ".a"]:
        assert re.search(pattern, ok), ok
    for bad in ["", ".", "..", "a\nb", "a\x7f", "abc\n"]:
        assert not re.search(pattern, bad), bad


def test_table_columns_are_ordered_and_fit_80_columns() -> None:
    columns = load_manifest().action(ACTION).table_columns
    names = [name for _, name in columns]
    assert names == ["SHA-256", "Signer", "Valid cert", "Prevalence", "Determination", "Severity", "Verdict"]
    assert sum(len(n) + 2 for n in names) <= 80
    assert all(p.startswith("action_result.artifacts.*.") for p, _ in columns)


def test_test_connectivity_declares_its_summary() -> None:
    spec = load_manifest().action("test_connectivity")
    assert spec.parameters_schema == {"type": "object", "properties": {}, "additionalProperties": False}
    for key in ("token_acquired", "roles", "missing_permissions", "api_reachable", "api_base_url"):
        assert f"action_result.summary.{key}" in spec.output_paths


# -- configuration, clouds, http --------------------------------------------------------


def test_configuration_schema_declares_the_design_keys_with_descriptions() -> None:
    schema = load_manifest().configuration_schema
    props = schema["properties"]
    assert CONFIG_KEYS <= set(props)
    assert all(p.get("description") for p in props.values())
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["tenant_id", "client_id"]
    for secret in ("client_secret", "certificate_password"):
        assert props[secret]["writeOnly"] is True and props[secret]["x-secret"] is True
    assert props["cloud"]["enum"] == ["commercial", "gcc", "gcc-high", "dod"]
    assert props["cloud"]["default"] == "commercial"
    assert props["region"]["enum"] == ["us", "eu", "uk", "au", "swa", "ina", "aea"]
    defaults = {k: props[k]["default"] for k in props if "default" in props[k]}
    assert defaults == {
        "cloud": "commercial", "timeout_seconds": 30, "max_retries": 4, "retry_budget_seconds": 60,
        "max_retry_after_seconds": 30, "rate_per_minute": 100, "rate_per_hour": 1500, "max_pages": 100,
        "max_response_mb": 200,
        "source": "defender", "enrich_files": False,
    }  # fmt: skip


def test_clouds_table_has_four_clouds_and_seven_commercial_regions() -> None:
    clouds = load_manifest().clouds
    assert set(clouds) == {"commercial", "gcc", "gcc-high", "dod"}
    commercial = clouds["commercial"]
    assert commercial["api_base_url"] == "https://api.security.microsoft.com"
    assert commercial["token_scope"] == "https://api.securitycenter.microsoft.com/.default"
    assert commercial["regions"] == {r: f"https://{r}.api.security.microsoft.com" for r in
                                     ["us", "eu", "uk", "au", "swa", "ina", "aea"]}  # fmt: skip
    assert clouds["gcc"]["api_base_url"] == "https://api-gcc.securitycenter.microsoft.us"
    assert clouds["gcc"]["login_host"] == "https://login.microsoftonline.com"
    for gov in ("gcc-high", "dod"):
        assert clouds[gov]["api_base_url"] == "https://api-gov.securitycenter.microsoft.us"
        assert clouds[gov]["login_host"] == "https://login.microsoftonline.us"
        assert clouds[gov]["token_scope"] == "https://api-gov.securitycenter.microsoft.us/.default"
    assert all("regions" not in clouds[c] for c in ("gcc", "gcc-high", "dod"))


def test_http_behaviour_is_declared() -> None:
    http = load_manifest().http
    assert http["retry"]["statuses"] == [429, 500, 502, 503, 504]
    assert http["retry"]["honour_retry_after"] is True
    assert http["paging"] == {"next_link_field": "@odata.nextLink", "items_field": "value"}
    assert http["rate_limits"] == {"per_minute": 100, "per_hour": 1500}


# -- action lookup, CLI parameters, help ------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["get_alert_related_files", "get-alert-related-files", "Get Alert Related Files", "GET-ALERT-RELATED-FILES"]
)
def test_action_lookup_accepts_display_and_dashed_names(name: str) -> None:
    assert load_manifest().action(name).name == ACTION


def test_unknown_action_lists_the_known_ones() -> None:
    with pytest.raises(InputError) as info:
        load_manifest().action("get_alert_files")
    assert str(info.value) == (
        'Unknown action "get_alert_files"; known actions: test_connectivity, get_alert_related_files.'
    )
    assert info.value.exit_code == 2


@pytest.fixture
def typed_spec() -> ActionSpec:
    return ActionSpec(
        {
            "name": "typed",
            "parameters": {
                "type": "object",
                "properties": {
                    "alert_id": {"type": "string", "description": "d", "examples": ["1_2"]},
                    "limit": {"type": "integer", "description": "d", "default": 100},
                    "ratio": {"type": "number", "description": "d"},
                    "force": {"type": "boolean", "description": "d"},
                    "tags": {"type": "array", "items": {"type": "string"}, "description": "d"},
                    "ids": {"type": "array", "items": {"type": "integer"}, "description": "d"},
                    "extra": {"type": "object", "description": "d"},
                },
                "additionalProperties": False,
            },
            "output": [{"data_path": "action_result.status", "data_type": "string"}],
        }
    )


def test_params_from_cli_converts_by_declared_type(typed_spec: ActionSpec) -> None:
    params = typed_spec.params_from_cli(
        ["alert_id=da6373_-88=x", "limit=25", "ratio=0.5", "force=yes", "tags=a, b,c", "ids=[1,2]", 'extra={"k":1}']
    )
    assert params == {
        "alert_id": "da6373_-88=x",  # split on the first '=' only
        "limit": 25,
        "ratio": 0.5,
        "force": True,
        "tags": ["a", "b", "c"],
        "ids": [1, 2],
        "extra": {"k": 1},
    }
    assert typed_spec.params_from_cli(["force=0", "ids=3,4"]) == {"force": False, "ids": [3, 4]}
    assert typed_spec.validate_params(typed_spec.params_from_cli(["alert_id= 1_2 "])) == {
        "alert_id": "1_2",
        "limit": 100,
    }


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("alert_id", 'Parameter "alert_id" is not a KEY=VALUE pair; write it as --param alert_id=1_2.'),
        ("=5", 'Parameter "=5" is not a KEY=VALUE pair; write it as --param alert_id=1_2.'),
        ("limit=ten", "Parameter 'limit' must be an integer (got \"ten\"); write it as limit=10."),
        ("ratio=fast", "Parameter 'ratio' must be a number (got \"fast\"); write it as ratio=1.5."),
        ("force=maybe", "Parameter 'force' must be true or false (got \"maybe\"); use true/false, yes/no or 1/0."),
        ("extra=[1]", 'Parameter \'extra\' must be a JSON object (got "[1]"); write it as extra={"name":"value"}.'),
    ],
)
def test_params_from_cli_errors_name_the_pair_and_the_fix(typed_spec: ActionSpec, pair: str, expected: str) -> None:
    with pytest.raises(InputError) as info:
        typed_spec.params_from_cli([pair])
    assert str(info.value) == expected


def test_params_from_cli_rejects_a_repeated_key() -> None:
    spec = load_manifest().action(ACTION)
    with pytest.raises(InputError, match="'alert_id' is given twice"):
        spec.params_from_cli(["alert_id=1_2", "alert_id=3_4"])


def test_params_from_cli_passes_unknown_keys_on_for_validation_to_reject() -> None:
    spec = load_manifest().action(ACTION)
    params = spec.params_from_cli(["alert_id=1_2", "limit=5"])
    with pytest.raises(InputError, match="'limit' is not accepted by get_alert_related_files"):
        spec.validate_params(params)


def test_help_text_is_generated_from_the_manifest() -> None:
    text = load_manifest().action(ACTION).help_text()
    assert "alert_id (string; required; contains defender alert id)" in text
    assert "Permissions: File.Read.All" in text
    assert "GET /api/alerts/{alert_id}/files" in text
    assert "636688558380765161_2136280442" in text
    assert "action_result.data.*.sha256 (string) [sha256, hash]" in text
    assert "action_result.summary.total_files (numeric)" in text


def test_validate_manifest_file_rejects_a_parameter_schema_that_is_not_json_schema(tmp_path: Path) -> None:
    data = raw_manifest()
    action_raw(data)["parameters"]["properties"]["alert_id"]["minLength"] = -1
    with pytest.raises(ManifestError) as info:
        validate_manifest_file(write(tmp_path, data))
    assert str(info.value).startswith(
        "manifest.json is invalid at actions[1].parameters.properties.alert_id.minLength: not a valid JSON Schema"
    )
