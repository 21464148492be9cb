"""SOAR ingestion (``on poll``) on top of the connector's own poller.

:class:`connector.runtime.poller.Poller` decides which alerts are new: the
watermark with its overlap, ``$orderby`` ascending, every ``@odata.nextLink``
page, alerts re-fetched by the overlap skipped by id. Here it runs against
:class:`PollState`, a store kept in SOAR's ``ingest_state`` instead of SQLite.
Every alert it takes in becomes one container (source_data_identifier = the
alert id) with one alert artifact and, when the asset says so, one file
artifact per related file, mapped by :func:`connector.artifacts.build_artifacts`.

Checkpoint after containers: the poller's state is written into
``ingest_state`` only after the last container and artifact were handed to
SOAR, and the SDK commits ``ingest_state`` only once they were saved; a poll
that fails part way leaves the checkpoint where it was (re-fetched alerts are
de-duplicated by their source data identifiers).

A bad alert never ends the poll: one without an id or time is skipped and
reported by the poller; one that cannot be turned into a container is
quarantined (kept in the state with the reason, reported, not retried); one
whose files cannot be fetched still gets its container and alert artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from connector.artifacts import build_artifacts
from connector.errors import ConnectorError
from connector.runtime.poller import Poller, PollStats
from connector.text import db_text, escape_text, finite

if TYPE_CHECKING:
    from connector.runtime.store import Store

STATE_KEY = "mde_poller"
#: SOAR's default severities; the connector's "informational" is below them.
SOAR_SEVERITY = {"high": "high", "medium": "medium", "low": "low", "informational": "low"}
#: The alert artifact: CEF key -> alert field, and the CEF keys' contains types.
ALERT_CEF = {
    "defenderAlertId": "id",
    "defenderIncidentId": "incidentId",
    "deviceExternalId": "machineId",
    "deviceHostname": "computerDnsName",
    "alertTitle": "title",
    "alertSeverity": "severity",
    "alertStatus": "status",
    "alertCategory": "category",
    "detectionSource": "detectionSource",
    "threatName": "threatName",
    "alertCreationTime": "alertCreationTime",
    "lastUpdateTime": "lastUpdateTime",
}
ALERT_CEF_TYPES = {
    "defenderAlertId": ["defender alert id"],
    "deviceExternalId": ["defender device id"],
    "deviceHostname": ["host name"],
}
QUARANTINE_LIMIT = 200


def clean(value: Any) -> Any:
    """``value`` as SOAR's database stores it: lone surrogates and NUL become
    U+FFFD, NaN and Infinity become null (the platform's JSON refuses them)."""
    value = finite(value)
    if isinstance(value, str):
        return db_text(value).replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {clean(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def soar_artifact(artifact: dict[str, Any]) -> dict[str, Any]:
    """One connector artifact (``build_artifacts``) as a SOAR artifact: the
    same name, label, type, CEF fields, ``cef_types``, tags and
    source_data_identifier; severity on SOAR's scale. ``run_automation`` is
    left to the platform side: the SDK sets it on a container's last artifact
    (playbooks run once per container) and leaves it off for an action's."""
    out = {
        "name": artifact.get("name"),
        "label": artifact.get("label"),
        "type": artifact.get("type"),
        "severity": SOAR_SEVERITY.get(str(artifact.get("severity")), "low"),
        "source_data_identifier": artifact.get("source_data_identifier"),
        "cef": artifact.get("cef") or {},
        "cef_types": artifact.get("cef_types") or {},
        "tags": list(artifact.get("tags") or []),
        "data": {"verdict": artifact.get("verdict"), "alert_id": artifact.get("container")},
    }
    return clean(out)


class PollState:
    """The store :class:`Poller` writes to, kept as plain data for SOAR's
    ``ingest_state``: checkpoints, seen alert ids with their times, and the
    alerts taken in by this poll (in order)."""

    def __init__(self, saved: dict[str, Any] | None = None) -> None:
        saved = saved if isinstance(saved, dict) else {}
        self.checkpoints: dict[str, Any] = dict(saved.get("checkpoints") or {})
        self.seen: dict[str, dict[str, str]] = {k: dict(v) for k, v in (saved.get("seen") or {}).items()
                                                if isinstance(v, dict)}
        # alert id -> reason, attempts, stamp, first_seen, last_seen (a bare
        # reason string in states written before attempts were counted)
        self.quarantine: dict[str, dict[str, Any]] = {
            str(k): (dict(v) if isinstance(v, dict) else {"reason": str(v), "attempts": 1})
            for k, v in (saved.get("quarantine") or {}).items()}
        self.taken: list[dict[str, Any]] = []
        self._undo: list[Callable[[], object]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """What goes back into ``ingest_state``."""
        return {"checkpoints": self.checkpoints, "seen": self.seen, "quarantine": self.quarantine}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing, like the SQLite store's transaction."""
        self._undo = []
        try:
            yield None
        except BaseException:
            for undo in reversed(self._undo):
                undo()
            raise
        finally:
            self._undo = None

    def _journal(self, undo: Callable[[], object]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def checkpoint(self, name: str) -> Any:
        return self.checkpoints.get(name)

    def set_checkpoint(self, conn: Any, name: str, value: Any) -> None:
        old = self.checkpoints.get(name)
        self.checkpoints[name] = dict(value)
        self._journal(lambda: self.checkpoints.__setitem__(name, old) if old is not None
                      else self.checkpoints.pop(name, None))

    def seen_stamp(self, conn: Any, poller: str, alert_id: str) -> str | None:
        return self.seen.get(poller, {}).get(alert_id)

    def mark_seen(self, conn: Any, poller: str, alert_id: str, stamp: str) -> None:
        marks = self.seen.setdefault(poller, {})
        old = marks.get(alert_id)
        marks[alert_id] = stamp
        self._journal(lambda: marks.__setitem__(alert_id, old) if old is not None else marks.pop(alert_id, None))

    def forget_seen(self, conn: Any, poller: str, before: str) -> None:
        marks = self.seen.get(poller, {})
        for alert_id in [a for a, stamp in marks.items() if stamp < before]:
            del marks[alert_id]

    # The poller's quarantine: an alert it could not take in. Nothing here is
    # transient (this state is plain data, its writes cannot fail), so no
    # alert is kept for a retry from its body; the overlap fetches it again.

    def quarantine_alert(self, poller: str, alert_id: str, reason: str, *, stamp: str | None,
                         alert: str | None, transient: bool) -> int:
        """Record an alert that could not be taken in; returns its attempts."""
        now = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = self.quarantine.get(alert_id)
        if entry is None:
            if len(self.quarantine) >= QUARANTINE_LIMIT:
                return 1
            entry = self.quarantine[alert_id] = {"attempts": 0, "first_seen": now}
        entry.update(reason=reason, stamp=stamp or entry.get("stamp"), last_seen=now,
                     attempts=int(entry.get("attempts") or 0) + 1)
        return int(entry["attempts"])

    def quarantined(self, poller: str | None = None) -> list[dict[str, Any]]:
        """Quarantined alerts, as the SQLite store lists them."""
        return [{"alert_id": k, "reason": v.get("reason"), "attempts": int(v.get("attempts") or 1),
                 "stamp": v.get("stamp"), "first_seen": v.get("first_seen"), "last_seen": v.get("last_seen"),
                 "transient": False} for k, v in self.quarantine.items()]

    def retriable_quarantine(self, poller: str, max_attempts: int) -> list[dict[str, Any]]:
        return []

    def release_quarantine(self, conn: Any, poller: str, alert_id: str) -> None:
        old = self.quarantine.pop(alert_id, None)
        if old is not None:
            self._journal(lambda: self.quarantine.__setitem__(alert_id, old))

    def upsert_container(self, conn: Any, alert_id: str, *, name: str | None = None, severity: str | None = None,
                         status: str | None = None, source: str = "poller", data: dict[str, Any] | None = None
                         ) -> bool:
        self.taken.append({"alert_id": alert_id, "alert": data or {}, "update": name is None})
        self._journal(self.taken.pop)
        return name is not None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def alert_container(alert: dict[str, Any]) -> dict[str, Any]:
    """The container of one alert (raises on an alert that cannot be one)."""
    alert_id = alert["id"]
    title = str(alert.get("title") or f"Defender alert {alert_id}")
    return clean({
        "name": title[:200],
        "description": str(alert.get("description") or "")[:4000] or None,
        "source_data_identifier": alert_id,
        "severity": SOAR_SEVERITY.get(str(alert.get("severity") or "").lower(), "low"),
        "start_time": alert.get("alertCreationTime") if isinstance(alert.get("alertCreationTime"), str) else None,
        "data": alert,
        "tags": ["mde-connector"],
    })


def alert_artifact(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert's own artifact: its identifiers and device as CEF fields."""
    cef = {key: alert[field] for key, field in ALERT_CEF.items()
           if isinstance(alert.get(field), (str, int, float)) and not isinstance(alert.get(field), bool)
           and str(alert.get(field)).strip()}
    return clean({
        "name": f"Defender alert {alert['id']}"[:200],
        "label": "alert",
        "type": "alert",
        "severity": SOAR_SEVERITY.get(str(alert.get("severity") or "").lower(), "low"),
        "source_data_identifier": f"mde:{alert['id']}:alert",
        "cef": cef,
        "cef_types": {k: v for k, v in ALERT_CEF_TYPES.items() if k in cef},
        "data": alert,
    })


class PollOutcome:
    """What one poll did, for the log and the tests."""

    def __init__(self) -> None:
        self.containers = 0
        self.artifacts = 0
        self.errors: list[str] = []
        self.listing_errors: list[str] = []
        self.quarantined: list[str] = []


def poll(
    *,
    client: Any,
    state: MutableMapping[str, Any],
    settings: dict[str, Any],
    manual: bool,
    max_containers: int | None,
    max_artifacts: int | None,
    make_container: Callable[[dict[str, Any]], Any],
    make_artifact: Callable[[dict[str, Any]], Any],
    outcome: PollOutcome,
    log: Callable[[str], None],
    now: Callable[[], datetime] = _now,
) -> Iterator[Any]:
    """Yield one container and its artifacts per alert the poller takes in.

    ``settings`` are the asset's ingestion settings (``models.ingest_settings``);
    ``state`` is SOAR's ``ingest_state``; it is written once, after the last
    container, and not at all for a manual poll ("poll now" previews
    ingestion and leaves the schedule's checkpoint alone). ``max_containers``
    and ``max_artifacts`` (per container) are "poll now"'s counts.
    """
    store = PollState(state.get(STATE_KEY))
    poller = Poller(
        # PollState holds the checkpoint and seen-alert methods the poller
        # calls on a Store, kept in SOAR's ingest_state instead of SQLite.
        client=client, store=cast("Store", store), context_factory=None, playbooks=[],
        time_field=str(settings["poll_time_field"]),
        lookback=timedelta(hours=int(settings["first_poll_lookback_hours"])),
        overlap=timedelta(minutes=int(settings["poll_overlap_minutes"])),
        now=now,
    )

    def on_alert(alert: dict[str, Any], stats: PollStats) -> None:
        if max_containers is not None and stats.processed >= max_containers:
            poller.stop_event.set()

    poller.on_alert = on_alert
    report = poller.poll_once()
    outcome.errors.extend(report.errors)
    for held in report.quarantined:
        outcome.quarantined.append(held["id"])
        outcome.errors.append(f"Alert {escape_text(held['id'])[:120]} was quarantined: {held['reason']}")
    # The poller reports alerts it skipped and a listing that failed; only the
    # latter means the poll itself did not work.
    outcome.listing_errors.extend(e for e in report.errors if not e.startswith("skipped an alert"))
    for taken in store.taken:
        alert, alert_id = taken["alert"], taken["alert_id"]
        try:
            container = make_container(alert_container(alert))
            artifacts = [make_artifact(alert_artifact(alert))]
        except Exception as exc:  # noqa: BLE001 - one bad alert is quarantined, never the end of the poll
            reason = f"Alert {escape_text(alert_id)[:120]} cannot become a container ({exc.__class__.__name__})."
            store.quarantine_alert(poller.checkpoint_name, alert_id, reason, stamp=None, alert=None, transient=False)
            outcome.quarantined.append(alert_id)
            outcome.errors.append(reason)
            log(reason)
            continue
        if settings["ingest_related_files"]:
            try:
                files = client.alert_files(alert_id)
                artifacts.extend(make_artifact(soar_artifact(a)) for a in build_artifacts(alert_id, files).artifacts)
            except ConnectorError as err:
                message = f"The files of alert {escape_text(alert_id)[:120]} were not added: {err.sentence()}"
                outcome.errors.append(message)
                log(message)
        if max_artifacts is not None:
            artifacts = artifacts[:max(0, max_artifacts)]
        outcome.containers += 1
        outcome.artifacts += len(artifacts)
        yield container
        yield from artifacts
    for error in report.errors:
        log(error)
    if not manual:
        # Only now: every container and artifact of this poll was yielded
        # (and so saved); the SDK commits ingest_state after that.
        state[STATE_KEY] = store.to_dict()
