"""``mde-connector console``: start the local web console.

    mde-connector console [--config FILE | --state-dir DIR] [--host H] [--port N]

Prints the URL to open (with a fresh access token) and serves until Ctrl-C.
With a configuration, the console can run actions and playbooks; with only
``--state-dir`` it shows the store and edits playbooks, read-only otherwise.
Mounted by :mod:`connector.cli.main` (``add_arguments`` / ``run``); nothing heavy
is imported before the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from connector.errors import EXIT_OK, ConfigError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the console command."""
    parser.add_argument("--config", metavar="FILE", help="instance configuration JSON (default: $MDE_CONFIG)")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="show this state directory's store without a configuration (actions disabled)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; anything else is reachable from the network)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another host name the browser may use to reach the console (repeatable)")
    parser.add_argument("--playbooks", metavar="DIR",
                        help="where the editor saves playbooks (default: STATE_DIR/playbooks)")
    parser.add_argument("--open", action="store_true", help="open the console in the default browser")


def run(args: argparse.Namespace) -> int:
    """Start the console and serve until interrupted; 0 on Ctrl-C."""
    from connector.console.app import ConsoleApp
    from connector.console.server import ConsoleServer
    from connector.runtime.store import Store

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number; use 0 to 65535 (0: any free port).")
    config = None
    problem = None
    if args.state_dir and not args.config:
        from connector.cli.local import state_dir

        state = state_dir(args)
        problem = "Started with --state-dir only: start the console with --config FILE to run actions."
    else:
        from connector.cli.local import load_cli_config, state_dir

        try:
            config = load_cli_config(args)
            state = config.state_dir
        except ConfigError as err:
            # Showing an existing store needs no credentials: its directory
            # comes from the same rule as for every other command.
            state = state_dir(args)
            if args.config or not (state / "store.sqlite").exists():
                raise
            problem = (f"No usable configuration ({err.message.rstrip('.')}): the store is shown, actions are "
                       "disabled; start the console with --config FILE to run them.")
    store = Store.open(state)
    app = ConsoleApp(store=store, config=config, config_problem=problem,
                     playbook_dir=Path(args.playbooks) if args.playbooks else state / "playbooks")
    try:
        server = ConsoleServer(app, host=args.host, port=args.port, allow_hosts=tuple(args.allow_host))
    except OSError as exc:
        raise ConfigError(f"The console cannot listen on {args.host}:{args.port} ({exc.strerror or exc}).",
                          hint="Choose another --port, or 0 for any free port.") from None
    print("mde-connector console", flush=True)
    print(f"  store:     {state / 'store.sqlite'}", flush=True)
    print(f"  playbooks: {app.playbook_dir}", flush=True)
    if problem:
        print(f"  note:      {problem}", flush=True)
    if args.host not in LOOPBACK:
        print(f"  warning:   listening on {args.host}: anyone who can reach it and has the URL can act "
              "(plain HTTP).", file=sys.stderr, flush=True)
    print(f"\nOpen {server.url}\n(Ctrl-C stops the console)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return EXIT_OK
