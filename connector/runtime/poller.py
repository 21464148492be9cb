"""The new-alert trigger: poll ``GET /api/alerts`` without losing or repeating an alert.

Defender has no change feed, so the poller keeps its own watermark:

- it asks for ``$filter=<field> ge <watermark - overlap>`` ordered ascending
  by the same field, and pages through ``@odata.nextLink``. The overlap
  (default 10 minutes) catches alerts that Defender makes visible only after
  later ones, i.e. with a creation time already behind the watermark;
- every alert taken in is remembered (id and timestamp) for the overlap
  window, so alerts re-fetched by the overlap or sharing the watermark's exact
  timestamp are skipped, never repeated, and never confused with each other;
- for each new alert, ONE transaction writes its container, the pending
  playbook runs it triggers, and the advanced checkpoint. A crash (even
  ``kill -9``) before the commit leaves the alert to be fetched again; after it,
  the container exists once and the pending runs are resumed at the next
  start. Playbook runs have stable ids (``<playbook>:<alert id>``) so a resumed
  run replaces, never duplicates, its record; its effects are idempotent too.

Timestamps are compared as canonical strings with seven fractional digits,
Microsoft's precision, so nothing is lost to Python's microseconds.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from connector.errors import ConfigError, ConnectorError

log = logging.getLogger("connector.poller")

# Defender API names, then Microsoft Graph alerts_v2 names (source: graph).
FIELDS = ("alertCreationTime", "lastUpdateTime", "createdDateTime", "lastUpdateDateTime")
SEEN_RETENTION = timedelta(days=2)
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,7})\d*)?(Z|[+-]00:?00)?$")
_SEVERITY = {"high": "high", "medium": "medium", "low": "low", "informational": "informational",
             "unspecified": "informational"}


def canonical_time(value: Any) -> str | None:
    """``2026-11-27T07:00:00.1234567Z`` (7 fractional digits, UTC) or None
    when the value is not a UTC ISO-8601 timestamp."""
    if not isinstance(value, str):
        return None
    match = _TS.match(value.strip())
    if not match:
        return None
    date, clock, frac, _ = match.groups()
    return f"{date}T{clock}.{(frac or '').ljust(7, '0')}Z"


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*")


def parse_duration(text: str, option: str = "--lookback") -> timedelta:
    """``90m``, ``24h``, ``7d`` (also ``s``) as a timedelta; ConfigError naming
    ``option`` otherwise."""
    match = _DURATION.fullmatch(text or "")
    if not match:
        raise ConfigError(f"{option} must be a duration such as 90m, 24h or 7d (got {str(text)[:40]!r}).")
    return timedelta(seconds=float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)])


def parse_since(text: str, now: datetime | None = None) -> str:
    """A watermark from ``--since``: an ISO timestamp or a duration back from
    now such as ``90m``, ``6h``, ``2d``."""
    now = now or datetime.now(timezone.utc)
    if _DURATION.fullmatch(text or ""):
        start = now - parse_duration(text, "--since")
        return canonical_time(start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) or ""
    value = canonical_time(text)
    if value is None:
        raise ConfigError(
            f"--since must be an ISO-8601 UTC time such as 2026-11-27T06:00:00Z or a duration such as 6h "
            f"(got {text[:40]!r}).",
        )
    return value


def _stored(checkpoint: dict[str, Any]) -> dict[str, str]:
    return {"watermark": checkpoint["watermark"], "floor": checkpoint["floor"]}


def shift(stamp: str, delta: timedelta) -> str:
    """A canonical timestamp moved by ``delta``, its 7-digit fraction kept."""
    base = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc) + delta
    return f"{base.strftime('%Y-%m-%dT%H:%M:%S')}.{stamp[20:27] or '0000000'}Z"


@dataclass
class PollReport:
    """What one poll did."""

    processed: list[str] = field(default_factory=list)
    skipped_seen: int = 0
    playbook_runs: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "processed_count": len(self.processed),
            "skipped_already_seen": self.skipped_seen,
            "playbook_runs": self.playbook_runs,
            "checkpoint": self.checkpoint,
            "errors": self.errors,
        }


class Poller:
    """Turns new Defender alerts into containers and triggered playbook runs.

    ``client`` is a DefenderClient, ``store`` a Store, ``context_factory()``
    returns an ActionContext for playbook runs (one per worker thread is
    fine), ``playbooks`` the loaded playbooks whose trigger may match.
    """

    def __init__(
        self,
        *,
        client: Any,
        store: Any,
        context_factory: Callable[[], Any] | None,
        playbooks: list[Any],
        time_field: str = "alertCreationTime",
        lookback: timedelta = timedelta(hours=24),
        overlap: timedelta = timedelta(minutes=10),
        page_size: int = 1000,
        workers: int = 2,
        max_attempts: int = 3,
        on_alert: Callable[[dict[str, Any], PollStats], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        if time_field not in FIELDS:
            raise ConfigError(f"The watch field must be one of {', '.join(FIELDS)} (got {time_field!r}).")
        self.client = client
        self.store = store
        self.context_factory = context_factory
        self.playbooks = playbooks
        self.time_field = time_field
        self.lookback = lookback
        self.overlap = overlap
        self.page_size = max(1, min(10_000, page_size))
        self.workers = max(1, workers)
        self.max_attempts = max(1, max_attempts)
        self.on_alert = on_alert
        self.now = now
        self.stop_event = threading.Event()
        self.checkpoint_name = f"poller:{time_field}"

    # -- checkpoint ----------------------------------------------------------

    def load_checkpoint(self, since: str | None = None) -> dict[str, Any]:
        """The stored checkpoint, or a fresh one starting ``since`` or the
        look-back before now. ``since`` (a backfill) replaces the watermark."""
        # ``floor`` is where this watch began (a first run's look-back or a
        # backfill's --since): the overlap never reaches behind it.
        if since:
            return {"field": self.time_field, "watermark": since, "floor": since}
        stored = self.store.checkpoint(self.checkpoint_name)
        if isinstance(stored, dict) and canonical_time(stored.get("watermark")):
            mark = stored["watermark"]
            return {"field": self.time_field, "watermark": mark, "floor": canonical_time(stored.get("floor")) or mark}
        start = canonical_time((self.now() - self.lookback).strftime("%Y-%m-%dT%H:%M:%S.%fZ")) or ""
        return {"field": self.time_field, "watermark": start, "floor": start}

    # -- polling -----------------------------------------------------------

    def poll_once(self, since: str | None = None) -> PollReport:
        """Fetch every alert at or after the watermark (less the overlap),
        process the ones not seen before, then run (or resume) the pending
        playbook runs. Returns a report."""
        report = PollReport()
        checkpoint = self.load_checkpoint(since)
        query_from = max(checkpoint["floor"], shift(checkpoint["watermark"], -self.overlap))
        now_mark = canonical_time(self.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")) or ""
        stats = PollStats(start=checkpoint["watermark"], now=now_mark)
        params = {
            "$filter": f"{self.time_field} ge {query_from}",
            "$orderby": f"{self.time_field} asc",
            "$top": str(self.page_size),
        }
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="playbook") as pool:
            futures: list[Future[Any]] = [pool.submit(self._run_pending, run) for run in self._pending_runs()]
            try:
                for page in self.client.list_alerts(params):
                    for alert in page:
                        if self.stop_event.is_set():
                            break
                        alert_id = alert.get("id") if isinstance(alert, dict) else None
                        stamp = canonical_time(alert.get(self.time_field)) if isinstance(alert, dict) else None
                        if not isinstance(alert_id, str) or not alert_id or stamp is None:
                            report.errors.append(f"skipped an alert without a usable id or {self.time_field}")
                            continue
                        runs = self._commit_alert(alert, alert_id, stamp, checkpoint)
                        if runs is None:
                            report.skipped_seen += 1
                            continue
                        report.processed.append(alert_id)
                        stats.processed += 1
                        stats.mark = max(stats.mark, stamp)
                        if self.on_alert:
                            self.on_alert(alert, stats)
                        futures.extend(pool.submit(self._run_pending, run) for run in runs)
                    if self.stop_event.is_set():
                        break
            except ConnectorError as err:
                report.errors.append(err.sentence())
            for future in futures:
                record = future.result()
                if record is not None:
                    report.playbook_runs.append(record)
        with self.store.transaction() as conn:
            # Persist the start point even when nothing was new (a backfill or
            # a first run's look-back), and forget ids older than the overlap.
            self.store.set_checkpoint(conn, self.checkpoint_name, _stored(checkpoint))
            # Seen marks outlive the overlap by far, so widening --overlap
            # later re-reads alerts without taking them in twice.
            keep = max(2 * self.overlap, SEEN_RETENTION)
            self.store.forget_seen(conn, self.checkpoint_name, shift(checkpoint["watermark"], -keep))
        report.checkpoint = {"field": self.time_field, **_stored(checkpoint)}
        return report

    def _commit_alert(self, alert: dict[str, Any], alert_id: str, stamp: str,
                      checkpoint: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Take one alert in: container, pending runs, seen mark and watermark
        in one transaction. Returns the runs to start, or None when the alert
        was taken in before (its container data is refreshed if it changed)."""
        from connector.runtime.store import utc_now

        with self.store.transaction() as conn:
            previous = self.store.seen_stamp(conn, self.checkpoint_name, alert_id)
            if previous is not None and stamp <= previous:
                return None
            if previous is not None:
                # lastUpdateTime mode: the alert changed; keep the container
                # current, but it is not a new alert and triggers nothing.
                self.store.upsert_container(conn, alert_id, data=alert, source="poller")
                self.store.mark_seen(conn, self.checkpoint_name, alert_id, stamp)
                return None
            runs: list[dict[str, Any]] = []
            if self.context_factory is not None:
                from connector.runtime.engine import matching_playbooks

                runs = [{"id": f"{pb.name}:{alert_id}", "playbook": pb, "alert_id": alert_id, "alert": alert}
                        for pb in matching_playbooks(self.playbooks, alert)]
            self.store.upsert_container(
                conn, alert_id,
                name=str(alert.get("title") or f"Defender alert {alert_id}")[:200],
                severity=_SEVERITY.get(str(alert.get("severity") or "").lower(), "informational"),
                status=str(alert.get("status") or "New").lower(),
                source="poller",
                data=alert,
            )
            for run in runs:
                if self.store.playbook_run(run["id"]) is None:
                    self.store.save_playbook_run(
                        conn, run["id"], playbook=run["playbook"].name, container=alert_id, trigger="new_alert",
                        status="pending", record={"alert": alert}, started_at=utc_now(), finished_at=None)
            self.store.mark_seen(conn, self.checkpoint_name, alert_id, stamp)
            checkpoint["watermark"] = max(checkpoint["watermark"], stamp)
            self.store.set_checkpoint(conn, self.checkpoint_name, _stored(checkpoint))
        return runs

    def _pending_runs(self) -> list[dict[str, Any]]:
        """Runs to start first: those a crash left pending or running, and
        triggered runs that failed (a transient API error, say) with attempts
        left out of ``max_attempts``."""
        if self.context_factory is None:
            return []
        by_name = {pb.name: pb for pb in self.playbooks}
        pending = []
        for row in self.store.pending_playbook_runs(self.max_attempts):
            playbook = by_name.get(row["playbook"])
            if playbook is None:
                continue
            alert = (row.get("record") or {}).get("alert")
            if alert is None:  # the engine's record replaced the queued one
                alert = (self.store.container(row["container"]) or {}).get("data") or None
            pending.append({"id": row["id"], "playbook": playbook, "alert_id": row["container"], "alert": alert})
        return pending

    def _run_pending(self, run: dict[str, Any]) -> dict[str, Any] | None:
        from connector.runtime.engine import run_playbook

        if self.context_factory is None:  # only queued when there is one
            return None
        self.store.start_attempt(run["id"])
        try:
            record = run_playbook(run["playbook"], alert_id=run["alert_id"], context=self.context_factory(),
                                  trigger="new_alert", trigger_alert=run.get("alert"), run_id=run["id"])
        except ConnectorError as err:
            log.warning("playbook %s on alert %s failed: %s", run["playbook"].name, run["alert_id"], err.sentence())
            return {"id": run["id"], "status": "failed", "error": err.sentence()}
        return {"id": record.get("id", run["id"]), "status": record.get("status")}

    def run_forever(self, interval: float, on_poll: Callable[[PollReport], None] | None = None,
                    since: str | None = None) -> None:
        """Poll every ``interval`` seconds until :attr:`stop_event` is set;
        the first poll starts at ``since`` when given."""
        while not self.stop_event.is_set():
            report = self.poll_once(since)
            since = None
            if on_poll:
                on_poll(report)
            self.stop_event.wait(interval)


@dataclass
class PollStats:
    """Progress of one poll, for a progress display: the watermark moves from
    ``start`` towards ``now``."""

    start: str
    now: str
    mark: str = ""
    processed: int = 0
    started: float = field(default_factory=time.monotonic)

    def fraction(self) -> float:
        """How far the watermark has moved from start to now (0..1)."""
        try:
            a, b, m = (_seconds(self.start), _seconds(self.now), _seconds(self.mark or self.start))
        except ValueError:
            return 0.0
        return 0.0 if b <= a else max(0.0, min(1.0, (m - a) / (b - a)))

    def eta_seconds(self) -> float | None:
        """Seconds left at the current pace, or None before there is a pace."""
        done = self.fraction()
        elapsed = time.monotonic() - self.started
        if done <= 0 or elapsed <= 0:
            return None
        return elapsed * (1 - done) / done


def _seconds(stamp: str) -> float:
    return datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp() + float(
        "0." + stamp[20:27] if len(stamp) > 20 else 0)
