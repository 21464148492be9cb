"""``mde-connector runs``: playbook run records in the local store.

    mde-connector runs list [--alert-id X] [--state-dir D] [--config F] [--output table|json]
    mde-connector runs show ID [--state-dir D] [--config F] [--output table|json]

Mounted by :mod:`connector.cli.main` (``add_arguments`` / ``run``); imports
nothing heavy at module level.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from connector.errors import EXIT_OK, ConfigError, InputError
from connector.text import dumps_output, escape_text

if TYPE_CHECKING:  # imported by open_store when a command reads the store
    from connector.runtime.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` and ``show`` subcommands to the ``runs`` parser."""
    sub = parser.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", parser_class=type(parser))
    ls = sub.add_parser("list", help="list playbook runs, newest first")
    ls.add_argument("--alert-id", help="only the runs on this alert's container")
    ls.add_argument("--limit", type=int, default=100, help="at most this many runs (default 100)")
    _common(ls)
    show = sub.add_parser("show", help="show one playbook run with its steps")
    show.add_argument("run_id", metavar="ID", help="run id (see 'mde-connector runs list')")
    _common(show)


def _common(p: argparse.ArgumentParser) -> None:
    from connector.cli.local import add_state_dir

    add_state_dir(p)
    p.add_argument("--config", metavar="FILE", help="instance configuration JSON (default: $MDE_CONFIG)")
    p.add_argument("--output", choices=["table", "json"], default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    """Run ``runs list`` or ``runs show``; returns the exit code."""
    command = getattr(args, "runs_command", None)
    if command == "list":
        return _list(args)
    if command == "show":
        return _show(args)
    raise ConfigError("runs: choose a subcommand.", hint="Try 'mde-connector runs list'.")


def open_store(args: argparse.Namespace) -> Store:
    """The store, found by the one state-directory rule
    (:func:`connector.cli.local.state_dir`), opened read-only."""
    from connector.cli.local import open_store_read_only

    return open_store_read_only(args)


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise InputError("--limit must be a positive number of runs.")
    runs = open_store(args).playbook_runs(args.alert_id, limit=args.limit)
    if args.output == "json":
        print(dumps_output(runs))
        return EXIT_OK
    from connector.cli.render import cell, render_table

    headers = ["RUN", "STATUS", "TRIGGER", "STARTED", "ALERT"]
    rows = [(r["id"], r["status"], r["trigger"], str(r["started_at"])[:19].replace("T", " "), r["container"])
            for r in runs]
    # Never shorten: the run id is what 'runs show' needs, copied from here.
    natural = sum(max([len(h)] + [len(cell(row[i])) for row in rows]) for i, h in enumerate(headers))
    print(render_table(headers, rows, width=natural + 2 * (len(headers) - 1)))
    print(f"\n{len(runs)} run(s).")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    found = open_store(args).playbook_run(args.run_id)
    if found is None:
        raise InputError(f"There is no playbook run with id {args.run_id!r}.",
                         hint="'mde-connector runs list' shows the run ids.")
    record = found["record"]
    if not isinstance(record, dict) or "steps" not in record:
        # Queued by the poller (pending) but not started: only the row is known.
        record = {key: found[key] for key in ("id", "playbook", "container", "trigger", "status", "started_at",
                                              "finished_at")}
        record.update(message=f"Playbook run {found['id']} is {found['status']}; no step has run yet.", steps=[])
    if args.output == "json":
        print(dumps_output(record))
    else:
        print(render_run(record))
    return EXIT_OK


def render_run(record: dict[str, Any], width: int | None = None) -> str:
    """A run record for a terminal: what ran where, then one row per step;
    text from the record (alert ids and titles come from the API) escaped."""
    from connector.cli.render import render_table

    lines = [
        record.get("message") or f"Playbook run {record.get('id')}",
        "",
        f"run       {record.get('id')}",
        f"playbook  {record.get('playbook')} {record.get('playbook_version') or ''}".rstrip(),
        f"alert     {record.get('container')}",
        f"trigger   {record.get('trigger')}",
        f"status    {record.get('status')}",
        f"started   {record.get('started_at')}",
        f"finished  {record.get('finished_at') or '-'}",
        "",
    ]
    lines = [escape_text(line) for line in lines]
    rows = [(s.get("id"), s.get("type"), s.get("status"), s.get("duration_ms"), s.get("message"))
            for s in record.get("steps", [])]
    lines.append(render_table(["STEP", "TYPE", "STATUS", "MS", "MESSAGE"], rows, width))
    return "\n".join(lines)
