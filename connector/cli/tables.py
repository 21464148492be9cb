"""The listings the command line prints, laid out as the manifest's ``tables``
section declares them, with the options every listing shares.

    --wide                 every declared column, not only the default ones
    --columns a,b,c        these columns, in this order (names from the manifest)
    --color auto|always|never
    --limit N              (where the command pages or caps its rows)

Colour is on only for ``auto`` on a terminal without ``NO_COLOR`` (or with
``--color always``): malware and PUA red, an invalid certificate or an
unsigned file yellow. Every listing is a table when it fits the terminal
without cutting a value and cards otherwise (:func:`render_rows`), so nothing
is cut mid-word. Nothing here imports more than the manifest loader.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from connector.cli.render import cell, render_rows
from connector.errors import InputError

#: Verdict flags from most to least severe: the sort order of a file listing.
#: A file without any of them (``no findings``, ``unknown_prevalence``) is clean.
VERDICT_ORDER = ("malware", "pua", "invalid_certificate", "unsigned", "rare")

#: The colour of a file's row by its most severe flag.
VERDICT_STYLE = {"malware": "red", "pua": "red", "invalid_certificate": "yellow", "unsigned": "yellow"}

#: Rows of ``run`` on a terminal when --limit is not given (piped: all of them).
TERMINAL_PAGE = 50


@dataclass(frozen=True)
class Column:
    """One declared column: its ``name`` for ``--columns``, its ``header``,
    the dotted ``path`` into the row item, whether it is ``wide`` only and
    whether, as the last column, it may ``wrap`` at word boundaries."""

    name: str
    header: str
    path: str
    wide: bool = False
    wrap: bool = False

    def value(self, item: Any) -> Any:
        """This column's value in ``item`` (None where the path is missing)."""
        for part in self.path.split("."):
            if not isinstance(item, dict):
                return None
            item = item.get(part)
        return item


@dataclass(frozen=True)
class View:
    """How a listing is shown: the picked columns, colour, the row cap."""

    wide: bool = False
    columns: str | None = None
    color: bool = False
    limit: int | None = None


def declared_columns(table: str) -> list[Column]:
    """The columns the manifest declares for ``table`` (its ``tables`` section)."""
    from connector.manifest import load_manifest

    spec = (load_manifest().raw.get("tables") or {}).get(table)
    if spec is None:
        raise InputError(f"The manifest declares no table {table!r}.")
    return [Column(c["name"], c["header"], c["path"], bool(c.get("wide")), bool(c.get("wrap")))
            for c in spec["columns"]]


def pick_columns(table: str, view: View) -> list[Column]:
    """The columns of ``table`` that ``view`` shows: those named by
    ``--columns`` in that order, else all with ``--wide``, else the default
    ones. An unknown name is an InputError listing the known ones."""
    columns = declared_columns(table)
    if not view.columns:
        return columns if view.wide else [c for c in columns if not c.wide]
    by_name = {c.name: c for c in columns}
    picked = []
    for name in (n.strip() for n in view.columns.split(",")):
        if not name:
            continue
        if name not in by_name:
            import difflib

            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InputError(f"--columns: there is no column {cell(name)!r}.{hint} "
                             f"Columns: {', '.join(by_name)}.")
        picked.append(by_name[name])
    if not picked:
        raise InputError("--columns names no column.", hint=f"Columns: {', '.join(by_name)}.")
    return picked


def color_enabled(mode: str, stream: TextIO | None = None) -> bool:
    """Whether to colour output: ``always``, ``never``, or for ``auto`` when
    ``stream`` (stdout) is a terminal, ``NO_COLOR`` is unset or empty and
    ``TERM`` is not ``dumb``."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def add_view_options(parser: argparse.ArgumentParser, *, limit: str | None = None,
                     limit_default: int | None = None, columns: bool = True) -> None:
    """Add ``--wide``, ``--columns`` (unless ``columns`` is False: a command
    printing several tables), ``--color`` and, when ``limit`` (its help) is
    given, ``--limit N``."""
    parser.add_argument("--wide", action="store_true", help="show every column the manifest declares")
    if columns:
        parser.add_argument("--columns", metavar="A,B,C", help="show these columns, in this order")
    parser.add_argument("--color", "--colour", dest="color", choices=["auto", "always", "never"], default="auto",
                        help="colour verdicts: auto (a terminal without NO_COLOR), always, never")
    if limit is not None:
        parser.add_argument("--limit", type=int, default=limit_default, metavar="N", help=limit)


def view_from(args: argparse.Namespace) -> View:
    """The View the parsed options ask for (defaults where a command lacks one)."""
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 0:
        raise InputError("--limit must be 0 (no limit) or a positive number of rows.")
    return View(wide=bool(getattr(args, "wide", False)), columns=getattr(args, "columns", None),
                color=color_enabled(getattr(args, "color", None) or "auto"), limit=limit)


def verdict_flag(artifact: dict[str, Any]) -> str | None:
    """The artifact's most severe flag of :data:`VERDICT_ORDER`, or None (clean)."""
    tags = artifact.get("tags")
    if not isinstance(tags, list):
        verdict = artifact.get("verdict")
        tags = [t.strip() for t in verdict.split(",")] if isinstance(verdict, str) else []
    return next((flag for flag in VERDICT_ORDER if flag in tags), None)


