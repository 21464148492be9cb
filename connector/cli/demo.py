"""``mde-connector demo``: the whole product against the built-in simulator.

One command after install: start the simulator in-process, configure the
connector against it in a fresh state directory (no secret typed, nothing
written outside that directory), test connectivity, take the simulator's new
alerts through the shipped triage playbook via the new-alert poller, and show
the analyst's view of the files. It runs isolated: the user's ``MDE_*``
environment is never read. A temporary directory (it holds the simulator's
client secret) is removed at the end unless ``--keep`` or ``--keep-running``;
when kept (or chosen with ``--state-dir``), the demo ends with where the store
is, the exact commands to run the action by hand against the same simulator,
and the web console (`mde-connector console`) on the same store.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from connector import severity
from connector.text import escape_text

DETAIL_ALERTS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the demo command."""
    parser.description = (
        "Run the whole product offline against the built-in Defender + Entra ID simulator: start the simulator "
        "on loopback, test connectivity, take its new alerts through the triage playbook and show the "
        "analyst's view of their files. Needs no tenant and no configuration; it never reads your MDE_* "
        "environment. Everything lives in a new temporary directory, removed at the end (it holds the "
        "simulator's client secret) unless --keep or --keep-running.")
    parser.epilog = "Example: mde-connector demo --keep"
    parser.add_argument("--state-dir", metavar="DIR",
                        help="where to keep everything, kept afterwards (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (store, configuration, simulator) afterwards")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the simulator running afterwards for exploring (Ctrl-C stops it); implies --keep")
    parser.add_argument("--port", type=int, default=0, help="simulator port (default: any free port)")


def _say(text: str = "") -> None:
    # Alert ids, titles and messages come from the API: each line escaped.
    print("\n".join(escape_text(line) for line in text.split("\n")), flush=True)


def _step(n: int, text: str) -> None:
    _say(f"\n[{n}/4] {text}")


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step worked."""
    started = time.monotonic()
    temporary = not args.state_dir
    state = Path(tempfile.mkdtemp(prefix="mde-connector-demo-")) if temporary else Path(args.state_dir).expanduser()
    keep = not temporary or getattr(args, "keep", False) or args.keep_running
    try:
        return _demo(args, state, started, keep)
    finally:
        if not keep:
            import shutil

            shutil.rmtree(state, ignore_errors=True)
            _say(f"Removed {state} (it held the simulator's client secret); "
                 "'mde-connector demo --keep' keeps it for running the action by hand.")


def _demo(args: argparse.Namespace, state: Path, started: float, keep: bool) -> int:
    from connector.actions import ActionContext, run_action
    from connector.cli.render import render_result, render_table
    from connector.config import ensure_private_dir, load_config
    from connector.http.client import DefenderClient
    from connector.manifest import load_manifest
    from connector.runtime.engine import load_shipped_playbooks
    from connector.runtime.poller import Poller
    from connector.runtime.store import Store
    from mde_simulator import EXAMPLE_ALERT_ID, Simulator, SimulatorOptions

    ensure_private_dir(state)
    _say("mde-connector demo: Microsoft Defender for Endpoint, Get Alert Related Files")
    _say(f"Everything lives in {state}")

    _step(1, "Starting the Defender + Entra ID simulator on loopback (throwaway CA, TLS verified)")
    sim = Simulator(state / "simulator", SimulatorOptions(port=args.port)).start()
    try:
        config_path = sim.write_config(state / "connector.json", state_dir=str(state / "connector"))
        config = load_config(config_path, env={})  # isolated: the user's MDE_* variables do not apply
        _say(f"      API {config.api_base_url}, sign-in {config.authority_url}")
        _say(f"      connector configuration: {config_path}")

        store = Store.open(config.state_dir)
        client = DefenderClient.from_config(config)

        def context() -> ActionContext:
            return ActionContext(config=config, store=store, client_factory=lambda _cfg: client)

        _step(2, "Test connectivity (token from Entra ID with msal, permissions, one API call)")
        result = run_action("test_connectivity", {}, context())
        _say(f"      {result.message}")
        if not result.ok:
            print(f"mde-connector: {escape_text(result.message)}", file=sys.stderr)
            return result.exit_code

        _step(3, "Polling new alerts and running the triage playbook on each")
        playbooks = load_shipped_playbooks()
        triggered = [pb.name for pb in playbooks if getattr(pb, "trigger_type", "manual") == "new_alert"]

        def progress(alert: dict[str, Any], stats: Any) -> None:
            if sys.stdout.isatty():
                print(f"\r      {stats.processed} alerts taken in…", end="", flush=True)

        poller = Poller(client=client, store=store, context_factory=context, playbooks=playbooks,
                        on_alert=progress)
        report = poller.poll_once()
        if sys.stdout.isatty():
            print()
        runs = report.playbook_runs
        ok_runs = sum(1 for r in runs if r.get("status") == "success")
        _say(f"      {len(report.processed)} new alerts -> {len(report.processed)} containers; "
             f"{ok_runs}/{len(runs)} runs of {', '.join(triggered) or 'no playbook'} succeeded")
        for error in report.errors:
            _say(f"      note: {error}")

        _step(4, "The analyst's view")
        containers = {c["alert_id"]: c for c in store.containers()}
        rows = []
        for alert_id in report.processed:
            c = containers.get(alert_id, {})
            rows.append((alert_id, c.get("severity"), c.get("artifact_count"), ", ".join(c.get("tags") or []),
                         c.get("name")))
        rows.sort(key=lambda r: (-severity.rank(r[1]), -(r[2] or 0)))
        _say(render_table(["ALERT", "SEVERITY", "FILES", "TAGS", "TITLE"], rows[:12], fixed=(0, 1, 2)))
        if len(rows) > 12:
            _say(f"… and {len(rows) - 12} more (mde-connector containers list)")

        spec = load_manifest().action("get_alert_related_files")
        detail = [EXAMPLE_ALERT_ID] + [r[0] for r in rows if r[0] != EXAMPLE_ALERT_ID and (r[2] or 0) <= 50]
        for alert_id in detail[: DETAIL_ALERTS + 1]:
            res = run_action("get_alert_related_files", {"alert_id": alert_id}, context())
            _say(f"\nAlert {alert_id}")
            _say(render_result(res, spec))

        _say(f"\nDone in {time.monotonic() - started:.1f} s.")
        if not keep:
            return 0
        _say(f"SQLite store: {config.state_dir / 'store.sqlite'}")
        _say("Run the action by hand against the same simulator"
             + (" (it is still running):" if args.keep_running else
                f" (start it again first: mde-connector simulator --state-dir {state / 'simulator'}"
                f" --port {sim.base_url.rsplit(':', 1)[1]}):"))
        _say(f"  mde-connector run get_alert_related_files --param alert_id={EXAMPLE_ALERT_ID} --config {config_path}")
        _say(f"  mde-connector artifacts list --alert-id {EXAMPLE_ALERT_ID} --config {config_path}")
        _say(f"  mde-connector runs list --config {config_path}")
        _say("Browse the alerts, their files and the playbooks (drag-and-drop editor) in the local web console:")
        _say(f"  mde-connector console --config {config_path}")
        if args.keep_running:
            _say("\nThe simulator keeps running; press Ctrl-C to stop it.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        sim.stop()
