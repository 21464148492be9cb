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
    from connector.cli.tables import add_view_options

    add_view_options(ls)


def run(args: argparse.Namespace) -> int:
    """Run ``quarantine list``; returns the exit code."""
    if getattr(args, "quarantine_command", None) != "list":
        raise ConfigError("quarantine: choose a subcommand.",
                          hint="Try 'mde-connector quarantine list'.")
    from connector.cli.runs import open_store
    from connector.text import dumps_output

    rows = open_store(args).quarantined()
    if args.output == "json":
        print(dumps_output(rows))
        return EXIT_OK
    from connector.cli.tables import print_items, view_from

    items = [dict(r, field=r["poller"].removeprefix("poller:"), cause="store write" if r["transient"] else "the alert",
                  last_seen_at=str(r["last_seen"])[:19].replace("T", " ")) for r in rows]
    print_items("quarantine", items, view_from(args), gap=True)
    print(f"{len(rows)} quarantined alert(s).")
    return EXIT_OK
