"""What a CLI run imports: the modules of other commands stay unimported.

Not a timing test: it checks which modules are loaded, which is what start-up
time depends on (see bench/NOTES.md for the measured effect).
"""

from __future__ import annotations

import subprocess
import sys


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from connector.cli.main import main\n"
        f"code = main({argv!r})\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    return set(proc.stdout.split())


def test_actions_command_does_not_import_the_simulator() -> None:
    loaded = _modules_after(["actions"])
    assert "connector.cli.main" in loaded
    assert not {m for m in loaded if m.startswith("mde_simulator")}
    assert "connector.cli.demo" not in loaded


def test_a_run_with_invalid_input_imports_no_other_command() -> None:
    loaded = _modules_after(["run", "get_alert_related_files", "--param", "alert_id="])
    assert "connector.manifest" in loaded
    assert not {m for m in loaded if m.startswith(("mde_simulator", "connector.cli.watch",
                                                    "connector.cli.playbook", "connector.cli.demo"))}


def test_an_external_command_still_gets_its_options() -> None:
    from connector.cli.main import build_parser

    args = build_parser("simulator").parse_args(["simulator", "--port", "0"])
    assert args.command == "simulator" and args.port == 0
    every = build_parser()
    assert every.parse_args(["watch", "--once"]).once is True


def test_valid_input_is_validated_without_jsonschema(tmp_path) -> None:
    """The manifest (validated before, by digest), the configuration and the
    parameters of a valid run: jsonschema is not imported."""
    config = {"tenant_id": "t", "client_id": "c", "client_secret": "s", "state_dir": str(tmp_path / "state"),
              "api_base_url": "https://127.0.0.1:8443", "authority_url": "https://127.0.0.1:8443/t"}
    code = (
        "import sys\n"
        "from connector.manifest import load_manifest\n"
        "from connector.config import resolve\n"
        f"resolve({config!r})\n"
        "load_manifest().action('get_alert_related_files').validate_params({'alert_id': ' 6366_21 '})\n"
        "print('jsonschema' in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", "from connector.manifest import load_manifest; load_manifest()"],
                   check=True, timeout=60)  # validates and remembers the packaged manifest
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
