"""Conventions an analyst brings from gh, az and kubectl (issue 14, items 5-10):
-V, help COMMAND, shell completion, --output json everywhere, "did you mean",
one error prefix, one state-directory rule, config show/check, portal links
as alert ids, and help that fits 80 columns."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connector import __version__
from connector.cli.main import EXTERNAL_COMMANDS, build_parser, main
from connector.errors import EXIT_INVALID, EXIT_OK
from connector.manifest import load_manifest

ALERT = "da638326364464118398_-1217366476"
PORTAL = f"https://security.microsoft.com/alerts/{ALERT}?tid=72f988bf-86f1-41af-91ab-2d7cd011db47"


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command as an analyst runs it, through pipes."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MDE_")}
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=cwd, timeout=120)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mde-connector: ") and "mde-connector: mde-connector" not in lines[0]
    return lines[0]


@pytest.fixture
def no_mde_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("MDE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


# -- 5: version, help, completion, json, did you mean, prefix, --verbose ----------


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags_print_the_version(flag: str) -> None:
    done = cli(flag)
    assert done.returncode == 0
    assert done.stdout.strip() == f"mde-connector {__version__}"


def test_help_command_prints_the_commands_own_help() -> None:
    direct = cli("runs", "list", "--help")
    via_help = cli("help", "runs", "list")
    assert via_help.returncode == 0
    assert via_help.stdout == direct.stdout and "--alert-id" in via_help.stdout


def test_help_without_a_command_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("run", "completion", "config", "help"):
        assert f"    {name}" in out


def test_help_run_action_is_the_actions_manifest_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help", "run", "get_alert_related_files"]) == EXIT_OK
    assert "Example:" in capsys.readouterr().out


def _complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """COMPREPLY of the bash completion for the command line ``words`` (the
    last one being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (f"source '{script}'; COMP_WORDS=({quoted}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); "
               "_mde_connector; printf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=60, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = cli("completion", "bash")
    assert done.returncode == 0, done.stderr
    path = tmp_path_factory.mktemp("completion") / "mde-connector.bash"
    path.write_text(done.stdout, encoding="utf-8")
    return path


def test_bash_completion_offers_commands_subcommands_and_options(bash_script: Path) -> None:
    assert _complete(bash_script, "mde-connector", "ru") == ["run", "runs"]
    assert set(_complete(bash_script, "mde-connector", "runs", "")) == {"list", "show"}
    assert "--alert-id" in _complete(bash_script, "mde-connector", "runs", "list", "--")
    assert _complete(bash_script, "mde-connector", "run", "x", "--output", "") == ["table", "json"]
    assert _complete(bash_script, "mde-connector", "completion", "") == ["bash", "zsh", "fish"]
    # Every top-level command of the parser, none invented.
    parser_commands = {a for a in build_parser()._subparsers._group_actions[0].choices}  # type: ignore[union-attr]
    assert set(_complete(bash_script, "mde-connector", "")) == parser_commands


def test_bash_completion_knows_the_manifests_actions_and_parameters(bash_script: Path) -> None:
    manifest = load_manifest()
    assert set(_complete(bash_script, "mde-connector", "run", "")) == {a.name for a in manifest.actions}
    params = _complete(bash_script, "mde-connector", "run", "get_alert_related_files", "--param", "")
    assert params == [f"{k}=" for k in manifest.action("get_alert_related_files").parameters_schema["properties"]]
    # After the action, option values are skipped when finding it.
    assert _complete(bash_script, "mde-connector", "run", "--output", "json", "g") == ["get_alert_related_files"]


def test_bash_completion_offers_files_only_where_a_file_is_taken(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "mde.json").write_text("{}", encoding="utf-8")
    assert _complete(bash_script, "mde-connector", "run", "x", "--config", "md", cwd=tmp_path) == ["mde.json"]
    assert _complete(bash_script, "mde-connector", "playbook", "validate", "md", cwd=tmp_path) == ["mde.json"]
    assert _complete(bash_script, "mde-connector", "runs", "list", "--alert-id", "md", cwd=tmp_path) == []


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_script_parses(tmp_path: Path) -> None:
    path = tmp_path / "_mde-connector"
    path.write_text(cli("completion", "zsh").stdout, encoding="utf-8")
    done = subprocess.run(["zsh", "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completion_script_parses(tmp_path: Path) -> None:
    path = tmp_path / "mde-connector.fish"
    path.write_text(cli("completion", "fish").stdout, encoding="utf-8")
    done = subprocess.run(["fish", "--no-execute", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_fish_completion_names_every_command_and_action() -> None:
    from connector.cli.completion import script

    text = script("fish", build_parser())
    for name in ("run", "runs", "config", "completion"):
        assert f"-a {name} " in text
    assert "get_alert_related_files" in text and "alert_id=" in text
    # Action names after 'run', not after 'playbook run'.
    actions = next(line for line in text.splitlines() if "get_alert_related_files" in line and "-a" in line)
    assert "not __fish_seen_subcommand_from playbook" in actions


def test_actions_output_json_lists_every_manifest_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "--output", "json"]) == EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    manifest = load_manifest()
    assert [a["name"] for a in listed] == [a.name for a in manifest.actions]
    files = next(a for a in listed if a["name"] == "get_alert_related_files")
    assert "alert_id" in files["parameters"] and files["permissions"]


def test_playbook_validate_output_json_reports_each_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["playbook", "validate", "--output", "json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and all(p["valid"] for p in report["playbooks"])
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert main(["playbook", "validate", "--output", "json", str(bad)]) == EXIT_INVALID
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["valid"] is False and report["playbooks"][0]["problems"]
    one_error_line(err)


def test_playbook_list_and_manifest_validate_output_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "list", "--output", "json"]) == EXIT_OK
    assert {p["name"] for p in json.loads(capsys.readouterr().out)}
    assert main(["manifest", "validate", "--output", "json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_a_misspelt_command_gets_did_you_mean() -> None:
    done = cli("rnu")
    assert done.returncode == EXIT_INVALID
    assert "Did you mean 'run'?" in one_error_line(done.stderr)


def test_a_misspelt_subcommand_gets_did_you_mean() -> None:
    done = cli("runs", "lst")
    assert done.returncode == EXIT_INVALID
    assert "Did you mean 'list'?" in one_error_line(done.stderr)


def test_a_misspelt_action_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "get_alert_relatd_files"]) == EXIT_INVALID
    assert "Did you mean 'get_alert_related_files'?" in one_error_line(capsys.readouterr().err)


def test_a_misspelt_choice_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "--output", "jsno"]) == EXIT_INVALID
    assert "Did you mean 'json'?" in one_error_line(capsys.readouterr().err)
    assert main(["help", "rnu"]) == EXIT_INVALID
    assert "Did you mean 'run'?" in one_error_line(capsys.readouterr().err)


def test_a_misspelt_shipped_playbook_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "run", "triage_new_alrt", "--alert-id", ALERT]) == EXIT_INVALID
    assert "Did you mean 'triage_new_alert'?" in one_error_line(capsys.readouterr().err)


