"""``mde-connector watch``: the new-alert trigger as a command.

``--once`` for cron, ``--interval`` for a service (at least
:data:`MIN_INTERVAL` seconds; not with ``--once``), ``--since`` for backfills.
SIGTERM/SIGINT are acknowledged at once and stop it cleanly after the alert
or playbook step in hand (an alert's container and checkpoint commit
together, so nothing is half-done); queued playbook runs stay pending, waits
for the rate budget end early, and the exit code is 130 (SIGINT) or 143
(SIGTERM). See :mod:`connector.runtime.stopping`.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING, Any

from connector.errors import ConfigError
from connector.text import dumps_output, escape_text

if TYPE_CHECKING:  # the modules themselves are imported by the functions that run (see bench/NOTES.md)
    from connector.config import Config
    from connector.http.client import DefenderClient
    from connector.runtime.playbooks import Playbook
    from connector.runtime.poller import Poller, PollReport
    from connector.runtime.stopping import StopSignals
    from connector.sdk import Context

MIN_INTERVAL = 1.0
"""The shortest ``--interval`` in seconds: a shorter one would only spend the
API rate budget on empty polls."""
DEFAULT_INTERVAL = 60.0


def _interval(text: str) -> float:
    """``--interval``: a finite number of seconds, at least MIN_INTERVAL."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < MIN_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"{escape_text(repr(text))} is not a number of seconds of at least {MIN_INTERVAL:g}; "
            f"pass e.g. --interval {DEFAULT_INTERVAL:g}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the watch command."""
    parser.add_argument("--once", action="store_true", help="poll once and exit (for cron)")
    parser.add_argument("--interval", type=_interval, default=None, metavar="SECONDS",
                        help=f"seconds between polls when running as a service, at least {MIN_INTERVAL:g} "
                             f"(default {DEFAULT_INTERVAL:g}); not with --once")
    parser.add_argument("--since", metavar="TIME",
                        help="backfill from this ISO-8601 UTC time or duration ago (e.g. 6h, 2d)")
    parser.add_argument("--lookback", default="24h", metavar="DURATION",
                        help="how far back the first run looks (default 24h)")
    parser.add_argument("--overlap", default="10m", metavar="DURATION",
                        help="re-read this far behind the watermark for alerts Defender shows late (default 10m)")
    parser.add_argument("--field", choices=["alertCreationTime", "lastUpdateTime", "createdDateTime",
                                            "lastUpdateDateTime"], default="alertCreationTime",
                        help="timestamp the watermark follows (default alertCreationTime; with source graph the "
                        "Defender names map to createdDateTime and lastUpdateDateTime)")
    parser.add_argument("--service-source", metavar="NAME",
                        help="source graph only: take only alerts of this Graph serviceSource, e.g. "
                        "microsoftDefenderForEndpoint (default: all sources)")
    parser.add_argument("--workers", type=int, default=2, help="parallel playbook runs (default 2)")
    parser.add_argument("--max-attempts", type=int, default=3,
                        help="attempts of a triggered playbook run that fails, across polls (default 3)")
    parser.add_argument("--page-size", type=int, default=1000, help="alerts per page ($top, max 10000)")
    parser.add_argument("--playbook", action="append", default=[], metavar="FILE",
                        help="playbook file(s) to trigger (default: the shipped playbooks)")
    parser.add_argument("--no-playbooks", action="store_true", help="only create containers")
    parser.add_argument("--config", metavar="FILE", help="instance configuration JSON (default: $MDE_CONFIG)")
    from connector.cli.local import add_state_dir

    add_state_dir(parser)
    parser.add_argument("--output", choices=["table", "json"], default="table", help="output format")


def _client_and_field(args: argparse.Namespace, config: Config) -> tuple[DefenderClient, str]:
    """The client for the configured source and the watermark field in that
    source's names (``--field`` may name either source's field)."""
    from connector.http.client import DefenderClient
    from connector.http.graph import GraphClient, is_graph
    from connector.manifest import load_manifest

    sources = load_manifest().sources
    source = "graph" if is_graph(config) else "defender"
    other = "defender" if source == "graph" else "graph"
    mine, theirs = sources[source]["time_fields"], sources[other]["time_fields"]
    field = args.field
    for kind, name in theirs.items():
        if field == name:
            field = mine[kind]
    service_source = getattr(args, "service_source", None)
    if source == "graph":
        return GraphClient.from_config(config, service_source=service_source), field
    if service_source:
        raise ConfigError("--service-source applies only with source 'graph'; remove it or set source to graph.")
    return DefenderClient.from_config(config), field


