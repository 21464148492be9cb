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
  A run carries a lease (owner, heartbeat, expiry) while it executes: only a
  run whose lease expired or whose owner process is gone from this host is
  resumed, so a run another live process executes is never executed twice,
  and manual runs (``playbook run``) are never resumed here.

Timestamps are compared as canonical strings with seven fractional digits,
Microsoft's precision, so nothing is lost to Python's microseconds.

No single alert stops a poll. An alert that cannot be taken in (no usable id
or time, a value of the wrong type, nesting too deep to store, a store write
that fails) is *quarantined*: recorded in the store with its id, a one-line
reason, when it was first and last seen and how many times it failed
(``mde-connector quarantine list``, and ``quarantined`` in ``watch --output
json``), and the poll goes on with the next alert. The watermark may move past
a quarantined alert: it is recorded, so it is not lost. When the cause was a
store write that failed (transient), the alert's body is kept and the alert
is retried at the start of later polls; other causes lie in the alert itself
and it is retried only when the overlap fetches it again. Either way an alert
is tried at most :data:`QUARANTINE_ATTEMPTS` times in all, then stays in
quarantine (``skipped_quarantined`` counts it when fetched again).

A store that cannot be written at all (a full disk, a read-only file, an I/O
error, a write lock never granted) is not the alert's fault: the poll ends
there with one sentence, before the watermark passes that alert, and the
next poll starts again from it. The same holds when even the quarantine
record cannot be written.

An alert dated in the future (a wrong clock at the source, say) is taken in
once and flagged (``implausible_time``), but the watermark never moves beyond
the poller's now plus :data:`MAX_CLOCK_SKEW`, so alerts created afterwards
are still fetched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from connector.errors import ConfigError, ConnectorError, StoreError
from connector.runtime.engine import matching_playbooks, run_playbook, triggered_run_id
from connector.runtime.playbooks import Playbook
from connector.runtime.store import Store, new_owner, utc_now
from connector.sdk import AlertClient, Context
from connector.severity import container_fields
from connector.text import db_json, db_text, escape_text

log = logging.getLogger("connector.poller")

#: How far ahead of this machine's clock an alert's time may be before it is
#: called implausible; the watermark never moves beyond now plus this.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: How many times in all a quarantined alert is tried before it stays in
#: quarantine.
QUARANTINE_ATTEMPTS = 3
#: A quarantined alert's body is kept for a retry only up to this size
#: (characters of JSON); larger ones are recorded without it.
QUARANTINE_BODY_LIMIT = 1_000_000

# Defender API names, then Microsoft Graph alerts_v2 names (source: graph).
FIELDS = ("alertCreationTime", "lastUpdateTime", "createdDateTime", "lastUpdateDateTime")
SEEN_RETENTION = timedelta(days=2)
_TS = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,7})\d*)?(Z|[+-]00:?00)?$")


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
    #: alerts quarantined by this poll: ``id``, ``reason``, ``attempts``, ``transient``
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    #: alerts taken in whose time is beyond now + MAX_CLOCK_SKEW: ``id``, ``time``
    implausible_time: list[dict[str, Any]] = field(default_factory=list)
    #: alerts fetched again but left in quarantine (tried often enough)
    skipped_quarantined: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "processed_count": len(self.processed),
            "skipped_already_seen": self.skipped_seen,
            "playbook_runs": self.playbook_runs,
            "checkpoint": self.checkpoint,
            "errors": self.errors,
            "quarantined": self.quarantined,
            "implausible_time": self.implausible_time,
            "skipped_quarantined": self.skipped_quarantined,
        }


