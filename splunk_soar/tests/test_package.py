"""The built package: its app JSON equals manifest.json where both speak, the
SDK's own validation accepts it, and it carries the core as pip builds it."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from connector.manifest import load_manifest

REPO = Path(__file__).resolve().parents[2]
SCHEMA_TO_SOAR = {"string": "string", "integer": "numeric", "number": "numeric", "boolean": "boolean"}
# Counters every SOAR action declares; not data of ours.
SDK_PATHS = {"summary.total_objects", "summary.total_objects_successful"}


@pytest.fixture(scope="module")
def package(package_path: Path) -> dict[str, Any]:
    with tarfile.open(package_path) as tar:
        names = tar.getnames()
        manifest_name = next(n for n in names if n.endswith("/manifest.json") and n.count("/") == 1)
        member = tar.extractfile(manifest_name)
        assert member is not None
        app_json = json.loads(member.read())
        wheels = {Path(n).name: n for n in names if n.endswith(".whl")}
        core = tar.extractfile(wheels[next(w for w in wheels if w.startswith("mde_connector-"))])
        assert core is not None
        core_wheel = core.read()
    return {"json": app_json, "names": names, "wheels": wheels, "core_wheel": core_wheel, "root": manifest_name}


def soar_action(app_json: dict[str, Any], identifier: str) -> dict[str, Any]:
    return next(a for a in app_json["actions"] if a["identifier"] == identifier)


def test_the_package_declares_our_actions_and_on_poll(package: dict[str, Any]) -> None:
    ours = load_manifest()
    declared = {a["identifier"] for a in package["json"]["actions"]}
    assert declared == {a.name for a in ours.actions} | {"on_poll"}
    for spec in ours.actions:
        action = soar_action(package["json"], spec.name)
        assert action["action"] == spec.display_name.lower()
        assert action["type"] == spec.type
        assert action["read_only"] == spec.read_only
        assert action["description"] == spec.description


def test_the_app_identity_comes_from_the_manifest(package: dict[str, Any]) -> None:
    ours = load_manifest()
    app_json = package["json"]
    assert (app_json["name"], app_json["app_version"], app_json["description"]) == (
        ours.name, ours.version, ours.description)
    assert (app_json["product_vendor"], app_json["product_name"], app_json["publisher"]) == (
        ours.raw["vendor"], ours.raw["product"], ours.raw["publisher"])
    assert app_json["python_version"] == "3.13"
    assert app_json["min_phantom_version"] == "7.0.0"
    assert app_json["packaged_by"] == "splunk-soar-sdk 7.0.3"


def test_parameters_equal_the_manifest_in_names_types_contains_and_primary(package: dict[str, Any]) -> None:
    for spec in load_manifest().actions:
        schema = spec.parameters_schema
        soar_params = soar_action(package["json"], spec.name)["parameters"]
        assert set(soar_params) == set(schema.get("properties", {}))
        for name, prop in schema.get("properties", {}).items():
            got = soar_params[name]
            assert got["data_type"] == SCHEMA_TO_SOAR[prop["type"]], name
            assert got.get("contains", []) == prop.get("contains", []), name
            assert got["primary"] == bool(prop.get("primary", False)), name
            assert got["required"] == (name in schema.get("required", [])), name


def test_data_paths_equal_the_manifest_with_their_types_and_contains(package: dict[str, Any]) -> None:
    spec = load_manifest().action("get_alert_related_files")
    # action_result.artifacts.* become real SOAR artifacts (cef, cef_types), not action data.
    ours = {o["data_path"]: o for o in spec.outputs if not o["data_path"].startswith("action_result.artifacts.")}
    soar = {o["data_path"]: o for o in soar_action(package["json"], spec.name)["output"]
            if o["data_path"] not in SDK_PATHS}
    assert set(soar) == set(ours)
    for path, out in ours.items():
        assert soar[path]["data_type"] == out["data_type"], path
        assert soar[path].get("contains", []) == out.get("contains", []), path
    assert soar["action_result.data.*.sha256"]["contains"] == ["sha256", "hash"]


def test_the_asset_is_the_configuration_schema_with_secrets_as_passwords(package: dict[str, Any]) -> None:
    from src.models import INGEST_SETTINGS

    ours = load_manifest()
    schema = ours.configuration_schema
    config = package["json"]["configuration"]
    assert set(config) == set(schema["properties"]) | set(INGEST_SETTINGS)
    for key, prop in schema["properties"].items():
        expected = "password" if key in ours.secret_keys else SCHEMA_TO_SOAR[prop["type"]]
        assert config[key]["data_type"] == expected, key
        assert config[key]["required"] == (key in schema["required"]), key
        assert config[key].get("value_list") == prop.get("enum"), key
    assert config["client_secret"]["data_type"] == "password"
    assert config["cloud"]["value_list"] == ["commercial", "gcc", "gcc-high", "dod"]


def test_the_sdk_accepts_the_packaged_app_json(package: dict[str, Any], tmp_path: Path) -> None:
    from soar_sdk.cli.manifests.deserializers import AppMetaDeserializer

    app_dir = tmp_path / "mde_connector_soar"
    app_dir.mkdir()
    (app_dir / "manifest.json").write_text(json.dumps(package["json"]))
    meta = AppMetaDeserializer.from_app_json(app_dir / "manifest.json").app_meta
    ours = load_manifest()
    assert meta.app_version == ours.version
    assert meta.python_version == "3.13"
    assert meta.min_phantom_version == package["json"]["min_phantom_version"]
    assert {a.identifier for a in meta.actions} == {a.name for a in ours.actions} | {"on_poll"}


def test_every_declared_wheel_is_in_the_package(package: dict[str, Any]) -> None:
    root = package["root"].split("/")[0]
    declared = {w["input_file"] for w in package["json"]["pip313_dependencies"]["wheel"]}
    assert any(Path(w).name.startswith("mde_connector-") for w in declared)
    for wheel in declared:
        assert f"{root}/{wheel}" in package["names"], wheel


def _record(wheel: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        return {name: base64.urlsafe_b64encode(hashlib.sha256(z.read(name)).digest()).decode()
                for name in z.namelist() if not name.endswith("RECORD") and ".dist-info/" not in name}


def test_the_core_in_the_package_is_the_wheel_pip_builds(package: dict[str, Any], tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, timeout=600)
    built = next(tmp_path.glob("mde_connector-*.whl")).read_bytes()
    packaged = _record(package["core_wheel"])
    assert "connector/manifest.json" in packaged
    assert "connector/actions/get_alert_related_files.py" in packaged
    assert packaged == _record(built)


def test_soarapps_manifests_create_emits_the_packaged_actions_and_asset(
        package: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "app.json"
    subprocess.run([sys.executable, "soarapps.py", "manifests", "create", str(out), "."],
                   cwd=Path(__file__).resolve().parents[1], check=True, capture_output=True, timeout=600)
    created = json.loads(out.read_text())
    assert created["actions"] == package["json"]["actions"]
    assert created["configuration"] == package["json"]["configuration"]
