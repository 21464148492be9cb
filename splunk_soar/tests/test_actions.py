"""Each action through the SDK's local runner against the simulator over TLS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from connector.actions import ActionContext, run_action
from connector.config import resolve
from mde_simulator import EXAMPLE_ALERT_ID

APP_DIR = Path(__file__).resolve().parent.parent
FILES = "get_alert_related_files"


def core_result(sim: Any, tmp_path: Path, alert_id: str) -> Any:
    """What the connector itself (CLI/playbooks) returns for the same alert."""
    config = resolve(sim.connector_config(state_dir=str(tmp_path / "core-state")))
    return run_action(FILES, {"alert_id": alert_id}, ActionContext(config=config))


def test_connectivity_succeeds_over_tls_with_the_simulator(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    result = soar.run("test_connectivity", asset)
    assert result.get_status() is True, result.get_message()
    assert any(r.path.startswith("/api/alerts") for r in sim.requests)


def test_without_state_dir_the_token_cache_lives_in_the_apps_state_directory(
        soar: Any, asset: dict[str, Any], tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PHANTOM_HOME", str(tmp_path / "phantom"))
    app_state = Path(soar.app.actions_manager.get_state_dir())
    app_state.mkdir(parents=True)
    without = {k: v for k, v in asset.items() if k != "state_dir"}
    result = soar.run("test_connectivity", without)
    assert result.get_status() is True, result.get_message()
    assert app_state.resolve().is_relative_to(tmp_path.resolve())
    assert (app_state / "mde-connector").is_dir()
    assert any((app_state / "mde-connector").iterdir())


def test_connectivity_fails_with_the_connector_sentence_on_a_wrong_secret(soar: Any, asset: dict[str, Any]) -> None:
    result = soar.run("test_connectivity", {**asset, "client_secret": "not-the-secret"})
    assert result.get_status() is False
    message = result.get_message()
    assert "Traceback" not in message
    assert "not-the-secret" not in message
    assert "secret" in message.lower() or "credential" in message.lower()


def test_files_action_returns_the_connector_result_and_saves_its_artifacts(
        soar: Any, asset: dict[str, Any], sim: Any, tmp_path: Path) -> None:
    result = soar.run(FILES, asset, {"alert_id": EXAMPLE_ALERT_ID})
    assert result.get_status() is True, result.get_message()
    expected = core_result(sim, tmp_path, EXAMPLE_ALERT_ID)
    assert result.get_message() == expected.message
    assert [d.get("sha256") for d in result.get_data()] == [f.get("sha256") for f in expected.data]
    summary = result.get_summary()
    for key, value in expected.summary.items():
        assert summary[key] == value, key
    saved = list(soar.platform.artifacts.values())
    assert sorted(a["source_data_identifier"] for a in saved) == sorted(
        a["source_data_identifier"] for a in expected.artifacts)
    by_sdi = {a["source_data_identifier"]: a for a in saved}
    for artifact in expected.artifacts:
        got = by_sdi[artifact["source_data_identifier"]]
        assert got["cef"] == artifact["cef"]
        assert got["cef_types"] == artifact["cef_types"]
        assert got["severity"] == {"informational": "low"}.get(artifact["severity"], artifact["severity"])
        assert got["label"] == "file"
        assert got["container_id"] == soar.CONTAINER_ID
        assert got["run_automation"] is False  # the playbook that ran the action is not re-triggered


def test_files_action_run_twice_adds_no_artifact_twice(soar: Any, asset: dict[str, Any]) -> None:
    soar.run(FILES, asset, {"alert_id": EXAMPLE_ALERT_ID})
    first = len(soar.platform.artifacts)
    soar.run(FILES, asset, {"alert_id": EXAMPLE_ALERT_ID})
    assert first > 0
    assert len(soar.platform.artifacts) == first


def test_files_action_fails_in_one_sentence_when_soar_refuses_an_artifact(
        soar: Any, asset: dict[str, Any], monkeypatch: Any) -> None:
    from soar_sdk.exceptions import SoarAPIError

    def refuse(artifact: dict[str, Any]) -> int:
        raise SoarAPIError("Artifact addition failed, reason from server: \x1b[2Jdisk full")

    monkeypatch.setattr(soar.platform, "add_artifact", refuse)
    result = soar.run(FILES, asset, {"alert_id": EXAMPLE_ALERT_ID})
    assert result.get_status() is False
    message = result.get_message()
    assert "could not be saved" in message and "disk full" in message
    assert "\x1b" not in message and "Traceback" not in message


def test_files_action_on_an_unknown_alert_fails_with_kind_not_found(soar: Any, asset: dict[str, Any]) -> None:
    result = soar.run(FILES, asset, {"alert_id": "da000000000000000000_404"})
    assert result.get_status() is False
    assert result.get_summary().get("error_kind") == "not_found"
    assert "da000000000000000000_404" in result.get_message()
    assert soar.platform.artifacts == {}


def test_files_action_forbidden_carries_kind_and_microsofts_correlation_id(
        soar: Any, asset: dict[str, Any], sim: Any) -> None:
    from mde_simulator import ScriptedResponse

    target = "5b0d8f7e-6a1f-4d55-9f0e-1c2b3a4d5e6f"
    sim.script(ScriptedResponse(403, path_contains="/files", body={"error": {
        "code": "Forbidden", "message": "Missing application roles: File.Read.All", "target": target}}))
    result = soar.run(FILES, asset, {"alert_id": EXAMPLE_ALERT_ID})
    assert result.get_status() is False
    summary = result.get_summary()
    assert summary["error_kind"] == "forbidden"
    assert summary["correlation_id"] == target
    assert summary["error_http_status"] == 403
    assert target in result.get_message()
    assert soar.platform.artifacts == {}


def test_files_action_refuses_hostile_input_before_any_request(soar: Any, asset: dict[str, Any], sim: Any) -> None:
    result = soar.run(FILES, asset, {"alert_id": "abc\x1b[2J\u202e"})
    assert result.get_status() is False
    assert result.get_summary().get("error_kind") == "invalid_input"
    assert "alert_id" in result.get_message()
    assert "\x1b" not in result.get_message()
    assert not [r for r in sim.requests if "/files" in r.path]


def test_files_action_with_a_broken_asset_names_the_key(soar: Any, asset: dict[str, Any]) -> None:
    result = soar.run(FILES, {**asset, "api_base_url": "http://plain.example"}, {"alert_id": EXAMPLE_ALERT_ID})
    assert result.get_status() is False
    assert result.get_summary().get("error_kind") == "invalid_config"
    assert "api_base_url" in result.get_message()


def test_the_readme_command_runs_the_action_in_the_sdk_runner(asset: dict[str, Any], tmp_path: Path) -> None:
    import json

    (tmp_path / "asset.json").write_text(json.dumps(asset))
    (tmp_path / "params.json").write_text(json.dumps({"alert_id": EXAMPLE_ALERT_ID}))
    proc = subprocess.run(
        [sys.executable, "-m", "src.app", "action", FILES, "-p", str(tmp_path / "params.json"),
         "-a", str(tmp_path / "asset.json")],
        cwd=APP_DIR, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(APP_DIR)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert "Action success: True" in output
    assert "distinct_files" in output
    assert asset["client_secret"] not in output


def test_files_with_wrong_types_and_hostile_text_keep_the_api_data_and_clean_artifacts(
        soar: Any, asset: dict[str, Any], sim: Any) -> None:
    import json

    fixtures = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
    files = json.loads((fixtures / "wrong_types.json").read_text())["value"]
    files += json.loads((fixtures / "non_ascii.json").read_text())["value"]
    files.append({"sha256": "b" * 64, "signer": "Evil\x1b]0;pwn\x07 \u202eexe.txt {{7*7}} <img src=x>",
                  "fileProductName": "nul\x00inside", "globalPrevalence": 3})
    alert = sim.add_alert(title="hostile files", files=files)
    result = soar.run(FILES, asset, {"alert_id": alert["id"]})
    assert result.get_status() is True, result.get_message()
    data = result.get_data()
    assert data[:-1] == files[:-1]  # as the API sent them
    assert data[-1]["fileProductName"] == "nul\ufffdinside"  # SOAR's database refuses NUL
    assert data[-1]["signer"] == files[-1]["signer"]
    evil = next(a for a in soar.platform.artifacts.values() if a["cef"].get("fileHashSha256") == "b" * 64)
    assert "\x00" not in json.dumps(evil, ensure_ascii=False)
    assert result.get_summary()["dropped_values"] >= 9
