"""``mde-connector``: run actions, inspect the store, run the simulator and demo.

Exit codes (fixed contract): 0 success, 1 the action failed, 2 invalid input or
configuration. Errors are one sentence on stderr, never a traceback. Heavy
modules (requests, msal, jsonschema, sqlite) are imported only by the command
that needs them, so ``--help`` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from connector import __version__
from connector.cli.tables import View, add_view_options, prepare_view
from connector.cli.tables import render_result as render_view
from connector.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK, ConfigError, ConnectorError, InputError, redact
from connector.text import dumps_output, escape_text, write_output

# Subcommands implemented in other modules: name -> (module, help). Each module
# has ``add_arguments(parser)`` and ``run(args) -> int`` and imports nothing
# heavy at module level.
EXTERNAL_COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("connector.cli.demo", "run the whole product against the built-in simulator (no tenant needed)"),
    "simulator": ("mde_simulator.cli", "run the Defender + Entra ID simulator on loopback"),
    "watch": ("connector.cli.watch", "trigger on new alerts: containers + playbook runs"),
    "playbook": ("connector.cli.playbook", "validate or run playbooks"),
    "runs": ("connector.cli.runs", "playbook run records in the local store"),
    "quarantine": ("connector.cli.quarantine", "alerts the watcher could not take in"),
    "console": ("connector.cli.console", "local web console: alerts, files, actions and the playbook editor"),
    "config": ("connector.cli.config_cmd", "show the effective configuration or check it (no network)"),
    "completion": ("connector.cli.completion", "print a shell completion script (bash, zsh or fish)"),
    "artifacts": ("connector.cli.artifacts", "artifacts in the local store"),
    "containers": ("connector.cli.containers", "containers (alerts) in the local store"),
}


class _RedactingFormatter(logging.Formatter):
    """Log lines with secrets redacted and control characters escaped (a
    logged URL or body may hold API text); an exception attached to a record
    (msal logs some with a traceback) is shown as one line, its type and
    message."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(escape_text(line) for line in redact(super().format(record)).split("\n"))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        exc = ei[1]
        return f"  ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})" if exc is not None else ""


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("connector")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.propagate = False
    if verbose:
        # msal logs request details at DEBUG, including bodies; keep it at INFO.
        logging.getLogger("msal").setLevel(logging.INFO)
        logging.getLogger("msal").addHandler(handler)


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one sentence and exit code 2,
    with "did you mean" for a misspelt command or choice.

    Every command and subcommand accepts ``--verbose``, declared here and
    nowhere else (``main`` reads it from argv before parsing); a second
    declaration is an argparse conflict, not silently resolved.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", "-v", action="store_true", help="log details (secrets redacted) to stderr")

    def error(self, message: str) -> Any:
        from connector.cli.hints import usage_error

        raise usage_error(self.prog, message)


def _add_common(p: argparse.ArgumentParser, output: bool = True) -> None:
    from connector.cli.local import add_state_dir

    p.add_argument("--config", metavar="FILE", help="instance configuration JSON (default: $MDE_CONFIG)")
    add_state_dir(p)
    if output:
        p.add_argument("--output", choices=["table", "json"], default="table", help="output format")


_ALL_COMMANDS = "*"


def build_parser(command: str = _ALL_COMMANDS) -> argparse.ArgumentParser:
    """The argument parser for every subcommand.

    ``command`` is the subcommand about to be parsed (``main`` knows it from
    argv): the options of the other external commands are then left out, so
    their modules are not imported (the simulator's pulls in http.server,
    jwt and cryptography: ~35 ms of every ``run``). By default every command
    is complete.
    """
    parser = _Parser(prog="mde-connector", description="Microsoft Defender for Endpoint connector.")
    parser.add_argument("-V", "--version", action="version", version=f"mde-connector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run an action (see 'mde-connector actions')",
                         description="Run an action. 'mde-connector run ACTION --help' describes one action.")
    run.add_argument("action", help="action name, e.g. get_alert_related_files")
    run.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                     help="an action parameter (repeatable)")
    _add_common(run)
    add_view_options(run, limit="at most N files (default: a page on a terminal, all when piped; 0: all)")

    tc = sub.add_parser("test-connectivity", help="check credentials, permissions and API reachability")
    _add_common(tc)

    acts = sub.add_parser("actions", help="list the actions the manifest declares")
    acts.add_argument("--output", choices=["table", "json"], default="table", help="output format")

    hlp = sub.add_parser("help", help="show a command's help, e.g. 'mde-connector help runs list'")
    hlp.add_argument("topic", nargs="*", metavar="COMMAND", help="command (and subcommand or action)")

    man = sub.add_parser("manifest", help="manifest tools")
    man_sub = man.add_subparsers(dest="manifest_command", metavar="SUBCOMMAND", parser_class=_Parser)
    mv = man_sub.add_parser("validate", help="validate manifest.json against its schema")
    mv.add_argument("path", nargs="?", help="manifest file (default: the installed one)")
    mv.add_argument("--output", choices=["table", "json"], default="table", help="output format")

    for name, (module, help_text) in EXTERNAL_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        if command not in (_ALL_COMMANDS, name):
            continue
        try:
            importlib.import_module(module).add_arguments(p)
        except ImportError as exc:
            # An optional dependency (or the module itself) is not installed:
            # reported by name when the command is used, whatever its options.
            p.set_defaults(_missing=exc.name or module)
    return parser


