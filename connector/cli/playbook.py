"""``mde-connector playbook``: validate and run playbooks.

    mde-connector playbook validate [FILE ...]     (no FILE: the shipped playbooks)
    mde-connector playbook run FILE|NAME --alert-id X [--config F] [--output table|json]
    mde-connector playbook list

``validate`` prints each problem as one line on stderr and exits 2 if any
playbook is invalid, else prints ``OK: <n> playbooks valid``. ``run`` runs
the playbook manually against the alert's container and prints the run
record; it exits 0 when the run succeeded, 1 when it failed. SIGTERM/SIGINT
stop a run after the step in hand (its record says ``stopped``; waits for the
rate budget end early) with exit 143/130. The run holds a lease while it
executes, and ``watch`` never resumes a manual run. Mounted by
:mod:`connector.cli.main` (``add_arguments`` / ``run``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from connector.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, ConfigError, PlaybookError
from connector.text import dumps_output, escape_text

if TYPE_CHECKING:  # the playbook engine is imported by the subcommands that use it (see bench/NOTES.md)
    from connector.runtime.playbooks import Playbook


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``validate``, ``run`` and ``list`` subcommands."""
    sub = parser.add_subparsers(dest="playbook_command", metavar="SUBCOMMAND", parser_class=type(parser))
    val = sub.add_parser("validate", help="check playbook files as an editor would before saving")
    val.add_argument("files", nargs="*", metavar="FILE", help="playbook JSON files (default: the shipped ones)")
    val.add_argument("--source", choices=["defender", "graph"],
                     help="accept only the action outputs this API source yields (default: every declared output)")
    val.add_argument("--enrich-files", action="store_true",
                     help="with --source graph: also the fields enrich_files adds")
    val.add_argument("--output", choices=["table", "json"], default="table",
                     help="output format (json: each file with its problems, on stdout)")

    run_p = sub.add_parser("run", help="run a playbook against an alert's container")
    run_p.add_argument("playbook", metavar="FILE", help="playbook file, or the name of a shipped playbook")
    run_p.add_argument("--alert-id", required=True, help="the Defender alert id (the container)")
    run_p.add_argument("--config", metavar="FILE", help="instance configuration JSON (default: $MDE_CONFIG)")
    from connector.cli.local import add_state_dir

    add_state_dir(run_p)
    run_p.add_argument("--output", choices=["table", "json"], default="table", help="output format")

    ls = sub.add_parser("list", help="list the shipped playbooks")
    ls.add_argument("--output", choices=["table", "json"], default="table", help="output format")
    from connector.cli.tables import add_view_options

    add_view_options(ls)


def run(args: argparse.Namespace) -> int:
    """Run a ``playbook`` subcommand; returns the exit code."""
    command = getattr(args, "playbook_command", None)
    if command == "validate":
        return _validate(args.files, getattr(args, "source", None), getattr(args, "enrich_files", False),
                         getattr(args, "output", "table"))
    if command == "run":
        return _run(args)
    if command == "list":
        return _list(args)
    raise ConfigError("playbook: choose a subcommand.",
                      hint="Try 'mde-connector playbook validate FILE' or 'mde-connector playbook run FILE'.")


def _validate(files: list[str], api_source: str | None = None, enriched: bool = False,
              output: str = "table") -> int:
    from connector.runtime.engine import shipped_playbook_files
    from connector.runtime.playbooks import validate_playbook_file

    paths = [Path(f) for f in files] if files else shipped_playbook_files()
    if not paths:
        raise ConfigError("There are no playbooks to validate.", hint="Pass playbook files.")
    invalid = 0
    report = []
    for path in paths:
        problems = validate_playbook_file(path, api_source=api_source, enriched=enriched)
        report.append({"file": str(path), "valid": not problems, "problems": [str(p) for p in problems]})
        if problems:
            invalid += 1
            if output != "json":
                for problem in problems:
                    print(escape_text(str(problem)), file=sys.stderr)
    if output == "json":
        print(dumps_output({"valid": not invalid, "playbooks": report}))
        if invalid:
            print(f"mde-connector: {invalid} of {len(paths)} playbook(s) are invalid.", file=sys.stderr)
    if invalid:
        return EXIT_INVALID
    if output == "json":
        return EXIT_OK
    n = len(paths)
    print(f"OK: {n} playbook{'s' if n != 1 else ''} valid")
    return EXIT_OK


def _resolve_playbook(name: str) -> Playbook:
    from connector.runtime.engine import shipped_playbook_files
    from connector.runtime.playbooks import load_playbook

    path = Path(name)
    if path.exists() or path.suffix == ".json" or "/" in name:
        return load_playbook(path)
    for shipped in shipped_playbook_files():
        if shipped.stem == name:
            return load_playbook(shipped)
    from connector.cli.hints import did_you_mean

    stems = [p.stem for p in shipped_playbook_files()]
    guess = did_you_mean(name, stems)
    raise PlaybookError(f"Playbook {name!r} is neither a file nor a shipped playbook; shipped playbooks: "
                        f"{', '.join(stems)}.", hint=f"Did you mean '{guess}'?" if guess else None)


def _run(args: argparse.Namespace) -> int:
    from connector.actions import ActionContext
    from connector.cli.hints import take_alert_id
    from connector.cli.local import load_cli_config, tell_progress
    from connector.cli.runs import render_run
    from connector.http.client import DefenderClient
    from connector.runtime.engine import run_playbook
    from connector.runtime.stopping import StopSignals
    from connector.runtime.store import Store, new_owner

    playbook = _resolve_playbook(args.playbook)
    args.alert_id = take_alert_id(args.alert_id, lambda m: print(m, file=sys.stderr))
    config = load_cli_config(args)
    show = args.output == "table" and sys.stderr.isatty()
    stops = StopSignals().install()

    def progress(message: str) -> None:
        if show:
            print(f"… {escape_text(message)}", file=sys.stderr, flush=True)

    try:
        context = ActionContext(config=config, store=Store.open(config.state_dir), progress=progress,
                                client_factory=lambda _cfg: stops.interruptible(
                                    tell_progress(DefenderClient.from_config(config), progress)))
        record = run_playbook(playbook, alert_id=args.alert_id, context=context, trigger="manual",
                              owner=new_owner(), stop=stops.event)
    finally:
        stops.restore()
    if args.output == "json":
        print(dumps_output(record))
    else:
        print(render_run(record))
    if record["status"] != "success":
        print(f"mde-connector: {escape_text(record['message'])}", file=sys.stderr)
        return stops.exit_code(EXIT_FAILED)
    return stops.exit_code(EXIT_OK)


def _list(args: argparse.Namespace) -> int:
    from connector.runtime.engine import load_shipped_playbooks

    playbooks = load_shipped_playbooks()
    if args.output == "json":
        print(dumps_output([{"name": p.name, "version": p.version, "trigger": p.trigger,
                             "description": p.description, "file": p.source} for p in playbooks]))
        return EXIT_OK
    from connector.cli.tables import print_items, view_from

    items = [{"name": p.name, "version": p.version, "trigger_type": p.trigger_type, "description": p.description}
             for p in playbooks]
    print_items("playbooks", items, view_from(args))
    return EXIT_OK
