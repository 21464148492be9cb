"""``mde-connector artifacts``: artifacts in the local store.

    mde-connector artifacts list [--alert-id ID] [--hash H] [--limit N] [--after CURSOR]
                                 [--state-dir D] [--config F] [--output table|json]
                                 [--wide] [--columns A,B] [--color auto|always|never]

The listing pages: at most ``--limit`` artifacts (default 100 in a table; 0:
all), oldest first per alert, and when more remain a line on stderr gives the
``--after CURSOR`` that continues (keyset paging in the store: a page costs
the same at any depth). ``--output json`` prints a JSON array of artifacts,
as it always has: without ``--limit`` and ``--after`` every artifact
(streamed, one at a time), with them that page, the next cursor on stderr.
``--hash`` takes an MD5, SHA-1 or SHA-256 and lists every alert holding the
file, the alert id first on each line. Mounted by :mod:`connector.cli.main`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from typing import Any

from connector.errors import EXIT_OK, ConfigError, InputError
from connector.text import dumps_output, escape_text

#: Rows of a table listing when --limit is not given.
DEFAULT_LIMIT = 100

_HASH = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` subcommand to the ``artifacts`` parser."""
    from connector.cli.runs import _common
    from connector.cli.tables import add_view_options

    sub = parser.add_subparsers(dest="artifacts_command", metavar="SUBCOMMAND", parser_class=type(parser))
    ls = sub.add_parser("list", help="list stored artifacts, a page at a time")
    ls.add_argument("--alert-id", help="only this alert's artifacts")
    ls.add_argument("--hash", metavar="H", help="every alert holding the file with this MD5, SHA-1 or SHA-256")
    ls.add_argument("--after", metavar="CURSOR", help="continue after this cursor (printed with the previous page)")
    _common(ls)
    add_view_options(ls, limit=f"at most N artifacts (default {DEFAULT_LIMIT}; JSON: all; 0: all)")


def run(args: argparse.Namespace) -> int:
    """Run ``artifacts list``; returns the exit code."""
    if getattr(args, "artifacts_command", None) != "list":
        raise ConfigError("artifacts: choose a subcommand.", hint="Try 'mde-connector artifacts list'.")
    from connector.cli.runs import open_store
    from connector.cli.tables import pick_columns, view_from

    view = view_from(args)
    pick_columns("artifact_hits" if args.hash else "artifacts", view)
    if args.hash is not None:
        return _by_hash(args, view, open_store(args))
    store = open_store(args)
    limit = view.limit if view.limit is not None else (None if args.output == "json" else DEFAULT_LIMIT)
    limit = limit or None  # 0: all
    page = store.artifacts_page(args.alert_id, after=args.after, limit=None if limit is None else limit + 1)
    state: dict[str, str] = {}
    if args.output == "json":
        write_json_array(sys.stdout, capped(page, limit, state))
        say_next(args, state.get("next"))
        return EXIT_OK
    from connector.cli.tables import print_items, verdict_style, with_labels

    items = with_labels(capped(page, limit, state))

    print_items("artifacts", items, view, styles=[verdict_style(a) for a in items], gap=True)
    print(f"{len(items)} artifact(s){' on this page' if state.get('next') else ''}.")
    say_next(args, state.get("next"))
    return EXIT_OK


def capped(page: Iterator[tuple[str, dict[str, Any]]], limit: int | None,
            state: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The first ``limit`` items of ``page`` (``(cursor, item)`` pairs, one
    more than ``limit`` when there is a next page); sets ``state["next"]`` to
    the cursor after the last one shown when more remain."""
    last = None
    for n, (cursor, artifact) in enumerate(page):
        if limit is not None and n == limit:
            if last is not None:
                state["next"] = last
            return
        last = cursor
        yield artifact


def say_next(args: argparse.Namespace, cursor: str | None, noun: str = "artifacts") -> None:
    """Tell stderr the command that prints the page after ``cursor`` (when
    there is one); stdout stays the listing alone."""
    if cursor is None:
        return
    words = ["mde-connector", noun, "list"]
    if getattr(args, "alert_id", None):
        words += ["--alert-id", _quote(args.alert_id)]
    for option in ("state_dir", "config"):
        if getattr(args, option, None):
            words += ["--" + option.replace("_", "-"), _quote(getattr(args, option))]
    if args.output == "json":
        words += ["--output", "json"]
    if args.limit:
        words += ["--limit", str(args.limit)]
    print(f"mde-connector: more {noun}; the next page: {' '.join(words)} --after {cursor}",
          file=sys.stderr)


def _quote(text: str) -> str:
    import shlex

    return escape_text(shlex.quote(text))


def _by_hash(args: argparse.Namespace, view: Any, store: Any) -> int:
    digest = args.hash.strip()
    if not _HASH.fullmatch(digest):
        raise InputError(f"--hash {escape_text(digest[:80])!r} is not an MD5, SHA-1 or SHA-256 "
                         "(32, 40 or 64 hexadecimal digits).")
    if args.after:
        raise InputError("--after pages the full listing; --hash lists every alert holding the file at once.")
    items = store.artifacts_with_hash(digest)
    if args.alert_id:
        items = [a for a in items if a.get("container") == args.alert_id]
    if view.limit:
        items = items[: view.limit]
    if args.output == "json":
        write_json_array(sys.stdout, iter(items))
        return EXIT_OK
    if not items:
        print(f"No stored alert holds a file with hash {digest.lower()}.")
        return EXIT_OK
    from connector.cli.tables import print_items, verdict_style, with_labels

    print_items("artifact_hits", with_labels(items), view, styles=[verdict_style(a) for a in items], gap=True)
    alerts = len({a.get("container") for a in items})
    print(f"{alerts} alert(s) hold this file.")
    return EXIT_OK


def write_json_array(out: Any, items: Iterator[dict[str, Any]]) -> int:
    """Write ``items`` as the JSON array ``dumps_output(list(items))`` would
    print, one item at a time (the whole list is never in memory); returns
    how many were written. The text is the same except where an item holds a
    lone surrogate: only that item is then written ASCII-escaped."""
    n = 0
    for item in items:
        text = dumps_output(item).replace("\n", "\n  ")
        out.write(("[\n  " if n == 0 else ",\n  ") + text)
        n += 1
    out.write("[]\n" if n == 0 else "\n]\n")
    out.flush()
    return n
