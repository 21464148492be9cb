"""``mde-connector runs``: playbook run records in the local store.

    mde-connector runs list [--alert-id X] [--state-dir D] [--config F] [--output table|json]
    mde-connector runs show ID [--state-dir D] [--config F] [--output table|json]

Mounted by :mod:`connector.cli.main` (``add_arguments`` / ``run``); imports
nothing heavy at module level.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from connector.cli.tables import View, add_view_options, render_items, view_from
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
    add_view_options(ls)
    show = sub.add_parser("show", help="show one playbook run with its steps")
    show.add_argument("run_id", metavar="ID", help="run id, or the start of one (see 'mde-connector runs list')")
    _common(show)
    add_view_options(show)


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
    view = view_from(args)
    runs = open_store(args).playbook_runs(args.alert_id, limit=args.limit)
    if args.output == "json":
        print(dumps_output(runs))
        return EXIT_OK
    # Never shortened (cards when a table would cut): the run id is what
    # 'runs show' needs, copied from here.
    if runs:
        print(render_items("runs", run_rows(runs), view) + "\n")
    print(f"{len(runs)} run(s).")
    return EXIT_OK


def run_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run rows with the ``started`` column the ``runs`` table shows (the
    start time to the second, without the ``T``)."""
    return [dict(r, started=str(r.get("started_at"))[:19].replace("T", " ")) for r in runs]


def resolve_run_id(store: Any, text: str) -> str:
    """The one run id ``text`` is, or starts: an exact id wins; a prefix
    shared by several runs is an InputError listing them."""
    if store.playbook_run(text) is not None:
        return text
    candidates = store.playbook_run_ids(text, limit=11)
    if len(candidates) == 1:
        return str(candidates[0])
    if not candidates:
        raise InputError(f"There is no playbook run with id {escape_text(text)!r}.",
                         hint="'mde-connector runs list' shows the run ids.")
    shown = ", ".join(escape_text(c) for c in candidates[:10]) + (", …" if len(candidates) > 10 else "")
    count = "more than 10" if len(candidates) > 10 else str(len(candidates))
    raise InputError(f"The run id prefix {escape_text(text)!r} matches {count} runs: {shown}.",
                     hint="Give more characters of the id.")


def _show(args: argparse.Namespace) -> int:
    view = view_from(args)
    store = open_store(args)
    found = store.playbook_run(resolve_run_id(store, args.run_id))
    if found is None:  # deleted between the two reads
        raise InputError(f"There is no playbook run with id {escape_text(args.run_id)!r}.",
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
        print(render_run(record, view=view))
    return EXIT_OK


def render_run(record: dict[str, Any], width: int | None = None, view: View | None = None) -> str:
    """A run record for a terminal: what ran where, then one row per step
    (the manifest's ``run_steps`` table: a table when it fits, else cards);
    text from the record (alert ids and titles come from the API) escaped."""
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
    steps = [s for s in record.get("steps", []) if isinstance(s, dict)]
    if steps:
        lines.append(render_items("run_steps", steps, view or View(), width=width))
    else:
        lines.append("No steps.")
    return "\n".join(lines)
