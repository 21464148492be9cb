"""What the command line says when an analyst's habit meets it: "did you mean"
for a misspelt command, choice or action, a hint for ``alert_id=X`` given
without ``--param``, the alert id inside a pasted Defender portal URL, and
the per-action help wrapped to the terminal with an example from the
manifest. Pure functions over strings; nothing heavy is imported.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from connector.errors import ConfigError, InputError
from connector.text import escape_text

PROG = "mde-connector"

# argparse's wording (Python 3.11 to 3.13): "argument X: invalid choice: 'y' (choose from 'a', 'b')".
_INVALID_CHOICE = re.compile(r"invalid choice: '?(?P<value>[^'(]*?)'? \(choose from (?P<choices>.*)\)$")
_UNRECOGNIZED = re.compile(r"^unrecognized arguments: (?P<args>.*)$")

# Hosts of the Defender portal (commercial, GCC, GCC High, DoD) whose alert
# pages hold the alert id as the path segment after /alerts/.
PORTAL_HOSTS = ("security.microsoft.com", "security.microsoft.us", "securitycenter.microsoft.com",
                "securitycenter.windows.com", "security.apps.mil")
_ALERT_SEGMENT = re.compile(r"/alerts?/(?P<id>[^/?#]+)", re.IGNORECASE)


def did_you_mean(value: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``value``, or None."""
    found = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def usage_error(prog: str, message: str) -> ConfigError:
    """An argparse error as one sentence for the ``mde-connector:`` prefix:
    which (sub)command, what was wrong, and a suggestion where one helps."""
    where = prog.removeprefix(PROG).strip()
    hint = f"Run '{prog} --help' for usage."
    choice = _INVALID_CHOICE.search(message)
    if choice:
        choices = [c.strip().strip("'") for c in choice.group("choices").split(",")]
        guess = did_you_mean(choice.group("value"), choices)
        if guess:
            hint = f"Did you mean '{guess}'? {hint}"
    unrecognized = _UNRECOGNIZED.match(message)
    if unrecognized:
        pairs = [a for a in unrecognized.group("args").split() if "=" in a and not a.startswith("-")]
        if pairs:
            hint = (f"Action parameters are passed with --param, e.g. --param {pairs[0]}"
                    f"{' (once per parameter)' if len(pairs) > 1 else ''}.")
    text = f"{where}: {message}" if where else f"{message[:1].upper()}{message[1:]}"
    return ConfigError(f"{text}.", hint=hint)


def find_action(manifest: Any, name: str) -> Any:
    """``manifest.action(name)``, with "did you mean" added to an unknown name."""
    try:
        return manifest.action(name)
    except InputError as err:
        names = [a.name for a in manifest.actions]
        guess = did_you_mean(name.replace("-", "_").lower(), names)
        if guess is None or err.hint:
            raise
        raise InputError(err.message, hint=f"Did you mean '{guess}'?") from None


def alert_id_from_portal_url(value: str) -> str | None:
    """The alert id in a pasted Defender portal link
    (``https://security.microsoft.com/alerts/da637…_-123?tid=…``), or None
    when ``value`` is not such a link."""
    if not value.lower().startswith(("https://", "http://")):
        return None
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not any(host == h or host.endswith("." + h) for h in PORTAL_HOSTS):
        return None
    found = _ALERT_SEGMENT.search(parts.path)
    if not found:
        return None
    alert_id = unquote(found.group("id")).strip()
    return alert_id or None


def take_alert_id(value: Any, say: Any) -> Any:
    """``value`` with a portal link replaced by the alert id inside it; ``say``
    is called with one sentence telling the analyst so."""
    if not isinstance(value, str):
        return value
    alert_id = alert_id_from_portal_url(value)
    if alert_id is None:
        return value
    say(f"{PROG}: took alert id {escape_text(alert_id)} from the Defender portal link.")
    return alert_id


def example_command(spec: Any) -> str:
    """A runnable ``mde-connector run`` line for the action, its required
    parameters filled with the manifest's first example of each."""
    props: dict[str, Any] = spec.parameters_schema.get("properties", {})
    required = list(spec.parameters_schema.get("required", []))
    words = [PROG, "run", spec.name]
    for name in required or list(props)[:1]:
        examples = props.get(name, {}).get("examples") or []
        if examples:
            words += ["--param", f"{name}={examples[0]}"]
        elif name in required:
            words += ["--param", f"{name}=..."]
    return " ".join(words)


def action_help(spec: Any, width: int = 80) -> str:
    """The action's manifest-generated help wrapped to ``width`` columns
    (continuation lines keep their indentation), ending with an example."""
    example = "  " + example_command(spec)
    if len(example) > width:
        # Shell line continuations keep it one pasteable command.
        head, sep, rest = example.partition(" --param ")
        example = head + " \\\n    --param " + rest.replace(" --param ", " \\\n    --param ") if sep else example
    text = spec.help_text()
    if "alert_id" in spec.parameters_schema.get("properties", {}):
        text += "\n\nA link to the alert in the Defender portal works as alert_id too."
    text += "\n\nExample:\n" + example
    lines: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        lines += textwrap.wrap(line.strip(), width=width, initial_indent=indent,
                               subsequent_indent=indent, break_on_hyphens=False) or [""]
    return "\n".join(lines)
