"""``mde-connector demo`` ends by offering the console on the demo's store."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pytest


def test_demo_ends_by_offering_the_console_on_its_own_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli import demo
    from connector.cli.main import build_parser
    from connector.config import load_config
    from connector.console.app import ConsoleApp
    from connector.runtime.store import Store

    assert demo.run(argparse.Namespace(state_dir=str(tmp_path / "demo"), keep_running=False, port=0)) == 0
    out = capsys.readouterr().out
    offers = [line.strip() for line in out.splitlines() if line.strip().startswith("mde-connector console")]
    assert len(offers) == 1
    argv = shlex.split(offers[0])[1:]
    args = build_parser("console").parse_args(argv)
    assert args.command == "console"
    config = load_config(args.config)
    assert config.state_dir == tmp_path / "demo" / "connector"
    app = ConsoleApp(store=Store.open(config.state_dir), config=config, playbook_dir=tmp_path / "pb")
    status, payload = app.containers()
    assert status == 200 and payload["containers"], "the console should show the demo's alerts"
