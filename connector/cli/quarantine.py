"""``mde-connector quarantine``: alerts the watcher could not take in.

    mde-connector quarantine list [--state-dir D] [--config F] [--output table|json]

An alert that ``watch`` could not take in (no usable id or time, a value of
the wrong type, nesting too deep to store, a store write that failed) is
recorded with a one-line reason instead of stopping the poll; this lists
them, most recently seen first. Reading the store needs no credentials.
Mounted by :mod:`connector.cli.main` (``add_arguments`` / ``run``).
"""

from __future__ import annotations

import argparse

from connector.errors import EXIT_OK, ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` subcommand to the ``quarantine`` parser."""
    from connector.cli.runs import _common

    sub = parser.add_subparsers(dest="quarantine_command", metavar="SUBCOMMAND", parser_class=type(parser))
    ls = sub.add_parser("list", help="list quarantined alerts, most recently seen first")
    _common(ls)


def run(args: argparse.Namespace) -> int:
    """Run ``quarantine list``; returns the exit code."""
    if getattr(args, "quarantine_command", None) != "list":
        raise ConfigError("quarantine: choose a subcommand.",
                          hint="Try 'mde-connector quarantine list'.")
    from connector.cli.runs import open_store
    from connector.text import dumps_output, escape_text

    rows = open_store(args).quarantined()
    if args.output == "json":
        print(dumps_output(rows))
        return EXIT_OK
    from connector.cli.render import render_table

    table = [(escape_text(r["alert_id"]), r["poller"].removeprefix("poller:"), r["attempts"],
              "store write" if r["transient"] else "the alert", str(r["last_seen"])[:19].replace("T", " "),
              escape_text(r["reason"])) for r in rows]
    print(render_table(["ALERT", "FIELD", "ATTEMPTS", "CAUSE", "LAST SEEN", "REASON"], table, fixed=(0,)))
    print(f"\n{len(rows)} quarantined alert(s).")
    return EXIT_OK
