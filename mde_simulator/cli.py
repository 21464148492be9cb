"""``mde-connector simulator``: run the Defender + Entra ID simulator in the
foreground until Ctrl-C (SIGINT) or SIGTERM.

At start it prints the connection settings and writes a ready connector
configuration file (``connector-config.json`` in the state directory, mode
0600) with the exact command that uses it.
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import sys
import threading
from typing import Any

from . import EXAMPLE_ALERT_ID, LARGE_ALERT_10K
from .server import Faults, Simulator, SimulatorOptions


def default_state_dir() -> pathlib.Path:
    """``$XDG_STATE_HOME/mde-simulator``, else ``~/.local/state/mde-simulator``:
    never the current directory (it holds a client secret and keys)."""
    import os

    base = os.environ.get("XDG_STATE_HOME") or os.path.join(pathlib.Path.home(), ".local", "state")
    return pathlib.Path(base) / "mde-simulator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.description = (
        "Run a Microsoft Defender for Endpoint + Entra ID simulator on loopback over HTTPS (its own throwaway "
        "CA), with generated alerts and files, Microsoft's rate limits and optional faults, until Ctrl-C. At "
        "start it prints the connection settings and writes a ready connector configuration file "
        "(mode 0600, client secret inside) with the exact command that uses it.")
    parser.epilog = "Example: mde-connector simulator --port 8443 --live-interval 30"
    parser.add_argument(
        "--state-dir", type=pathlib.Path, default=None,
        help="where keys, certificates and the connector config are kept "
             "(default: $XDG_STATE_HOME/mde-simulator, else ~/.local/state/mde-simulator)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data (default: 7)")
    parser.add_argument(
        "--live-interval", type=float, default=None, metavar="SECONDS",
        help="add one new alert every SECONDS (default: off)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0,
        help="speed of the rate-limit clock: 60 makes a minute last one second (default: 1)",
    )
    parser.add_argument("--rate-per-minute", type=int, default=100, help="API calls per app per minute (default: 100)")
    parser.add_argument("--rate-per-hour", type=int, default=1500, help="API calls per app per hour (default: 1500)")
    parser.add_argument(
        "--error-rate", type=float, default=0.0,
        help="share of API calls answered 500/503 at random (default: 0)",
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="delay added to every API call (default: 0)")
    parser.add_argument(
        "--files-page-size", type=int, default=None,
        help="page /api/alerts/{id}/files with @odata.nextLink every N files (default: no paging)",
    )
    parser.add_argument("--output", choices=["table", "json"], default="table",
                        help="how to print the connection settings (json: one object on one line)")


def _validate(args: argparse.Namespace) -> str | None:
    if not 0 <= args.port <= 65535:
        return "--port must be between 0 and 65535."
    if args.time_scale <= 0:
        return "--time-scale must be positive."
    if args.rate_per_minute < 1 or args.rate_per_hour < 1:
        return "--rate-per-minute and --rate-per-hour must be at least 1."
    if not 0.0 <= args.error_rate <= 1.0:
        return "--error-rate must be between 0 and 1."
    if args.latency_ms < 0:
        return "--latency-ms must not be negative."
    if args.live_interval is not None and args.live_interval <= 0:
        return "--live-interval must be positive."
    if args.files_page_size is not None and args.files_page_size < 1:
        return "--files-page-size must be at least 1."
    return None


def banner(sim: Simulator, config_path: pathlib.Path) -> str:
    """The startup text: connection settings, config file and how to use it."""
    opts = sim.options
    lines = [
        f"Defender for Endpoint + Entra ID simulator listening on {sim.base_url}",
        f"  tenant_id      {sim.tenant_id}",
        f"  client_id      {sim.client_id}  (roles File.Read.All, Alert.Read.All)",
        f"  authority_url  {sim.authority_url}",
        f"  api_base_url   {sim.api_base_url}",
        f"  token scope    {sim.token_scope}",
        f"  CA to trust    {sim.ca_bundle}",
        f"  certificate    {sim.client_cert_pem} (PEM, key + cert; PFX: {sim.client_cert_pfx})",
        f"  rate limits    {opts.rate_per_minute}/min, {opts.rate_per_hour}/h per app"
        + (f", clock x{opts.time_scale:g}" if opts.time_scale != 1 else ""),
        f"  alerts         {len(sim.alerts)} (e.g. {EXAMPLE_ALERT_ID}; 10,000 files: {LARGE_ALERT_10K})",
        "",
        f"Connector configuration (client secret inside, mode 0600): {config_path}",
        "Use it:",
        f"  mde-connector run get_alert_related_files --param alert_id={EXAMPLE_ALERT_ID}"
        f" --config {config_path}",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def settings(sim: Any, config_path: pathlib.Path) -> dict[str, Any]:
    """The connection settings of a started simulator (no secret: the client
    secret is only in the 0600 configuration file)."""
    from . import EXAMPLE_ALERT_ID

    return {"base_url": sim.base_url, "tenant_id": sim.tenant_id, "client_id": sim.client_id,
            "authority_url": sim.authority_url, "api_base_url": sim.api_base_url, "token_scope": sim.token_scope,
            "ca_bundle": str(sim.ca_bundle), "client_certificate_pem": str(sim.client_cert_pem),
            "client_certificate_pfx": str(sim.client_cert_pfx), "alerts": len(sim.alerts),
            "example_alert_id": EXAMPLE_ALERT_ID, "config_file": str(config_path)}


def run(args: argparse.Namespace) -> int:
    """Start the simulator, print the banner, serve until SIGINT/SIGTERM.

    Returns 0 after a clean stop, 2 for invalid options, 1 if it cannot start.
    """
    problem = _validate(args)
    if problem:
        print(f"mde-connector: {problem}", file=sys.stderr)
        return 2
    options = SimulatorOptions(
        seed=args.seed,
        rate_per_minute=args.rate_per_minute,
        rate_per_hour=args.rate_per_hour,
        time_scale=args.time_scale,
        faults=Faults(latency_ms=args.latency_ms, error_rate=args.error_rate),
        files_page_size=args.files_page_size,
        live_interval=args.live_interval,
        host=getattr(args, "host", "127.0.0.1"),
        port=args.port,
    )
    state_dir = pathlib.Path(args.state_dir or default_state_dir()).expanduser().resolve()
    try:
        sim = Simulator(state_dir, options).start()
    except OSError as exc:
        print(f"mde-connector: the simulator could not start on port {args.port}: {exc.strerror or exc}.",
              file=sys.stderr)
        return 1
    stopped = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stopped.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _stop)
    try:
        config_path = sim.write_config(state_dir / "connector-config.json")
        if getattr(args, "output", "table") == "json":
            import json

            print(json.dumps(settings(sim, config_path)), flush=True)
        else:
            print(banner(sim, config_path), flush=True)
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if getattr(args, "output", "table") != "json":
        print("Simulator stopped.", flush=True)
    return 0