def test_usage_errors_carry_one_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--output", "yaml"]) == EXIT_INVALID
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("mde-connector: runs list: argument --output")
    assert main(["runs"]) == EXIT_INVALID
    assert one_error_line(capsys.readouterr().err).startswith("mde-connector: runs: choose a subcommand.")


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_verbose_is_declared_once_and_no_conflict_is_hidden() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) > 20
    for parser in parsers:
        assert parser.conflict_handler == "error", parser.prog
        verbose = [a for a in parser._actions if "--verbose" in a.option_strings]
        assert len(verbose) == 1, parser.prog
    assert build_parser().parse_args(["runs", "list", "--verbose"]).verbose is True


def test_a_missing_module_is_named_not_unrecognized_arguments(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(EXTERNAL_COMMANDS, "ghost", ("connector_ghost_module_not_installed", "a missing command"))
    assert main(["ghost", "--some-option", "value"]) == EXIT_INVALID
    line = one_error_line(capsys.readouterr().err)
    assert "connector_ghost_module_not_installed" in line and "not installed" in line
    assert "unrecognized" not in line


def test_a_dependency_missing_at_run_time_is_named(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import types

    fake = types.ModuleType("connector_fake_command")

    def run(args: argparse.Namespace) -> int:
        raise ModuleNotFoundError("No module named 'msal'", name="msal")

    fake.add_arguments = lambda parser: None  # type: ignore[attr-defined]
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "connector_fake_command", fake)
    monkeypatch.setitem(EXTERNAL_COMMANDS, "fake", ("connector_fake_command", "a command needing msal"))
    monkeypatch.delenv("MDE_DEBUG", raising=False)
    assert main(["fake"]) == EXIT_INVALID
    line = one_error_line(capsys.readouterr().err)
    assert "'msal'" in line and "not installed" in line and "internal error" not in line


# -- 6: one state-directory rule, no credentials to read the store ---------------


def _store(path: Path) -> Path:
    from connector.runtime.store import Store

    Store.open(path)
    assert (path / "store.sqlite").exists()
    return path


@pytest.mark.parametrize("command", [["runs", "list"], ["containers", "list"], ["artifacts", "list"],
                                     ["quarantine", "list"]])
def test_every_store_reader_finds_mde_state_dir_without_credentials(
        command: list[str], tmp_path: Path, no_mde_env: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MDE_STATE_DIR", str(_store(tmp_path / "env-state")))
    assert main([*command, "--output", "json"]) == EXIT_OK, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize("command", [["runs", "list"], ["containers", "list"], ["quarantine", "list"]])
def test_store_readers_use_the_config_files_state_dir_without_a_secret(
        command: list[str], tmp_path: Path, no_mde_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"state_dir": str(_store(tmp_path / "file-state"))}), encoding="utf-8")
    assert main([*command, "--config", str(config), "--output", "json"]) == EXIT_OK, capsys.readouterr().err
    # --state-dir and --config together: accepted by every command, --state-dir wins.
    assert main([*command, "--config", str(config), "--state-dir", str(tmp_path / "nowhere")]) == EXIT_INVALID
    assert str(tmp_path / "nowhere") in one_error_line(capsys.readouterr().err)


