"""``mde-connector containers``: containers (alerts) in the local store.

    mde-connector containers list [--limit N] [--after CURSOR] [--state-dir D] [--config F]
                                  [--output table|json] [--wide] [--columns A,B] [--color WHEN]
    mde-connector containers show ALERT_ID [--state-dir D] [--config F] [--output table|json]

``list`` pages like ``artifacts list`` (default 100 rows in a table; JSON
without ``--limit``/``--after``: every container, as it always has). ``show``
prints one container: its fields, severity, tags, notes (the playbooks'
notes among them), its artifacts (most severe first) and its playbook runs.
Mounted by :mod:`connector.cli.main`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
from typing import Any

from connector.errors import EXIT_OK, ConfigError, InputError
from connector.text import dumps_output, escape_text

DEFAULT_LIMIT = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` and ``show`` subcommands to the ``containers`` parser."""
    from connector.cli.runs import _common
    from connector.cli.tables import add_view_options

    sub = parser.add_subparsers(dest="containers_command", metavar="SUBCOMMAND", parser_class=type(parser))
    ls = sub.add_parser("list", help="list containers, oldest first, a page at a time")
    ls.add_argument("--after", metavar="CURSOR", help="continue after this cursor (printed with the previous page)")
    _common(ls)
    add_view_options(ls, limit=f"at most N containers (default {DEFAULT_LIMIT}; JSON: all; 0: all)")
    show = sub.add_parser("show", help="one container: fields, tags, notes, artifacts and runs")
    show.add_argument("alert_id", metavar="ALERT_ID", help="the alert id (see 'mde-connector containers list')")
    _common(show)
    add_view_options(show, columns=False,
                     limit="at most N artifacts and N runs (default: a page on a terminal, all when piped; 0: all)")


def run(args: argparse.Namespace) -> int:
    """Run ``containers list`` or ``containers show``; returns the exit code."""
    command = getattr(args, "containers_command", None)
    if command == "list":
        return _list(args)
    if command == "show":
        return _show(args)
    raise ConfigError("containers: choose a subcommand.",
                      hint="Try 'mde-connector containers list'.")


def _list(args: argparse.Namespace) -> int:
    from connector.cli.artifacts import capped, say_next, write_json_array
    from connector.cli.runs import open_store
    from connector.cli.tables import pick_columns, print_items, view_from

    view = view_from(args)
    pick_columns("containers", view)
    store = open_store(args)
    limit = view.limit if view.limit is not None else (None if args.output == "json" else DEFAULT_LIMIT)
    limit = limit or None
    page = store.containers_page(after=args.after, limit=None if limit is None else limit + 1)
    state: dict[str, str] = {}
    if args.output == "json":
        write_json_array(sys.stdout, capped(page, limit, state))
    else:
        items = list(capped(page, limit, state))
        print_items("containers", items, view, styles=[_severity_style(c.get("severity")) for c in items], gap=True)
        print(f"{len(items)} container(s){' on this page' if state.get('next') else ''}.")
    say_next(args, state.get("next"), "containers")
    return EXIT_OK


def _severity_style(severity: Any) -> str | None:
    return {"high": "red", "medium": "yellow"}.get(str(severity))


def _show(args: argparse.Namespace) -> int:
    from connector.cli.runs import open_store
    from connector.cli.tables import file_sort_key, view_from

    view = view_from(args)
    store = open_store(args)
    found = store.container(args.alert_id)
    if found is None:
        raise InputError(f"There is no container for alert {escape_text(args.alert_id)!r} in the store.",
                         hint="'mde-connector containers list' shows the stored alerts.")
    artifacts = sorted(store.artifacts(args.alert_id), key=file_sort_key)
    runs = store.playbook_runs(args.alert_id, limit=1000)
    if args.output == "json":
        print(dumps_output(dict(found, artifacts=artifacts, runs=runs)))
        return EXIT_OK
    print(render_container(found, artifacts, runs, view))
    return EXIT_OK


def render_container(container: dict[str, Any], artifacts: list[dict[str, Any]], runs: list[dict[str, Any]],
                     view: Any, width: int | None = None) -> str:
    """One container for a terminal: its fields, then its notes, artifacts
    and runs; every value from the store (API text) escaped."""
    from connector.cli.render import _width, cell, paint
    from connector.cli.tables import page_size, render_items, verdict_style, with_labels

    width = width or _width()
    severity = cell(container.get("severity"))
    style = _severity_style(container.get("severity")) if view.color else None
    lines = [cell(container.get("name")), ""]
    fields = [("alert", container.get("alert_id")), ("severity", None), ("status", container.get("status")),
              ("source", container.get("source")), ("tags", container.get("tags") or None),
              ("created", container.get("created_at")), ("updated", container.get("updated_at"))]
    for label, value in fields:
        text = paint(severity, style) if label == "severity" else cell(value)
        lines.append(f"{label:<9} {text}")
    data = container.get("data")
    if isinstance(data, dict):
        scalars = [(k, v) for k, v in data.items() if isinstance(v, (str, int, float, bool)) and v != ""]
        if scalars:
            lines += ["", "Fields:"]
            for key, value in scalars:
                lines.extend(textwrap.wrap(f"{cell(key)}: {cell(value)}", width, initial_indent="  ",
                                           subsequent_indent="      ", break_long_words=False)
                             or ["  " + cell(key)])
    notes = container.get("notes") or []
    lines += ["", f"Notes ({len(notes)}):" if notes else "Notes: none"]
    for note in notes:
        lines.extend(textwrap.wrap(cell(note), width, initial_indent="  - ", subsequent_indent="    ",
                                   break_long_words=False) or ["  -"])
    cap = page_size(view)
    alert = escape_text(shlex.quote(str(container.get("alert_id"))))
    lines += ["", f"Artifacts ({len(artifacts)}):" if artifacts else "Artifacts: none"]
    if artifacts:
        items = with_labels(artifacts[:cap] if cap else artifacts)
        lines.append(render_items("artifacts", items, view, width=width, styles=[verdict_style(a) for a in items]))
        if len(items) < len(artifacts):
            lines.extend(textwrap.wrap(f"Showing the {len(items)} most severe of {len(artifacts)} artifacts; "
                                       f"'mde-connector artifacts list --alert-id {alert}' pages them all.", width,
                                       break_on_hyphens=False))
    lines += ["", f"Playbook runs ({len(runs)}):" if runs else "Playbook runs: none"]
    if runs:
        from connector.cli.runs import run_rows

        shown = runs[:cap] if cap else runs
        lines.append(render_items("runs", run_rows(shown), view, width=width))
        if len(shown) < len(runs):
            lines.extend(textwrap.wrap(f"Showing the {len(shown)} newest of {len(runs)} runs; "
                                       f"'mde-connector runs list --alert-id {alert}' lists more.", width,
                                       break_on_hyphens=False))
    return "\n".join(lines)

