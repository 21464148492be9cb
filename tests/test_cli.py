"""The CLI contract: exit codes, one-sentence errors, JSON result, help from the manifest.

Most tests call ``connector.cli.main`` in-process against the live simulator
(real msal, TLS and sockets); a few run ``python -m connector`` as a
subprocess to prove the installed entry point behaves the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connector.cli.main import main
from connector.cli.render import render_rows, render_table
from connector.http import auth

EXAMPLE = "636688558380765161_2136280442"


@pytest.fixture
def config_file(simulator, tmp_path: Path) -> Path:
    auth._apps.clear()
    return simulator.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"))


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_result_has_the_fixed_shape(capsys, config_file) -> None:
    code, out, err = run_cli(capsys, "run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}",
                             "--config", str(config_file), "--output", "json")
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == ["action", "status", "message", "parameter", "data", "summary", "artifacts"]
    assert result["action"] == "get_alert_related_files" and result["status"] == "success"
    assert result["parameter"] == {"alert_id": EXAMPLE}
    assert result["summary"]["total_files"] == len(result["data"]) > 0
    for art in result["artifacts"]:
        assert {"name", "label", "type", "severity", "source_data_identifier", "container", "cef",
                "cef_types"} <= set(art)
        assert art["label"] == "file" and art["container"] == EXAMPLE
    assert err == ""


def test_every_declared_output_path_appears_in_a_real_result(capsys, config_file) -> None:
    from connector.manifest import load_manifest

    code, out, _ = run_cli(capsys, "run", "get_alert_related_files", "-p", f"alert_id={EXAMPLE}",
                           "--config", str(config_file), "--output", "json")
    assert code == 0
    result = json.loads(out)

    def values(node, parts):
        if not parts:
            yield node
            return
        head, rest = parts[0], parts[1:]
        if head == "*":
            for item in node if isinstance(node, list) else []:
                yield from values(item, rest)
        elif isinstance(node, dict) and head in node:
            yield from values(node[head], rest)

    spec = load_manifest().action("get_alert_related_files")
    missing = [p for p in spec.output_paths_for("defender")
               if not list(values({"action_result": result}, p.split(".")))]
    assert missing == []


@pytest.mark.parametrize(
    ("param", "needle"),
    [
        ("alert_id=", "'alert_id' must not be empty"),
        ("alert_id=   ", "'alert_id'"),
        ("alert_id=..", "'alert_id'"),
        ("alert_id=" + "7" * 300, "'alert_id'"),
        ("alertid=" + EXAMPLE, "alertid"),
        ("alert_id", "KEY=VALUE"),
    ],
)
def test_invalid_input_exits_2_before_any_request(capsys, config_file, simulator, param, needle) -> None:
    simulator.reset_log()
    code, out, err = run_cli(capsys, "run", "get_alert_related_files", "--param", param,
                             "--config", str(config_file))
    assert code == 2
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert simulator.requests == []


def test_invalid_input_in_json_mode_still_prints_the_result(capsys, config_file) -> None:
    code, out, err = run_cli(capsys, "run", "get_alert_related_files", "--param", "alert_id=",
                             "--config", str(config_file), "--output", "json")
    assert code == 2
    result = json.loads(out)
    assert result["status"] == "failed" and result["error"]["kind"] == "invalid_input"
    assert result["message"] in err


def test_not_found_exits_1_with_correlation_id(capsys, config_file) -> None:
    code, _, err = run_cli(capsys, "run", "get_alert_related_files", "--param", "alert_id=da0_1",
                           "--config", str(config_file))
    assert code == 1
    assert "Alert da0_1 was not found" in err and "correlation id" in err


def test_missing_configuration_exits_2_naming_the_fix(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("MDE_CONFIG", raising=False)
    code, _, err = run_cli(capsys, "run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}",
                           "--config", str(tmp_path / "nope.json"))
    assert code == 2 and "nope.json does not exist" in err


def test_unknown_action_and_bad_usage_exit_2(capsys) -> None:
    code, _, err = run_cli(capsys, "run", "get_alert_files")
    assert code == 2 and "get_alert_related_files" in err
    code, _, err = run_cli(capsys, "run", "get_alert_related_files", "--output", "xml")
    assert code == 2 and "invalid choice" in err and "Traceback" not in err


def test_action_help_is_generated_from_the_manifest(capsys) -> None:
    code, out, _ = run_cli(capsys, "run", "get_alert_related_files", "--help")
    assert code == 0
    assert "alert_id" in out and "File.Read.All" in out and "defender alert id" in out


def test_test_connectivity_reports_roles(capsys, config_file) -> None:
    code, out, err = run_cli(capsys, "test-connectivity", "--config", str(config_file), "--output", "json")
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["token_acquired"] is True and summary["api_reachable"] is True
    assert set(summary["roles"]) == {"File.Read.All", "Alert.Read.All"}
    assert summary["missing_permissions"] == []


def test_test_connectivity_names_a_missing_permission(capsys, simulator, tmp_path) -> None:
    simulator.add_app("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", secret="Alerts~only-app-secret-1",
                      roles=["Alert.Read.All"])
    cfg = simulator.write_config(tmp_path / "c.json", state_dir=str(tmp_path / "s"),
                                 client_id="0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
                                 client_secret="Alerts~only-app-secret-1")
    code, _, err = run_cli(capsys, "test-connectivity", "--config", str(cfg))
    assert code == 1 and "File.Read.All" in err


def test_artifacts_and_containers_list_show_the_stored_result(capsys, config_file) -> None:
    assert run_cli(capsys, "run", "get_alert_related_files", "-p", f"alert_id={EXAMPLE}",
                   "--config", str(config_file))[0] == 0
    code, out, _ = run_cli(capsys, "artifacts", "list", "--alert-id", EXAMPLE, "--config", str(config_file),
                           "--output", "json")
    assert code == 0
    stored = json.loads(out)
    assert "dcd71ef5fff4362a9f64cf3f96f14f2b11d6f428f3badbedcb9ff3361e7079aa" in {
        a["cef"].get("fileHashSha256") for a in stored}
    code, out, _ = run_cli(capsys, "containers", "list", "--config", str(config_file))
    assert code == 0 and EXAMPLE in out


def test_verbose_logs_requests_without_secrets(capsys, config_file, simulator) -> None:
    code, _, err = run_cli(capsys, "run", "get_alert_related_files", "-p", f"alert_id={EXAMPLE}",
                           "--config", str(config_file), "--verbose")
    assert code == 0
    assert f"GET {simulator.base_url}/api/alerts/{EXAMPLE}/files -> 200" in err
    assert "/oauth2/v2.0/token -> 200" in err
    assert simulator.client_secret not in err
    assert "eyJ" not in err and "Bearer" not in err


def test_table_output_fits_80_columns(capsys, config_file, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(capsys, "run", "get_alert_related_files", "-p", f"alert_id={EXAMPLE}",
                           "--config", str(config_file))
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    # The full SHA-256 stays whole so an analyst can copy it.
    assert "dcd71ef5fff4362a9f64cf3f96f14f2b11d6f428f3badbedcb9ff3361e7079aa" in out


def test_render_table_shrinks_all_but_fixed_columns() -> None:
    rows = [("da637308392288907382_-880718168", "A very long alert title that cannot fit" * 3)]
    text = render_table(["ALERT", "TITLE"], rows, width=60, fixed=(0,))
    assert "da637308392288907382_-880718168" in text
    assert max(len(line) for line in text.splitlines()) <= 60 and "…" in text
    cards = render_rows(["SHA-256", "Signer"], [("a" * 64, "Microsoft Corporation")], width=40)
    assert cards.splitlines()[0] == "a" * 64


def test_python_dash_m_connector_runs_the_same_cli(config_file) -> None:
    proc = subprocess.run([sys.executable, "-m", "connector", "run", "get_alert_related_files",
                           "--param", "alert_id=", "--config", str(config_file)],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 2
    assert proc.stderr.startswith("mde-connector: Parameter 'alert_id'")
    assert "Traceback" not in proc.stderr


def test_manifest_validate_command(capsys) -> None:
    code, out, _ = run_cli(capsys, "manifest", "validate")
    assert code == 0 and "valid" in out.lower()


# -- bounded CLI input ---------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["0.5", "0", "-1", "nan", "inf", "-inf", "1e999", "ten", ""])
def test_watch_interval_below_one_second_or_not_finite_exits_2(capsys, interval: str) -> None:
    # Checked before the configuration is read (that file does not exist).
    code, out, err = run_cli(capsys, "watch", f"--interval={interval}", "--config", "/nonexistent/mde.json")
    assert code == 2
    assert err.startswith("mde-connector") and err.count("\n") == 1, err
    assert "--interval" in err and "at least 1" in err, err
    assert "Traceback" not in err


def test_watch_interval_of_one_second_is_accepted(capsys) -> None:
    # Accepted: the run gets as far as reading the configuration.
    code, _, err = run_cli(capsys, "watch", "--interval", "1", "--config", "/nonexistent/mde.json")
    assert code == 2 and "/nonexistent/mde.json" in err and "--interval" not in err


def test_watch_once_with_interval_is_refused_in_one_sentence(capsys) -> None:
    code, out, err = run_cli(capsys, "watch", "--once", "--interval", "60", "--config", "/nonexistent/mde.json")
    assert code == 2
    assert out == "" and err.count("\n") == 1, err
    assert "--once" in err and "--interval" in err, err


def test_watch_help_documents_the_interval_minimum(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["watch", "--help"])
    assert "at least 1" in " ".join(capsys.readouterr().out.split())


def _bytes_cli(*args: bytes | str, cwd: str = "/") -> subprocess.CompletedProcess[bytes]:
    # Linux hands argv bytes that are not UTF-8 to Python as lone surrogates
    # (surrogateescape): a subprocess is the only honest way to test that.
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize("output", ["table", "json"])
def test_non_utf8_alert_id_parameter_exits_2_before_any_request(config_file, simulator, output: str) -> None:
    simulator.reset_log()
    proc = _bytes_cli("run", "get_alert_related_files", "--param", b"alert_id=da\xff637_1", "--config",
                      str(config_file), "--output", output)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode("utf-8")  # what the CLI prints is UTF-8
    assert err.startswith("mde-connector: Parameter 'alert_id'") and "UTF-8" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert simulator.requests == [] and simulator.token_requests == 0
    if output == "json":
        result = json.loads(proc.stdout.decode("utf-8"))
        assert result["status"] == "failed" and result["error"]["kind"] == "invalid_input"


@pytest.mark.parametrize("command", [("playbook", "run", "triage_new_alert"), ("runs", "list"),
                                     ("artifacts", "list")])
def test_non_utf8_alert_id_option_exits_2(config_file, simulator, command: tuple[str, ...]) -> None:
    simulator.reset_log()
    proc = _bytes_cli(*command, "--alert-id", b"da\xfe_1", "--config", str(config_file))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode("utf-8")
    assert "--alert-id" in err and "UTF-8" in err and err.count("\n") == 1, err
    assert simulator.requests == []