def test_the_console_shows_the_store_without_any_configuration(tmp_path: Path) -> None:
    """No --config, no credentials: the console starts on MDE_STATE_DIR's
    store, read-only for actions, like every other store reader."""
    state = _store(tmp_path / "state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDE_")}
    proc = subprocess.Popen([sys.executable, "-m", "connector", "console"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**env, "MDE_STATE_DIR": str(state)})
    try:
        assert proc.stdout is not None
        lines = []
        for _ in range(20):
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("Open ") or not line:
                break
        text = "".join(lines)
        assert f"store:     {state / 'store.sqlite'}" in text
        assert "actions are disabled" in " ".join(text.split())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_state_dir_option_applies_to_commands_that_call_the_api(tmp_path: Path, no_mde_env: None, simulator: Any,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = simulator.write_config(tmp_path / "sim.json", state_dir=str(tmp_path / "from-file"))
    assert main(["test-connectivity", "--config", str(config), "--state-dir", str(tmp_path / "opt")]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "opt" / "store.sqlite").exists() and not (tmp_path / "from-file").exists()


def test_state_dir_precedence_is_option_env_file_default(tmp_path: Path, no_mde_env: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.config import default_state_dir, state_dir_setting

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"state_dir": str(tmp_path / "file")}), encoding="utf-8")
    assert state_dir_setting(None) == default_state_dir()
    assert state_dir_setting(config) == tmp_path / "file"
    monkeypatch.setenv("MDE_STATE_DIR", str(tmp_path / "env"))
    assert state_dir_setting(config) == tmp_path / "env"
    assert state_dir_setting(config, override=str(tmp_path / "opt")) == tmp_path / "opt"


