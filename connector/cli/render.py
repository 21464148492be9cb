"""How the command line prints data for a person: tables that fit the
terminal, cards when a table would cut values, and an action result (message,
the manifest's table columns, summary). Every cell goes through :func:`cell`,
so API text cannot drive the terminal."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from connector.text import escape_text


def _width() -> int:
    try:
        return max(60, os.get_terminal_size(sys.stdout.fileno()).columns)
    except OSError:
        return int(os.environ.get("COLUMNS", "80") or 80)


#: ANSI colours by style name; only :func:`paint` emits them, and only when
#: the caller decided colour is on (a terminal, no NO_COLOR, --color).
COLOURS = {"red": "\x1b[31m", "yellow": "\x1b[33m", "bold": "\x1b[1m"}
_RESET = "\x1b[0m"


def text_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: East Asian wide and full-width
    characters take two, combining marks none (escaped text has no controls)."""
    if text.isascii() or max(text) < "\u0300":  # below the first combining mark: one column each
        return len(text)
    import unicodedata

    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    return text + " " * max(0, width - text_width(text))


def paint(text: str, style: str | None) -> str:
    """``text`` in the colour ``style`` names (a key of :data:`COLOURS`), or
    unchanged when ``style`` is None."""
    return f"{COLOURS[style]}{text}{_RESET}" if style else text


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None,
                 fixed: Sequence[int] = (), styles: Sequence[str | None] | None = None) -> str:
    """A plain-text table that fits ``width`` columns: the widest columns not
    listed in ``fixed`` (indexes) are shortened with an ellipsis until it fits.
    ``styles``: per row, a colour for the whole line (see :func:`paint`)."""
    width = width or _width()
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([text_width(h)] + [text_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    gap = 2
    shrinkable = [i for i in range(len(widths)) if i not in fixed] or list(range(len(widths)))
    while sum(widths) + gap * (len(widths) - 1) > width:
        i = max(shrinkable, key=lambda k: widths[k])
        if widths[i] <= max(6, len(headers[i])):
            break
        widths[i] -= 1

    def fit(text: str, w: int) -> str:
        if text_width(text) <= w:
            return text
        while text and text_width(text) > max(1, w - 1):
            text = text[:-1]
        return text + "…"

    lines = ["  ".join(pad(fit(h, widths[i]), widths[i]) for i, h in enumerate(headers)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for n, row in enumerate(cells):
        line = "  ".join(pad(fit(c, widths[i]), widths[i]) for i, c in enumerate(row)).rstrip()
        lines.append(paint(line, styles[n]) if styles else line)
    return "\n".join(lines)


def render_cards(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None,
                 styles: Sequence[str | None] | None = None) -> str:
    """Rows too wide for a table, one card each: the first column in full on
    its own line (a hash stays whole, ready to copy), the others as
    ``Name: value`` pairs wrapped to ``width``; no value is cut (one longer
    than the line gets a line of its own). ``styles``: per row, a colour
    for the card's first line."""
    width = width or _width()
    out = []
    for n, row in enumerate(rows):
        out.append(paint(cell(row[0]), styles[n] if styles else None))
        line, used = " ", 1
        for name, value in zip(headers[1:], row[1:], strict=False):
            part = f"{name}: {cell(value)}"
            size = text_width(part)
            if used > 1 and used + 3 + size > width:
                out.append(line)
                line, used = " ", 1
            if used <= 1:
                line, used = f"{line} {part}", used + 1 + size
            else:
                line, used = f"{line} · {part}", used + 3 + size
        if used > 1:
            out.append(line)
    return "\n".join(out)


def render_rows(headers: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None,
                styles: Sequence[str | None] | None = None, wrap_last: bool = False) -> str:
    """A table when it fits ``width`` without cutting values, cards otherwise
    (the layout every listing uses: nothing is cut mid-word). ``wrap_last``:
    a free-text last column (a message, a description) may instead wrap at
    word boundaries onto continuation lines, when the other columns fit."""
    width = width or _width()
    natural = [max([text_width(h)] + [text_width(cell(r[i])) for r in rows]) for i, h in enumerate(headers)]
    if sum(natural) + 2 * (len(headers) - 1) <= width:
        return render_table(headers, rows, width, styles=styles)
    if wrap_last and len(headers) > 1:
        wrapped = _wrapped_table(headers, rows, natural, width, styles)
        if wrapped is not None:
            return wrapped
    return render_cards(headers, rows, width, styles=styles)


def _wrapped_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], natural: list[int], width: int,
                   styles: Sequence[str | None] | None) -> str | None:
    """The table with its last column wrapped at word boundaries, or None when
    that column would be narrower than 20 or a word in it longer than the room."""
    indent = sum(natural[:-1]) + 2 * (len(headers) - 1)
    room = width - indent
    if room < max(20, len(headers[-1])):
        return None
    out = ["  ".join(pad(h, natural[i]) for i, h in enumerate(headers)).rstrip(),
           "  ".join("-" * w for w in natural[:-1] + [room])]
    for n, row in enumerate(rows):
        last = cell(row[-1])
        if any(len(word) > room for word in last.split(" ")):
            return None
        parts = textwrap.wrap(last, room, break_long_words=False, break_on_hyphens=False) or [""]
        if any(text_width(part) > room for part in parts):  # wide characters: cards instead
            return None
        head = "  ".join(pad(cell(v), natural[i]) for i, v in enumerate(row[:-1]))
        lines = [f"{head}  {parts[0]}".rstrip()] + [" " * indent + part for part in parts[1:]]
        out.extend(paint(line, styles[n]) if styles else line for line in lines)
    return "\n".join(out)


def cell(value: Any) -> str:
    """One table cell: whitespace runs (newlines, U+2028) as one space, and
    every other non-printable character (ESC, BEL, C1, bidi overrides, lone
    surrogates) as a visible escape, so API text cannot drive the terminal."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return escape_text(" ".join(str(value).split()))


def _path_value(item: Any, path: str) -> Any:
    """Value at a manifest data path relative to one data item."""
    for part in path.split("."):
        if not isinstance(item, dict):
            return None
        item = item.get(part)
    return item


def render_result(result: Any, spec: Any = None, width: int | None = None) -> str:
    """An action result for a terminal: the message, a table of the rows the
    manifest's ``render`` section names (columns from the output data paths'
    ``column_name``/``column_order``), and the summary."""
    width = width or _width()
    out = textwrap.wrap(escape_text(result.message), width) or [""]
    columns = spec.table_columns if spec is not None else []
    rows_path = ((spec.render or {}).get("rows") if spec is not None else None) or "action_result.data"
    source = result.to_dict().get(rows_path.split(".", 1)[1], []) if "." in rows_path else []
    if columns and source:
        prefix = rows_path + ".*."
        rows = [[_path_value(item, path[len(prefix):]) if path.startswith(prefix) else None
                 for path, _name in columns] for item in source]
        out.append("")
        out.append(render_rows([name for _, name in columns], rows, width))
    if result.summary:
        out.append("")
        text = "Summary: " + ", ".join(f"{cell(k)}={cell(v)}" for k, v in result.summary.items())
        out.extend(textwrap.wrap(text, width, subsequent_indent="  "))
    return "\n".join(out)
