"""``mde-connector completion bash|zsh|fish``: a shell completion script.

Generated from the argument parser itself (every command, subcommand, option
and choice) and from the manifest (action names after ``run``, parameter
names after ``--param``), so it never lists an option the command does not
take. Install it with, for example::

    mde-connector completion bash > ~/.local/share/bash-completion/completions/mde-connector
    echo 'eval "$(mde-connector completion zsh)"' >> ~/.zshrc
    mde-connector completion fish > ~/.config/fish/completions/mde-connector.fish
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any

from connector.errors import EXIT_OK

SHELLS = ("bash", "zsh", "fish")
PROG = "mde-connector"
# Value kinds a completion offers after an option or as a positional.
FILE, PARAM, ANY = "__file__", "__param__", "__any__"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``shell`` argument."""
    parser.description = (
        "Print a shell completion script for bash, zsh or fish, generated from the commands, options and "
        "the manifest's actions and parameters. Example: mde-connector completion bash "
        "> ~/.local/share/bash-completion/completions/mde-connector")
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    """Print the script for ``args.shell``; ``args.parser_factory`` (set by
    :mod:`connector.cli.main`, which this module must not import) builds the
    complete command-line parser."""
    print(script(args.shell, args.parser_factory()), end="")
    return EXIT_OK


@dataclass
class Node:
    """One command level: ``path`` is e.g. ``""``, ``"run"``, ``"runs list"``."""

    path: str
    help: str = ""
    subcommands: dict[str, str] = field(default_factory=dict)  # name -> help
    options: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)  # option -> choices (space-separated), FILE, PARAM, ANY
    positional: str = ""  # choices (space-separated) or FILE for the next positional word


def _kind(action: argparse.Action) -> str:
    if action.choices:
        return " ".join(str(c) for c in action.choices)
    words = set(action.dest.lower().split("_")) | {str(action.metavar or "").lower()}
    if words & {"config", "file", "dir", "path", "playbook", "playbooks", "out"}:
        return FILE
    return ANY


def tree(parser: argparse.ArgumentParser, manifest: Any = None) -> list[Node]:
    """Every command level of the parser, depth first, with the manifest's
    action names as the positional of ``run`` and its parameters after
    ``--param``."""
    if manifest is None:
        from connector.manifest import load_manifest

        manifest = load_manifest()
    nodes: list[Node] = []

    def walk(p: argparse.ArgumentParser, path: str, help_text: str) -> None:
        node = Node(path, help_text)
        nodes.append(node)
        children: list[tuple[str, argparse.ArgumentParser]] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {c.dest: c.help or "" for c in action._choices_actions}
                for name, child in action.choices.items():
                    node.subcommands[name] = helps.get(name, "")
                    children.append((name, child))
            elif action.option_strings:
                if action.help == argparse.SUPPRESS:
                    continue
                node.options += action.option_strings
                if action.nargs != 0:
                    for opt in action.option_strings:
                        node.values[opt] = PARAM if action.dest == "param" else _kind(action)
            elif action.help != argparse.SUPPRESS and not node.positional:
                node.positional = _kind(action)
        if path == "run":
            node.positional = " ".join(a.name for a in manifest.actions)
        elif path == "help":
            node.positional = " ".join(nodes[0].subcommands)
        for name, child in children:
            walk(child, f"{path} {name}".strip(), node.subcommands[name])

    walk(parser, "", parser.description or "")
    return nodes


def _params(manifest: Any) -> dict[str, str]:
    return {a.name: " ".join(f"{k}=" for k in a.parameters_schema.get("properties", {})) for a in manifest.actions}


def _case(entries: dict[str, str]) -> str:
    empty = '""'
    return "\n".join(f"        {shlex.quote(k) if k else empty}) echo {shlex.quote(v)};;" for k, v in entries.items()
                     if v)