def test_demo_ignores_the_users_environment_and_removes_its_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    from connector.cli import demo

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # Settings that would break the demo if it read them.
    monkeypatch.setenv("MDE_API_BASE_URL", "https://api.nowhere.invalid")
    monkeypatch.setenv("MDE_CLIENT_SECRET", "not-the-simulators-secret")
    monkeypatch.setenv("MDE_STATE_DIR", str(tmp_path / "users-state"))
    assert demo.run(argparse.Namespace(state_dir=None, keep=False, keep_running=False, port=0)) == EXIT_OK
    out = capsys.readouterr().out
    assert "Removed" in out and "client secret" in out
    assert not list(tmp_path.glob("mde-connector-demo-*"))
    assert not (tmp_path / "users-state").exists()


def test_the_simulators_default_directory_is_a_state_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mde_simulator.cli import add_arguments, default_state_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "mde-simulator"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).state_dir is None  # resolved at start, never ./mde-simulator


# -- 7: config show / check ---------------------------------------------------------

SECRET = "s3cr3t-value-never-shown"


def _config_file(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "config.json"
    values = {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "client_id": "11111111-2222-3333-4444-555555555555",
              "client_secret": SECRET, "state_dir": str(tmp_path / "state"), **extra}
    path.write_text(json.dumps(values), encoding="utf-8")
    path.chmod(0o600)
    return path


def test_config_show_names_each_values_source_and_masks_secrets(
        tmp_path: Path, no_mde_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config_file(tmp_path)
    monkeypatch.setenv("MDE_CLOUD", "gcc")
    assert main(["config", "show", "--config", str(config), "--output", "json"]) == EXIT_OK
    out = capsys.readouterr().out
    assert SECRET not in out
    values = json.loads(out)["values"]
    assert values["tenant_id"]["source"] == "file"
    assert values["cloud"] == {"value": "gcc", "source": "environment", "secret": False, "variable": "MDE_CLOUD"}
    assert values["client_secret"]["value"] == "********" and values["client_secret"]["secret"] is True
    assert values["timeout_seconds"]["source"] == "default"
    assert values["api_base_url"]["source"] == "default" and values["api_base_url"]["value"].startswith("https://")
    assert main(["config", "show", "--config", str(config)]) == EXIT_OK
    table = capsys.readouterr().out
    assert SECRET not in table and "(environment MDE_CLOUD)" in table and "(file)" in table


def test_config_show_works_with_an_incomplete_configuration(tmp_path: Path, no_mde_env: None,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "partial.json"
    config.write_text(json.dumps({"tenant_id": "contoso.onmicrosoft.com"}), encoding="utf-8")
    assert main(["config", "show", "--config", str(config), "--output", "json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and "client_id" in report["problem"]
    assert report["values"]["client_id"]["source"] == "unset"


def test_config_check_validates_without_the_network(tmp_path: Path, no_mde_env: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # An unresolvable API host: a network call would fail, the check does not make one.
    config = _config_file(tmp_path, api_base_url="https://api.nowhere.invalid")
    assert main(["config", "check", "--config", str(config)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("OK:") and SECRET not in out
    assert main(["config", "check", "--config", str(config), "--output", "json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["valid"] is True
    broken = _config_file(tmp_path, cloud="moon")
    assert main(["config", "check", "--config", str(broken), "--output", "json"]) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert json.loads(out)["valid"] is False
    assert "'cloud'" in one_error_line(err)


def test_config_check_opens_a_certificate_credential_offline(tmp_path: Path, no_mde_env: None, simulator: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    pfx = str(simulator.client_cert_pfx)
    good = _config_file(tmp_path, client_secret=None, certificate_path=pfx,
                        certificate_password=simulator.client_cert_pfx_password)
    values = json.loads(good.read_text(encoding="utf-8"))
    del values["client_secret"]
    good.write_text(json.dumps(values), encoding="utf-8")
    assert main(["config", "check", "--config", str(good)]) == EXIT_OK, capsys.readouterr().err
    assert "credential  certificate" in capsys.readouterr().out
    values["certificate_password"] = "wrong-password"
    good.write_text(json.dumps(values), encoding="utf-8")
    assert main(["config", "check", "--config", str(good)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "certificate_password" in one_error_line(err) and "wrong-password" not in err


# -- 9: portal links and bare KEY=VALUE ------------------------------------------------


@pytest.mark.parametrize("value,expected", [
    (PORTAL, ALERT),
    (f"https://security.microsoft.com/alerts/{ALERT}", ALERT),
    (f"https://security.microsoft.com/alerts/{ALERT}/details?tid=x", ALERT),
    (f"https://security.microsoft.us/alerts/{ALERT}", ALERT),
    (ALERT, None),
    (f"https://evil.example/alerts/{ALERT}", None),
    ("https://security.microsoft.com/incidents/42", None),
])
def test_alert_id_from_a_portal_link(value: str, expected: str | None) -> None:
    from connector.cli.hints import alert_id_from_portal_url

    assert alert_id_from_portal_url(value) == expected


def test_a_pasted_portal_link_is_taken_as_its_alert_id_and_said_so(
        no_mde_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    # No configuration: the run stops there, after the parameter was read.
    assert main(["run", "get_alert_related_files", "--param", f"alert_id={PORTAL}", "--output", "json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["parameter"]["alert_id"] == ALERT
    assert f"took alert id {ALERT} from the Defender portal link" in err


def test_a_portal_link_works_as_alert_id_option(tmp_path: Path, no_mde_env: None,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from connector.runtime.store import Store

    Store.open(tmp_path)
    assert main(["runs", "list", "--alert-id", PORTAL, "--state-dir", str(tmp_path), "--output", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and f"took alert id {ALERT}" in err


def test_a_bare_key_value_gets_the_param_hint() -> None:
    done = cli("run", "get_alert_related_files", f"alert_id={ALERT}")
    assert done.returncode == EXIT_INVALID
    assert f"--param alert_id={ALERT}" in one_error_line(done.stderr)


# -- 10: help that describes itself and fits 80 columns ---------------------------------


def test_run_action_help_fits_80_columns_and_ends_with_a_manifest_example() -> None:
    spec = load_manifest().action("get_alert_related_files")
    example = spec.parameters_schema["properties"]["alert_id"]["examples"][0]
    done = cli("run", "get_alert_related_files", "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0
    lines = done.stdout.rstrip("\n").split("\n")
    assert max(len(line) for line in lines) <= 80
    tail = "\n".join(lines[-3:])
    assert "Example:" in tail and f"--param alert_id={example}" in tail and "mde-connector run" in tail


@pytest.mark.parametrize("command,words", [("simulator", "simulator on loopback"), ("demo", "offline")])
def test_simulator_and_demo_help_describe_themselves(command: str, words: str) -> None:
    done = cli(command, "--help")
    assert done.returncode == 0
    description = done.stdout.split("\n\n")[1]
    assert words in " ".join(description.split())
    assert "Example:" in done.stdout


def test_simulator_output_json_prints_its_settings_on_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDE_")}
    proc = subprocess.Popen([sys.executable, "-m", "connector", "simulator", "--output", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, "XDG_STATE_HOME": str(tmp_path)}, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        settings = json.loads(proc.stdout.readline())
        assert settings["api_base_url"].startswith("https://127.0.0.1:")
        assert settings["config_file"] == str(tmp_path / "mde-simulator" / "connector-config.json")
        assert "client_secret" not in settings
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not list(tmp_path.glob("*.json"))  # nothing written to the current directory