def verdict_style(artifact: dict[str, Any]) -> str | None:
    """The colour of an artifact's row (see :data:`VERDICT_STYLE`)."""
    flag = verdict_flag(artifact)
    return VERDICT_STYLE.get(flag) if flag else None


def file_sort_key(artifact: dict[str, Any]) -> tuple[int, str, str]:
    """Most severe verdict first (malware, PUA, invalid certificate,
    unsigned, rare, clean), then by file name, case-insensitively."""
    flag = verdict_flag(artifact)
    rank = VERDICT_ORDER.index(flag) if flag else len(VERDICT_ORDER)
    cef = artifact.get("cef") or {}
    name = cef.get("fileName") if isinstance(cef, dict) else None
    return rank, str(name or artifact.get("name") or "").casefold(), str(artifact.get("source_data_identifier"))


def file_label(artifact: dict[str, Any]) -> Any:
    """What a file listing calls a file: its name, else the artifact's name
    (Defender's file records carry no name; the artifact's says who signed
    it and starts its hash)."""
    cef = artifact.get("cef")
    name = cef.get("fileName") if isinstance(cef, dict) else None
    return name or artifact.get("name")


def with_labels(artifacts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Artifacts with the derived keys the file tables show: ``file`` (see
    :func:`file_label`) and ``hash`` (SHA-256, else SHA-1, else MD5)."""
    out = []
    for artifact in artifacts:
        cef = artifact.get("cef")
        cef = cef if isinstance(cef, dict) else {}
        out.append(dict(artifact, file=file_label(artifact),
                        hash=cef.get("fileHashSha256") or cef.get("fileHashSha1") or cef.get("fileHashMd5")))
    return out


def render_items(table: str, items: Sequence[dict[str, Any]], view: View, *, width: int | None = None,
                 styles: Sequence[str | None] | None = None) -> str:
    """``items`` laid out as the manifest's ``table`` under ``view``: a
    table when it fits, cards otherwise; ``styles`` (per item) only when
    colour is on."""
    columns = pick_columns(table, view)
    rows = [[c.value(item) for c in columns] for item in items]
    return render_rows([c.header for c in columns], rows, width, styles=styles if view.color else None,
                       wrap_last=bool(columns[-1].wrap))


def print_items(table: str, items: Iterable[dict[str, Any]], view: View, *,
                styles: Sequence[str | None] | None = None, out: TextIO | None = None, gap: bool = False) -> int:
    """Print ``items`` (see :func:`render_items`) and, when ``gap``, a blank
    line after them; nothing at all when there are none. Returns how many."""
    items = list(items)
    if items:
        print(render_items(table, items, view, styles=styles) + ("\n" if gap else ""), file=out or sys.stdout)
    return len(items)


def page_size(view: View, stream: TextIO | None = None) -> int:
    """How many rows a capped listing shows: ``--limit`` (0: all), else a
    page on a terminal and all of them through a pipe."""
    if view.limit is not None:
        return view.limit
    stream = stream or sys.stdout
    try:
        return TERMINAL_PAGE if stream.isatty() else 0
    except (AttributeError, ValueError):
        return 0


def prepare_view(args: argparse.Namespace, spec: Any) -> View:
    """The View for ``run``'s result, with ``--columns`` checked against the
    action's table before anything is sent (an unknown column exits 2)."""
    view = view_from(args)
    table = (getattr(spec, "render", None) or {}).get("table")
    if table:
        pick_columns(table, view)
    return view


def render_result(result: Any, spec: Any, view: View, width: int | None = None) -> str:
    """An action result for a terminal. An action whose ``render`` names a
    table of the manifest's ``tables`` section shows its message, the
    summary, then the rows most severe first, capped by :func:`page_size`
    with a line saying how to see the rest; other actions as
    :func:`connector.cli.render.render_result`."""
    import textwrap

    from connector.cli.render import _width
    from connector.cli.render import render_result as plain_result
    from connector.text import escape_text

    table = (getattr(spec, "render", None) or {}).get("table") if spec is not None else None
    if not table:
        return plain_result(result, spec, width)
    width = width or _width()
    rows_path = (spec.render or {}).get("rows") or "action_result.artifacts"
    source = getattr(result, rows_path.split(".", 1)[1], None) or []
    out = textwrap.wrap(escape_text(result.message), width) or [""]
    if result.summary:
        out.append("")
        text = "Summary: " + ", ".join(f"{cell(k)}={cell(v)}" for k, v in result.summary.items())
        out.extend(textwrap.wrap(text, width, subsequent_indent="  "))
    items = sorted((a for a in source if isinstance(a, dict)), key=file_sort_key)
    cap = page_size(view)
    shown = items[:cap] if cap else items
    if shown:
        out.append("")
        out.append(render_items(table, with_labels(shown), view, width=width,
                                styles=[verdict_style(a) for a in shown]))
    if len(shown) < len(items):
        out.append("")
        out.extend(textwrap.wrap(
            f"Showing {len(shown)} of {len(items)} files, most severe first. '--limit 0' shows all of them, "
            "'--output json' every field; 'mde-connector artifacts list --alert-id ID' pages the stored ones.",
            width, break_on_hyphens=False))
    return "\n".join(out)