def _emit(result: Any, output: str, spec: Any = None, view: View | None = None) -> int:
    if output == "json":
        # Streamed: a 100,000-file result is never one string in memory.
        write_output(result.to_dict(), sys.stdout.write)
        sys.stdout.flush()
    elif result.ok:
        print(render_view(result, spec, view or View()))
    if not result.ok:
        print(f"mde-connector: {escape_text(result.message)}", file=sys.stderr)
    return int(result.exit_code)


# -- commands ---------------------------------------------------------------


def _progress_printer(enabled: bool) -> Callable[[str], None]:
    if not enabled:
        return lambda message: None

    def show(message: str) -> None:
        print(f"… {escape_text(message)}", file=sys.stderr, flush=True)

    return show


def check_utf8(name: str, value: Any) -> None:
    """Raise InputError naming ``name`` when ``value`` is a string holding
    bytes that are not UTF-8 (argv arrives with them as lone surrogates)."""
    if not isinstance(value, str):
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{name} holds bytes that are not UTF-8; pass it as UTF-8 text.") from None


def cmd_run(args: argparse.Namespace, action: str | None = None) -> int:
    from connector.actions import ActionContext, run_action
    from connector.manifest import load_manifest
    from connector.sdk import ActionResult

    name = action or args.action
    spec = None
    params: dict[str, Any] = {}
    view = None
    try:
        from connector.cli.hints import find_action, take_alert_id

        spec = find_action(load_manifest(), name)
        view = prepare_view(args, spec)
        params = spec.params_from_cli(args.param)
        if "alert_id" in params:
            params["alert_id"] = take_alert_id(params["alert_id"], lambda m: print(m, file=sys.stderr))
        for key, value in params.items():
            check_utf8(f"Parameter '{escape_text(key)}'", key)
            check_utf8(f"Parameter '{key}'", value)
        spec.validate_params(params)  # invalid input is reported before configuration is read
        from connector.cli.local import load_cli_config
        from connector.runtime.store import Store

        config = load_cli_config(args)
        progress = _progress_printer(args.output == "table" and sys.stderr.isatty())
        context = ActionContext(config=config, store=Store.open(config.state_dir), progress=progress,
                                client_factory=_client_factory(progress))
    except ConnectorError as err:
        result = ActionResult.failure(spec.name if spec else name, err, params)
        return _emit(result, args.output, spec)
    # A large alert allocates millions of objects that all live until the
    # output is written; the cyclic collector would walk them again and
    # again. Nothing here builds cycles worth collecting early.
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = run_action(spec.name, params, context)
        return _emit(result, args.output, spec, view)
    finally:
        if collecting:
            gc.enable()


def cmd_actions(args: argparse.Namespace) -> int:
    from connector.manifest import load_manifest

    manifest = load_manifest()
    if getattr(args, "output", "table") == "json":
        print(dumps_output([{"name": a.name, "display_name": a.display_name, "description": a.description,
                             "permissions": list(a.permissions), "read_only": a.read_only,
                             "parameters": sorted(a.parameters_schema.get("properties", {}))}
                            for a in manifest.actions]))
        return EXIT_OK
    from connector.cli.tables import print_items

    print_items("actions", [{"name": a.name, "display_name": a.display_name, "description": a.description,
                             "permissions": ", ".join(a.permissions)} for a in manifest.actions], View())
    print("\nRun 'mde-connector run ACTION --help' for an action's parameters and outputs.")
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace) -> int:
    from connector.manifest import validate_manifest_file

    if args.manifest_command != "validate":
        raise ConfigError("manifest: choose a subcommand.", hint="Try 'mde-connector manifest validate'.")
    report = validate_manifest_file(args.path)
    if getattr(args, "output", "table") == "json":
        print(dumps_output({"valid": True, "file": args.path, "report": str(report).splitlines()}))
        return EXIT_OK
    print(report)
    return EXIT_OK


