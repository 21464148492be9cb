"""``mde-connector watch``: the new-alert trigger as a command.

``--once`` for cron, ``--interval`` for a service, ``--since`` for backfills.
SIGTERM/SIGINT stop it cleanly after the alert in hand (its container and
checkpoint commit together, so nothing is half-done).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the watch command."""
    parser.add_argument("--once", action="store_true", help="poll once and exit (for cron)")
    parser.add_argument("--interval", type=float, default=60.0, metavar="SECONDS",
                        help="seconds between polls when running as a service (default 60)")
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
    parser.add_argument("--output", choices=["table", "json"], default="table", help="output format")
    parser.add_argument("--verbose", "-v", action="store_true", help="log requests (secrets redacted)")


def _client_and_field(args: argparse.Namespace, config: Any) -> tuple[Any, str]:
    """The client for the configured source and the watermark field in that
    source's names (``--field`` may name either source's field)."""
    from connector.client import DefenderClient
    from connector.errors import ConfigError
    from connector.graph import GraphClient, is_graph
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


def build_poller(args: argparse.Namespace, config: Any) -> Any:
    """A Poller wired to the configured client, store and playbooks."""
    from connector.actions import ActionContext
    from connector.runtime.poller import Poller, parse_duration
    from connector.runtime.store import Store

    store = Store.open(config.state_dir)
    client, time_field = _client_and_field(args, config)
    playbooks: list[Any] = []
    if not args.no_playbooks:
        from connector.runtime.engine import load_shipped_playbooks
        from connector.runtime.playbooks import load_playbook

        playbooks = [load_playbook(p) for p in args.playbook] if args.playbook else load_shipped_playbooks()

    def context_factory() -> Any:
        return ActionContext(config=config, store=store, client_factory=lambda _cfg: client)

    return Poller(client=client, store=store, context_factory=None if args.no_playbooks else context_factory,
                  playbooks=playbooks, time_field=time_field, lookback=parse_duration(args.lookback),
                  overlap=parse_duration(args.overlap, "--overlap"),
                  page_size=args.page_size, workers=args.workers,
                  max_attempts=args.max_attempts)


def run(args: argparse.Namespace) -> int:
    """Run the watcher; exit 0 when every poll succeeded, 1 when one failed."""
    from connector.config import load_config
    from connector.runtime.poller import parse_since

    # Options first: a typo in --since is reported before any configuration is read.
    since = parse_since(args.since) if args.since else None
    config = load_config(args.config)
    poller = build_poller(args, config)
    tty = sys.stderr.isatty() and args.output == "table"

    def on_alert(alert: dict[str, Any], stats: Any) -> None:
        if tty:
            eta = stats.eta_seconds()
            eta_text = f", ETA {eta:.0f} s" if eta is not None else ""
            print(f"\r… {stats.processed} alerts, {stats.fraction() * 100:.0f}% of the backlog{eta_text}   ",
                  end="", file=sys.stderr, flush=True)
        elif args.output == "table":
            print(f"alert {alert.get('id')} {alert.get('severity', '')} {alert.get(poller.time_field)} "
                  f"{str(alert.get('title') or '')[:60]}", file=sys.stderr, flush=True)

    poller.on_alert = on_alert

    def stop(signum: int, _frame: Any) -> None:
        poller.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    failed = False

    def show(report: Any) -> None:
        nonlocal failed
        failed = failed or bool(report.errors)
        if tty:
            print(file=sys.stderr)
        if args.output == "json":
            print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2), flush=True)
        else:
            runs = report.playbook_runs
            ok = sum(1 for r in runs if r.get("status") == "success")
            print(f"{len(report.processed)} new alert(s), {ok}/{len(runs)} playbook run(s) succeeded; "
                  f"watermark {report.checkpoint.get('watermark')}.", flush=True)
        for error in report.errors:
            print(f"mde-connector: {error}", file=sys.stderr)

    if args.once:
        show(poller.poll_once(since))
    else:
        poller.run_forever(args.interval, show, since=since)
    return 1 if failed else 0