def build_poller(args: argparse.Namespace, config: Config, stops: StopSignals | None = None) -> Poller:
    """A Poller wired to the configured client, store and playbooks; with
    ``stops`` (a StopSignals), its stop event and interruptible waits."""
    from connector.actions import ActionContext
    from connector.runtime.poller import Poller, parse_duration
    from connector.runtime.store import Store

    store = Store.open(config.state_dir)
    client, time_field = _client_and_field(args, config)
    if stops is not None:
        stops.interruptible(client)
    playbooks: list[Playbook] = []
    if not args.no_playbooks:
        from connector.runtime.engine import load_shipped_playbooks
        from connector.runtime.playbooks import load_playbook

        playbooks = [load_playbook(p) for p in args.playbook] if args.playbook else load_shipped_playbooks()

    def context_factory() -> Context:
        return ActionContext(config=config, store=store, client_factory=lambda _cfg: client)

    return Poller(client=client, store=store, context_factory=None if args.no_playbooks else context_factory,
                  playbooks=playbooks, time_field=time_field, lookback=parse_duration(args.lookback),
                  overlap=parse_duration(args.overlap, "--overlap"),
                  page_size=args.page_size, workers=args.workers,
                  max_attempts=args.max_attempts, stop_event=stops.event if stops is not None else None)


def run(args: argparse.Namespace) -> int:
    """Run the watcher; exit 0 when every poll succeeded, 1 when one failed,
    130 or 143 when SIGINT or SIGTERM stopped it."""
    from connector.cli.local import load_cli_config
    from connector.runtime.poller import MAX_CLOCK_SKEW, parse_since
    from connector.runtime.stopping import StopSignals

    # Options first: a typo in --since is reported before any configuration is read.
    if args.once and args.interval is not None:
        raise ConfigError("--once polls once and exits, so --interval does not apply to it; pass one of them.")
    since = parse_since(args.since) if args.since else None
    config = load_cli_config(args)
    stops = StopSignals().install()
    poller = build_poller(args, config, stops)
    tty = sys.stderr.isatty() and args.output == "table"
    if tty:
        from connector.cli.local import tell_progress

        # Retries and rate-budget waits show how long they really last,
        # where the backlog's ETA would say 0 s.
        tell_progress(poller.client, lambda message: print(f"\r… {escape_text(message)}   ", end="",
                                                           file=sys.stderr, flush=True))

    def on_alert(alert: dict[str, Any], stats: Any) -> None:
        if tty:
            eta = stats.eta_seconds()
            eta_text = f", ETA {eta:.0f} s" if eta is not None and eta >= 1 else ""
            print(f"\r… {stats.processed} alerts, {stats.fraction() * 100:.0f}% of the backlog{eta_text}   ",
                  end="", file=sys.stderr, flush=True)
        elif args.output == "table":
            # Every field is API text: one escaped line, whatever it holds.
            line = (f"alert {alert.get('id')} {alert.get('severity', '')} {alert.get(poller.time_field)} "
                    f"{' '.join(str(alert.get('title') or '').split())[:60]}")
            print(escape_text(line), file=sys.stderr, flush=True)

    poller.on_alert = on_alert
    failed = False

    def show(report: PollReport) -> None:
        nonlocal failed
        failed = failed or bool(report.errors)
        if tty:
            print(file=sys.stderr)
        if args.output == "json":
            print(dumps_output(report.to_dict()), flush=True)
        else:
            runs = report.playbook_runs
            ok = sum(1 for r in runs if r.get("status") == "success")
            held = f", {len(report.quarantined)} quarantined" if report.quarantined else ""
            print(escape_text(f"{len(report.processed)} new alert(s){held}, {ok}/{len(runs)} playbook run(s) "
                              f"succeeded; watermark {report.checkpoint.get('watermark')}."), flush=True)
        for held_alert in report.quarantined:
            print(f"mde-connector: alert {escape_text(held_alert['id'])} was quarantined: "
                  f"{escape_text(held_alert['reason']).rstrip('.')}. 'mde-connector quarantine list' shows it.",
                  file=sys.stderr)
        skew = int(MAX_CLOCK_SKEW.total_seconds() // 60)
        for odd in report.implausible_time:
            print(f"mde-connector: alert {escape_text(odd['id'])} has an implausible {poller.time_field} "
                  f"{escape_text(odd['time'])}, more than {skew} minutes ahead of this machine's clock; it was "
                  f"taken in, and the watermark stops at now plus {skew} minutes.", file=sys.stderr)
        for error in report.errors:
            print(f"mde-connector: {escape_text(str(error))}", file=sys.stderr)

    try:
        if args.once:
            show(poller.poll_once(since))
        else:
            poller.run_forever(DEFAULT_INTERVAL if args.interval is None else args.interval, show, since=since)
    finally:
        stops.restore()
    return stops.exit_code(1 if failed else 0)