def _action_help(argv: list[str]) -> int | None:
    """``run ACTION --help`` prints the manifest-generated help of that action,
    wrapped to the terminal (at most 80 columns) and ending with an example."""
    if len(argv) >= 2 and argv[0] == "run" and any(a in ("-h", "--help") for a in argv[1:]):
        positional = [a for a in argv[1:] if not a.startswith("-")]
        if positional:
            import shutil

            from connector.cli.hints import action_help, find_action
            from connector.manifest import load_manifest

            width = min(80, shutil.get_terminal_size((80, 24)).columns)
            print(action_help(find_action(load_manifest(), positional[0]), width=max(40, width)))
            return EXIT_OK
    return None


def _client_factory(progress: Callable[[str], None]) -> Callable[[Any], Any]:
    """The action's client as :class:`ActionContext` builds it by default,
    telling ``progress`` about retries and rate-budget waits."""

    def build(config: Any) -> Any:
        from connector.cli.local import tell_progress
        from connector.http.graph import client_for

        return tell_progress(client_for(config), progress)

    return build


def cmd_help(args: argparse.Namespace) -> int:
    """``help [COMMAND ...]``: the same text as ``COMMAND ... --help``."""
    topic = [t for t in args.topic if t not in ("-h", "--help")]
    if not topic:
        build_parser().print_help()
        return EXIT_OK
    if topic[0] == "help":
        return cmd_help(argparse.Namespace(topic=topic[1:]))
    return main([*topic, "--help"])


def _command_name(argv: Sequence[str]) -> str:
    """The subcommand in argv: the first word that is not an option (the
    top-level options take no value), or "" when there is none."""
    return next((a for a in argv if not a.startswith("-")), "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or "-v" in argv
    _setup_logging(verbose)
    try:
        shown = _action_help(argv)
        if shown is not None:
            return shown
        parser = build_parser(_command_name(argv))
        args, unknown = parser.parse_known_args(argv)
        if getattr(args, "_missing", None):
            raise ConfigError(f"The '{args.command}' command needs the Python module '{args._missing}', "
                              "which is not installed.",
                              hint="Reinstall mde-connector with its dependencies (pip install mde-connector).")
        if unknown:
            parser.parse_args(argv)  # reports them, with the subcommand's usage
        if args.command is None:
            parser.print_help()
            return EXIT_INVALID
        check_utf8("--alert-id", getattr(args, "alert_id", None))
        if getattr(args, "alert_id", None):
            from connector.cli.hints import take_alert_id

            args.alert_id = take_alert_id(args.alert_id, lambda m: print(m, file=sys.stderr))
        if args.command == "completion":
            args.parser_factory = build_parser  # the whole tree, without an import cycle
        if args.command in EXTERNAL_COMMANDS:
            return int(importlib.import_module(EXTERNAL_COMMANDS[args.command][0]).run(args))
        handlers: dict[str, Callable[[argparse.Namespace], int]] = {
            "run": cmd_run,
            "test-connectivity": lambda a: cmd_run(a, "test_connectivity"),
            "actions": cmd_actions,
            "manifest": cmd_manifest,
            "help": cmd_help,
        }
        if args.command == "test-connectivity":
            args.param = []
        return handlers[args.command](args)
    except ConnectorError as err:
        print(f"mde-connector: {escape_text(err.sentence())}", file=sys.stderr)
        return err.exit_code
    except ModuleNotFoundError as exc:
        if os.environ.get("MDE_DEBUG") or not exc.name:
            raise
        # An optional or broken dependency: named, with the fix.
        print(f"mde-connector: this command needs the Python module '{escape_text(exc.name)}', which is not "
              "installed; reinstall mde-connector with its dependencies.", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("mde-connector: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one sentence, no traceback
        if os.environ.get("MDE_DEBUG"):  # developers only: the full traceback
            raise
        print(f"mde-connector: internal error ({exc.__class__.__name__}: {escape_text(redact(str(exc))[:200])}); "
              "please report it with the output of --verbose.", file=sys.stderr)
        return EXIT_FAILED