def bash_script(nodes: list[Node], manifest: Any) -> str:
    """A bash completion function (also used by zsh through bashcompinit)."""
    subcommands = {n.path: " ".join(n.subcommands) for n in nodes}
    options = {n.path: " ".join(n.options) for n in nodes}
    positionals = {n.path: n.positional for n in nodes}
    values = {f"{n.path}|{opt}": kind for n in nodes for opt, kind in n.values.items()}
    return f"""# {PROG} completion for bash (generated by '{PROG} completion bash').
_mde_connector_subcommands() {{
    case "$1" in
{_case(subcommands)}
    esac
}}
_mde_connector_options() {{
    case "$1" in
{_case(options)}
    esac
}}
_mde_connector_positional() {{
    case "$1" in
{_case(positionals)}
    esac
}}
_mde_connector_values() {{
    case "$1|$2" in
{_case(values)}
    esac
}}
_mde_connector_params() {{
    case "$1" in
{_case(_params(manifest))}
    esac
}}
_mde_connector() {{
    if [ -n "${{ZSH_VERSION:-}}" ]; then setopt localoptions ksharrays; fi
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="" path="" action="" word words i
    [ "$COMP_CWORD" -gt 0 ] && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$word" in -*) continue;; esac
        if [ -n "$(_mde_connector_values "$path" "${{COMP_WORDS[i-1]}}")" ]; then continue; fi
        case " $(_mde_connector_subcommands "$path") " in
            *" $word "*) path="${{path:+$path }}$word";;
            *) if [ "$path" = run ] && [ -z "$action" ]; then action="$word"; fi;;
        esac
    done
    words="$(_mde_connector_values "$path" "$prev")"
    if [ -n "$words" ]; then
        case "$words" in
            {FILE}) COMPREPLY=($(compgen -f -- "$cur"));;
            {PARAM}) COMPREPLY=($(compgen -W "$(_mde_connector_params "$action")" -- "$cur"))
                   if type compopt >/dev/null 2>&1; then compopt -o nospace; fi;;
            {ANY}) COMPREPLY=();;
            *) COMPREPLY=($(compgen -W "$words" -- "$cur"));;
        esac
        return 0
    fi
    case "$cur" in
        -*) COMPREPLY=($(compgen -W "$(_mde_connector_options "$path")" -- "$cur")); return 0;;
    esac
    words="$(_mde_connector_subcommands "$path")"
    if [ -z "$words" ]; then
        words="$(_mde_connector_positional "$path")"
        if [ "$path" = run ] && [ -n "$action" ]; then words="--param"; fi
    fi
    case "$words" in
        {FILE}) COMPREPLY=($(compgen -f -- "$cur"));;
        {ANY}) COMPREPLY=();;
        *) COMPREPLY=($(compgen -W "$words" -- "$cur"));;
    esac
    return 0
}}
complete -F _mde_connector {PROG}
"""


def zsh_script(nodes: list[Node], manifest: Any) -> str:
    """The bash function run through zsh's bashcompinit (as Azure CLI does),
    meant to be sourced from ``~/.zshrc``: ``eval "$(mde-connector completion zsh)"``."""
    return (f"# {PROG} completion for zsh (generated by '{PROG} completion zsh').\n"
            f"# Load it from ~/.zshrc: eval \"$({PROG} completion zsh)\"\n"
            "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit; }\n"
            "autoload -U +X bashcompinit && bashcompinit\n"
            + bash_script(nodes, manifest).split("\n", 1)[1])


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_script(nodes: list[Node], manifest: Any) -> str:
    """``complete`` lines for fish, one per command, option and action."""
    lines = [f"# {PROG} completion for fish (generated by '{PROG} completion fish').", f"complete -c {PROG} -f"]
    for node in nodes:
        words = node.path.split()
        if words:
            if len(words) == 1:
                cond = f"__fish_seen_subcommand_from {words[0]}"
                # 'run' is also 'playbook run': not when a parent command names it.
                parents = [n.path for n in nodes if n.path and " " not in n.path and words[0] in n.subcommands]
                if parents:
                    cond += f"; and not __fish_seen_subcommand_from {' '.join(parents)}"
            else:
                cond = f"__fish_seen_subcommand_from {words[0]}; and __fish_seen_subcommand_from {words[-1]}"
        else:
            cond = "__fish_use_subcommand"
        if node.subcommands:
            others = " ".join(node.subcommands)
            sub_cond = cond if not words else f"{cond}; and not __fish_seen_subcommand_from {others}"
            for name, text in node.subcommands.items():
                lines.append(f"complete -c {PROG} -n {_fish_quote(sub_cond)} -a {name} -d {_fish_quote(text)}")
        elif node.positional and node.positional not in (FILE, ANY):
            lines.append(f"complete -c {PROG} -n {_fish_quote(cond)} -a {_fish_quote(node.positional)}")
        elif node.positional == FILE:
            lines.append(f"complete -c {PROG} -n {_fish_quote(cond)} -F")
        if not words:
            cond = "true"
        seen: set[str] = set()
        for opt in node.options:
            if opt in seen:
                continue
            seen.add(opt)
            flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
            kind = node.values.get(opt)
            extra = ""
            if kind == FILE:
                extra = " -r -F"
            elif kind == PARAM:
                params = " ".join(sorted({p for v in _params(manifest).values() for p in v.split()}))
                extra = f" -x -a {_fish_quote(params)}"
            elif kind == ANY:
                extra = " -x"
            elif kind:
                extra = f" -x -a {_fish_quote(kind)}"
            lines.append(f"complete -c {PROG} -n {_fish_quote(cond)} {flag}{extra}")
    return "\n".join(lines) + "\n"


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (bash, zsh or fish) of the
    command-line ``parser`` (every command built)."""
    from connector.manifest import load_manifest

    manifest = load_manifest()
    nodes = tree(parser, manifest)
    return {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[shell](nodes, manifest)