class Poller:
    """Turns new Defender alerts into containers and triggered playbook runs.

    ``client`` is a DefenderClient, ``store`` a Store, ``context_factory()``
    returns an ActionContext for playbook runs (one per worker thread is
    fine), ``playbooks`` the loaded playbooks whose trigger may match.
    Setting ``stop_event`` stops a poll after the alert or playbook step in
    hand; queued runs stay pending.
    """

    def __init__(
        self,
        *,
        client: AlertClient,
        store: Store,
        context_factory: Callable[[], Context] | None,
        playbooks: list[Playbook],
        time_field: str = "alertCreationTime",
        lookback: timedelta = timedelta(hours=24),
        overlap: timedelta = timedelta(minutes=10),
        page_size: int = 1000,
        workers: int = 2,
        max_attempts: int = 3,
        on_alert: Callable[[dict[str, Any], PollStats], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        stop_event: threading.Event | None = None,
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
        self.stop_event = stop_event or threading.Event()
        self.checkpoint_name = f"poller:{time_field}"
        self._given_up: set[str] = set()
        #: this poller's lease owner id: the playbook runs it executes are
        #: leased to it, and runs leased to another live owner are left alone
        self.owner = new_owner()

    # -- checkpoint ----------------------------------------------------------

    def _mark(self, delta: timedelta = timedelta(0)) -> str:
        return canonical_time((self.now() + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")) or ""

    def load_checkpoint(self, since: str | None = None) -> dict[str, Any]:
        """The stored checkpoint, or a fresh one starting ``since`` or the
        look-back before now. ``since`` (a backfill) replaces the watermark.
        A stored watermark beyond now plus :data:`MAX_CLOCK_SKEW` (left by an
        alert dated in the future before the watermark was bounded) is not
        trusted: the poll starts again from the look-back, and the seen marks
        keep alerts already taken in from being taken twice."""
        # ``floor`` is where this watch began (a first run's look-back or a
        # backfill's --since): the overlap never reaches behind it.
        if since:
            return {"field": self.time_field, "watermark": since, "floor": since}
        stored = self.store.checkpoint(self.checkpoint_name)
        if (isinstance(stored, dict) and canonical_time(stored.get("watermark"))
                and stored["watermark"] <= self._mark(MAX_CLOCK_SKEW)):
            mark = stored["watermark"]
            return {"field": self.time_field, "watermark": mark, "floor": canonical_time(stored.get("floor")) or mark}
        start = self._mark(-self.lookback)
        return {"field": self.time_field, "watermark": start, "floor": start}

    # -- polling -----------------------------------------------------------

    def poll_once(self, since: str | None = None) -> PollReport:
        """Fetch every alert at or after the watermark (less the overlap),
        process the ones not seen before, then run (or resume) the pending
        playbook runs. Returns a report; a failure that ends the poll early
        (the API, a store that cannot be written) is a sentence in its
        ``errors``, never an exception."""
        report = PollReport()
        try:
            checkpoint = self.load_checkpoint(since)
        except ConnectorError as err:
            report.errors.append(err.sentence())
            return report
        query_from = max(checkpoint["floor"], shift(checkpoint["watermark"], -self.overlap))
        stats = PollStats(start=checkpoint["watermark"], now=self._mark())
        ceiling = self._mark(MAX_CLOCK_SKEW)
        params = {
            "$filter": f"{self.time_field} ge {query_from}",
            "$orderby": f"{self.time_field} asc",
            "$top": str(self.page_size),
        }
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="playbook") as pool:
            futures: list[Future[Any]] = []
            try:
                self._given_up = {q["alert_id"] for q in self.store.quarantined(self.checkpoint_name)
                                  if q["attempts"] >= QUARANTINE_ATTEMPTS}
                futures.extend(pool.submit(self._run_pending, run) for run in self._pending_runs())
                for alert in self._retriable():
                    if self.stop_event.is_set():
                        break
                    futures.extend(pool.submit(self._run_pending, run)
                                   for run in self._take(alert, checkpoint, ceiling, report, stats))
                for page in self.client.list_alerts(params):
                    for alert in page:
                        if self.stop_event.is_set():
                            break
                        futures.extend(pool.submit(self._run_pending, run)
                                       for run in self._take(alert, checkpoint, ceiling, report, stats))
                    if self.stop_event.is_set():
                        break
            except ConnectorError as err:
                report.errors.append(err.sentence())
            except Exception as exc:  # noqa: BLE001 - a poll ends with a sentence, never a traceback
                log.debug("poll failed", exc_info=True)
                report.errors.append(f"The poll stopped unexpectedly: {_reason(exc).rstrip('.')}; the next poll "
                                     "starts again from the watermark.")
            for future in futures:
                record = future.result()
                if record is not None:
                    report.playbook_runs.append(record)
        try:
            with self.store.transaction() as conn:
                # Persist the start point even when nothing was new (a backfill
                # or a first run's look-back), and forget ids older than the overlap.
                self.store.set_checkpoint(conn, self.checkpoint_name, _stored(checkpoint))
                # Seen marks outlive the overlap by far, so widening --overlap
                # later re-reads alerts without taking them in twice.
                keep = max(2 * self.overlap, SEEN_RETENTION)
                self.store.forget_seen(conn, self.checkpoint_name, shift(checkpoint["watermark"], -keep))
        except ConnectorError as err:
            report.errors.append(err.sentence())
        report.checkpoint = {"field": self.time_field, **_stored(checkpoint)}
        return report

    def _retriable(self) -> list[Any]:
        """Alerts quarantined by a transient cause, to try again."""
        out: list[Any] = []
        for row in self.store.retriable_quarantine(self.checkpoint_name, QUARANTINE_ATTEMPTS):
            try:
                out.append(json.loads(row["alert"]))
            except (ValueError, RecursionError):
                continue
        return out

    def _take(self, alert: Any, checkpoint: dict[str, Any], ceiling: str, report: PollReport,
              stats: PollStats) -> list[dict[str, Any]]:
        """Take one alert in, or quarantine it; returns the playbook runs to
        start. Raises StoreError only when the alert can be neither taken in
        nor quarantined (the poll must stop before the watermark passes it)."""
        stamp: str | None = None
        key = self._alert_key(alert)
        if key in self._given_up or any(q["id"] == key for q in report.quarantined):
            # Tried often enough, or already tried in this poll.
            report.skipped_quarantined += 1
            return []
        try:
            if not isinstance(alert, dict):
                raise ValueError(f"the alert is a JSON {type(alert).__name__}, not an object")
            alert_id = alert.get("id")
            if not isinstance(alert_id, str) or not alert_id.strip():
                raise ValueError("the alert has no usable id")
            if db_text(alert_id) != alert_id:
                raise ValueError("the alert id is not valid Unicode text (it holds a lone surrogate)")
            stamp = canonical_time(alert.get(self.time_field))
            if stamp is None:
                raise ValueError(f"the alert's {self.time_field} is not a UTC ISO-8601 time")
            runs = self._commit_alert(alert, alert_id, stamp, checkpoint, ceiling)
        except Exception as exc:  # noqa: BLE001 - one alert never stops the poll
            if _store_unusable(exc):
                raise StoreError(f"Alert {key} could not be stored: {_reason(exc).rstrip('.')}; this poll stops "
                                 "here and the next one starts again from it.") from None
            self._quarantine(alert, stamp, exc, report)
            return []
        if runs is None:
            report.skipped_seen += 1
            return []
        report.processed.append(alert_id)
        if stamp > ceiling:
            report.implausible_time.append({"id": alert_id, "time": stamp})
        stats.processed += 1
        stats.mark = max(stats.mark, min(stamp, ceiling))
        if self.on_alert:
            try:
                self.on_alert(alert, stats)
            except Exception:  # noqa: BLE001 - a display problem must not stop ingestion
                log.debug("progress display failed for alert %s", escape_text(alert_id), exc_info=True)
        return runs

    def _alert_key(self, alert: Any) -> str:
        """The alert's id as shown and stored in quarantine (a placeholder
        naming its time when it has no usable id)."""
        raw = alert.get("id") if isinstance(alert, dict) else None
        if isinstance(raw, str) and raw.strip():
            return escape_text(raw)[:200]
        when = alert.get(self.time_field) if isinstance(alert, dict) else None
        shown = escape_text(when)[:40] if isinstance(when, str) else f"a JSON {type(when).__name__}"
        return f"(no usable id; {self.time_field} {shown})"

    def _quarantine(self, alert: Any, stamp: str | None, exc: BaseException, report: PollReport) -> None:
        key = self._alert_key(alert)
        reason = _reason(exc)
        transient = isinstance(exc, StoreError)
        body: str | None = None
        try:
            text = db_json(alert)
            body = text if len(text) <= QUARANTINE_BODY_LIMIT else None
        except (ValueError, TypeError, RecursionError):
            body = None
        try:
            attempts = self.store.quarantine_alert(self.checkpoint_name, key, reason, stamp=stamp, alert=body,
                                                   transient=transient)
        except Exception as failure:  # noqa: BLE001 - reported as the reason the poll stops
            raise StoreError(
                f"Alert {key} could not be taken in ({reason}) nor quarantined ({_reason(failure)}); this poll "
                "stops here and the next one starts again from it.",
            ) from None
        log.warning("alert %s quarantined: %s", key, reason)
        report.quarantined.append({"id": key, "reason": reason, "attempts": attempts, "transient": transient})

    def _commit_alert(self, alert: dict[str, Any], alert_id: str, stamp: str,
                      checkpoint: dict[str, Any], ceiling: str) -> list[dict[str, Any]] | None:
        """Take one alert in: container, pending runs, seen mark and watermark
        in one transaction. Returns the runs to start, or None when the alert
        was taken in before (its container data is refreshed if it changed)."""
        with self.store.transaction() as conn:
            previous = self.store.seen_stamp(conn, self.checkpoint_name, alert_id)
            if previous is not None and stamp <= previous:
                self.store.release_quarantine(conn, self.checkpoint_name, alert_id)
                return None
            if previous is not None:
                # lastUpdateTime mode: the alert changed; keep the container
                # current, but it is not a new alert and triggers nothing.
                self.store.upsert_container(conn, alert_id, data=alert, source="poller")
                self.store.mark_seen(conn, self.checkpoint_name, alert_id, stamp)
                self.store.release_quarantine(conn, self.checkpoint_name, alert_id)
                return None
            runs: list[dict[str, Any]] = []
            if self.context_factory is not None:
                runs = [{"id": triggered_run_id(pb.name, alert_id), "playbook": pb, "alert_id": alert_id,
                         "alert": alert} for pb in matching_playbooks(self.playbooks, alert)]
            fields = container_fields(alert_id, alert)
            self.store.upsert_container(conn, alert_id, name=fields.name, severity=fields.severity,
                                        status=fields.status, source="poller", data=alert)
            for run in runs:
                if self.store.playbook_run(run["id"]) is None:
                    self.store.save_playbook_run(
                        conn, run["id"], playbook=run["playbook"].name, container=alert_id, trigger="new_alert",
                        status="pending", record={"alert": alert}, started_at=utc_now(), finished_at=None)
                    # Leased to this poller here, in the alert's transaction,
                    # rather than in one more when a worker starts it (a
                    # crash leaves the lease of a dead process: the run is
                    # resumed at the next start).
                    self.store.lease_in(conn, run["id"], self.owner)
            self.store.mark_seen(conn, self.checkpoint_name, alert_id, stamp)
            self.store.release_quarantine(conn, self.checkpoint_name, alert_id)
            # An alert dated in the future moves the watermark no further than
            # the clock-skew allowance, so later alerts are still fetched.
            checkpoint["watermark"] = max(checkpoint["watermark"], min(stamp, ceiling))
            self.store.set_checkpoint(conn, self.checkpoint_name, _stored(checkpoint))
        return runs

    def _pending_runs(self) -> list[dict[str, Any]]:
        """Runs to start first: those a crash left pending or running, and
        triggered runs that failed (a transient API error, say) with attempts
        left out of ``max_attempts``. Manual runs are never resumed here."""
        if self.context_factory is None:
            return []
        by_name = {pb.name: pb for pb in self.playbooks}
        pending = []
        for row in self.store.pending_playbook_runs(self.max_attempts):
            playbook = by_name.get(row["playbook"])
            if playbook is None or row.get("trigger") == "manual" or self.store.leased_elsewhere(row, self.owner):
                continue
            alert = (row.get("record") or {}).get("alert")
            if alert is None:  # the engine's record replaced the queued one
                alert = (self.store.container(row["container"]) or {}).get("data") or None
            pending.append({"id": row["id"], "playbook": playbook, "alert_id": row["container"], "alert": alert})
        return pending

    def _run_pending(self, run: dict[str, Any]) -> dict[str, Any] | None:
        if self.context_factory is None:  # only queued when there is one
            return None
        if self.stop_event.is_set():  # stopping: queued runs stay queued, free for any process
            with contextlib.suppress(Exception):
                self.store.release_playbook_run(run["id"], self.owner)  # leased when queued
            return None
        counting: Store | None = None
        try:
            if not self.store.claim_playbook_run(run["id"], self.owner):
                return None  # another live process is running it
            context = self.context_factory()
            # Counted with the run's first write (see Store.later), on the
            # store the run writes to: a run that wrote nothing made no attempt.
            run_store = context.store
            if isinstance(run_store, Store):
                counting = run_store
                counting.later(lambda conn: run_store.count_attempt(conn, run["id"]))
            else:  # run_playbook refuses such a context; the attempt counts as before
                self.store.start_attempt(run["id"])
            record = run_playbook(run["playbook"], alert_id=run["alert_id"], context=context,
                                  trigger="new_alert", trigger_alert=run.get("alert"), run_id=run["id"],
                                  owner=self.owner, stop=self.stop_event)
        except ConnectorError as err:
            log.warning("playbook %s on alert %s failed: %s", run["playbook"].name, run["alert_id"], err.sentence())
            return {"id": run["id"], "status": "failed", "error": err.sentence()}
        except Exception as exc:  # noqa: BLE001 - one run never ends the poll
            log.warning("playbook %s on alert %s failed: %s", run["playbook"].name, run["alert_id"], _reason(exc))
            return {"id": run["id"], "status": "failed", "error": f"The run failed unexpectedly ({_reason(exc)})."}
        finally:
            # The engine releases the lease of a run it ends; a run that never
            # got that far (it raised, or had succeeded already) is released
            # here, so this poller's next poll or another process may take it.
            with contextlib.suppress(Exception):
                self.store.release_playbook_run(run["id"], self.owner)
            if counting is not None:  # a run refused before it started holds its count still
                counting.drop_later()
        return {"id": record.get("id", run["id"]), "status": record.get("status")}

    def run_forever(self, interval: float, on_poll: Callable[[PollReport], None] | None = None,
                    since: str | None = None) -> None:
        """Poll every ``interval`` seconds until :attr:`stop_event` is set;
        the first poll starts at ``since`` when given. A poll that fails is
        reported (a sentence in its report's ``errors``) and the next poll
        comes at the usual time."""
        while not self.stop_event.is_set():
            try:
                report = self.poll_once(since)
            except ConnectorError as err:
                report = PollReport(errors=[err.sentence()])
            except Exception as exc:  # noqa: BLE001 - a service outlives one bad poll
                report = PollReport(errors=[f"The poll failed unexpectedly: {_reason(exc).rstrip('.')}; the "
                                            "next poll tries again."])
            if report.checkpoint:
                since = None  # the backfill's start is stored; later polls go on from the watermark
            if on_poll:
                on_poll(report)
            self.stop_event.wait(interval)


# What SQLite says when the whole store, not one alert's data, is the problem.
_STORE_WIDE = ("disk is full", "readonly", "disk i/o error", "not writable", "cannot be opened")


def _store_unusable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store cannot be written at all (so every
    alert would fail the same way), rather than this alert's write failing."""
    return isinstance(exc, StoreError) and any(marker in exc.message.lower() for marker in _STORE_WIDE)


def _reason(exc: BaseException) -> str:
    """One line naming what went wrong with an alert."""
    if isinstance(exc, ConnectorError):
        text = exc.sentence()
    elif isinstance(exc, RecursionError):
        text = "nested too deeply to process (RecursionError)"
    else:
        detail = " ".join(str(exc).split())
        text = f"{detail} ({type(exc).__name__})" if detail else type(exc).__name__
        if isinstance(exc, ValueError) and detail.startswith("the alert"):
            text = detail
    return escape_text(text)[:300]


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
