"""Run a playbook against one container (alert).

::

    record = run_playbook(playbook, alert_id="6366..._2136280442", context=context)
    record["status"]            # "success" | "failed"
    [s["status"] for s in record["steps"]]

Steps run in dependency order (ties in file order). A step is skipped when a
step it depends on did not succeed or its ``when`` condition is false; a
failing step with ``on_failure: stop`` ends the run (the rest is skipped and
the run fails), with ``continue`` the run goes on. Action steps go through
:func:`connector.actions.run_action`, which validates the parameters and saves
the result and its artifacts in one transaction; built-in steps write to the
store (severity, notes keyed ``<run id>:<step id>``, tags).

The run record is saved when the run starts (status ``running``) and when it
ends. Triggered runs use the id ``<playbook>:<alert id>``: a run that already
succeeded is returned as is; one left ``running`` by a crash, or one that
failed, is run again from the start, which is safe because artifacts are
upserted and notes keyed.

Templating and conditions are data, never code: see :func:`resolve` and
:func:`evaluate`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.actions import run_action
from connector.errors import ConfigError, ConnectorError, InputError
from connector.runtime.playbooks import Playbook, Step, find_references, parse_playbook, substitute
from connector.runtime.store import Store, utc_now
from connector.sdk import Context
from connector.severity import SCALE, container_fields, normalise
from connector.severity import rank as severity_rank
from connector.text import finite

__all__ = [
    "evaluate",
    "load_shipped_playbooks",
    "matching_playbooks",
    "render_text",
    "resolve",
    "run_playbook",
    "shipped_playbook_files",
    "triggered_run_id",
]

log = logging.getLogger("connector.engine")

_MISSING_TEXT = "-"


#: Namespace of the name-based uuids of triggered runs.
_RUN_NAMESPACE = uuid.UUID("5b0f6a8e-3c1d-4e57-9a0b-6d2f8c4e1a73")


def triggered_run_id(playbook: Playbook | str, alert_id: str) -> str:
    """The run id of a triggered run: one run per playbook and alert, in the
    one format every run id has (32 hex digits, like a manual run's), so
    ``runs show`` takes any run's id prefix alike. Stores written before
    keep their ``playbook:alert`` ids, which still show and resume."""
    name = playbook if isinstance(playbook, str) else playbook.name
    return uuid.uuid5(_RUN_NAMESPACE, f"{name}:{alert_id}").hex


# -- templating ------------------------------------------------------------------

Lookup = Callable[[str, str], Any]


def _walk(value: Any, parts: list[str]) -> Any:
    for i, part in enumerate(parts):
        if part == "*":
            if not isinstance(value, list):
                return None
            rest = parts[i + 1:]
            out = [_walk(item, rest) for item in value]
            return [v for v in out if v is not None]
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value


def resolve(value: Any, lookup: Lookup) -> Any:
    """Replace ``{{root.path}}`` references in ``value`` (recursively).

    A string that is exactly one reference becomes the referenced value with
    its type (a list, a number, None when missing); references inside text are
    rendered with :func:`render_text` in one pass over the template, so a
    value holding ``{{...}}`` (API text) is never expanded.
    ``lookup(root, path)`` returns a value.
    """
    if isinstance(value, str):
        refs = list(find_references(value))
        if not refs:
            return value
        only = refs[0][1]
        if len(refs) == 1 and only is not None and only.whole:
            return lookup(only.root, only.path)
        return substitute(value, lambda ref: render_text(lookup(ref.root, ref.path)))
    if isinstance(value, dict):
        return {k: resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, lookup) for v in value]
    return value


def render_text(value: Any) -> str:
    """A value as text in a note or tag: None as '-', booleans as true/false,
    lists comma-separated, objects as compact JSON."""
    if value is None:
        return _MISSING_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(render_text(v) for v in value) if value else _MISSING_TEXT
    if isinstance(value, dict):
        return json.dumps(finite(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return str(value)


# -- conditions ------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, 1 is 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _ordered(op: str, a: Any, b: Any) -> bool:
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if op == "gt":
        return bool(a > b)
    if op == "ge":
        return bool(a >= b)
    if op == "lt":
        return bool(a < b)
    return bool(a <= b)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return bool(value != 0)
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return False


def evaluate(condition: Any, lookup: Lookup) -> bool:
    """Evaluate a condition (the schema's ``$defs.condition``); never raises
    on data: a comparison between incompatible or missing values is false.

    ``true``/``false``; ``"{{ref}}"`` (truthy: true, non-zero, non-empty);
    ``{"eq"|"ne"|"gt"|"ge"|"lt"|"le": [a, b]}``; ``{"in": [value, list]}``;
    ``{"contains": [list_or_string, value]}``; ``{"exists": "{{ref}}"}``;
    ``{"any": [...]}``, ``{"all": [...]}``, ``{"not": condition}``.
    """
    if isinstance(condition, bool):
        return condition
    if isinstance(condition, str):
        return _truthy(resolve(condition, lookup))
    if not isinstance(condition, dict) or len(condition) != 1:
        raise InputError(f"Condition {json.dumps(condition)[:60]} is not a condition object with one operator.")
    (op, arg), = condition.items()
    if op == "any":
        return any(evaluate(c, lookup) for c in arg)
    if op == "all":
        return all(evaluate(c, lookup) for c in arg)
    if op == "not":
        return not evaluate(arg, lookup)
    if op == "exists":
        return resolve(arg, lookup) is not None
    a, b = (resolve(v, lookup) for v in arg)
    if op == "eq":
        return _equal(a, b)
    if op == "ne":
        return not _equal(a, b)
    if op in ("gt", "ge", "lt", "le"):
        return _ordered(op, a, b)
    if op == "in":
        a, b = b, a
        op = "contains"
    if op == "contains":
        if isinstance(a, list):
            return any(_equal(item, b) for item in a)
        if isinstance(a, str) and isinstance(b, str):
            return b in a
        return False
    raise InputError(f"Condition operator '{op}' is unknown; use eq, ne, gt, ge, lt, le, in, contains, "
                     "exists, any, all or not.")


# -- triggers --------------------------------------------------------------------


def matching_playbooks(playbooks: list[Playbook], alert: dict[str, Any]) -> list[Playbook]:
    """The new_alert playbooks whose filters all match ``alert`` (a Defender
    alert entity), in the given order. A filter matches when its list holds
    the alert's value (case-insensitive); an alert without the field does not
    match that filter. Manual playbooks never match."""
    out = []
    for playbook in playbooks:
        if playbook.trigger_type != "new_alert":
            continue
        ok = True
        for key, allowed in playbook.filters.items():
            value = alert.get(key)
            if not isinstance(value, str) or value.casefold() not in {a.casefold() for a in allowed}:
                ok = False
                break
        if ok:
            out.append(playbook)
    return out


#: Where the shipped playbooks are packaged.
SHIPPED_PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"


def shipped_playbook_files() -> list[Path]:
    """The playbook files packaged in ``connector/playbooks/``, sorted by file name."""
    return sorted(SHIPPED_PLAYBOOKS.glob("*.json"), key=lambda path: path.name)


def load_shipped_playbooks() -> list[Playbook]:
    """The shipped playbooks (:func:`shipped_playbook_files`), validated;
    raises PlaybookError if one is invalid."""
    return [parse_playbook(path.read_text(encoding="utf-8"), source=path.name) for path in shipped_playbook_files()]


# -- running ---------------------------------------------------------------------


def _now() -> str:
    return utc_now()


class _Run:
    """State of one run: outputs so far and how to resolve references."""

    def __init__(self, playbook: Playbook, alert_id: str, context: Context, store: Store, run_id: str,
                 trigger: str, trigger_alert: dict[str, Any] | None) -> None:
        self.playbook = playbook
        self.alert_id = alert_id
        self.context = context
        self.store = store
        self.run_id = run_id
        self.trigger: dict[str, Any] = {"type": trigger, "alert": trigger_alert or {}}
        self.outputs: dict[str, dict[str, Any]] = {}
        self._container_ready = False

    def ensure_container(self) -> None:
        """Create the container before a built-in step writes to it (a run
        that fails at its first action leaves no empty container behind)."""
        if self._container_ready:
            return
        alert = self.trigger["alert"]
        # Without an alert (a manual run) an existing container keeps its
        # fields; a new one gets the store's defaults, which are the mapping's.
        fields = container_fields(self.alert_id, alert) if alert else None
        # Held for the run's next transaction (see Store.later): the writes
        # of one run cost a few transactions, not one per step.
        self.store.later(lambda conn: self.store.upsert_container(
            conn, self.alert_id,
            name=fields.name if fields else None,
            severity=fields.severity if fields else None,
            status=fields.status if fields else None,
            source="new_alert" if self.trigger["type"] == "new_alert" else "manual",
            data=alert or None,
        ))
        self._container_ready = True

    def lookup(self, root: str, path: str) -> Any:
        parts = path.split(".")
        if root == "container":
            if path == "alert_id":
                return self.alert_id
            self.store.flush_later()  # the container as this run left it
            container = self.store.container(self.alert_id) or {}
            container.setdefault("alert_id", self.alert_id)
            return _walk(container, parts)
        if root == "trigger":
            return _walk(self.trigger, parts)
        return _walk(self.outputs.get(root), parts)

    # -- step types --------------------------------------------------------

    def action(self, step: Step) -> tuple[bool, str, dict[str, Any] | None]:
        params = resolve(step.parameters, self.lookup)
        result = run_action(str(step.action), params, self.context)
        self.outputs[step.id] = result.to_dict()
        return result.ok, result.message, result.error

    def decision(self, step: Step) -> tuple[bool, str, dict[str, Any] | None]:
        result = evaluate(step.parameters["condition"], self.lookup)
        message = f"The condition is {'true' if result else 'false'}."
        self.outputs[step.id] = {"status": "success", "message": message, "result": result}
        return True, message, None

    def set_severity(self, step: Step) -> tuple[bool, str, dict[str, Any] | None]:
        value = resolve(step.parameters["severity"], self.lookup)
        severity = normalise(value)
        if severity is None:
            raise InputError(f"Severity {render_text(value)!r} is not one of {', '.join(SCALE)}.")
        mode = step.parameters.get("mode", "set")
        self.ensure_container()
        self.store.flush_later()  # the severity as this run left it
        before = (self.store.container(self.alert_id) or {}).get("severity")
        if mode == "raise":
            self.store.later(lambda conn: self.store.raise_severity(conn, self.alert_id, severity))
            after = severity if severity_rank(severity) > severity_rank(before) else before
        else:
            self.store.later(lambda conn: self.store.set_severity(conn, self.alert_id, severity))
            after = severity
        if after == before:
            message = f"The severity stays {after}."
        else:
            message = f"The severity changed from {before} to {after}."
        self.outputs[step.id] = {"status": "success", "message": message, "severity": after,
                                 "previous_severity": before}
        return True, message, None

    def add_note(self, step: Step) -> tuple[bool, str, dict[str, Any] | None]:
        text = resolve(step.parameters["text"], self.lookup)
        text = render_text(text) if not isinstance(text, str) else text
        self.ensure_container()
        key = f"{self.run_id}:{step.id}"
        self.store.later(lambda conn: self.store.add_note(conn, self.alert_id, text, key=key))
        message = "Note added."
        self.outputs[step.id] = {"status": "success", "message": message, "text": text}
        return True, message, None

    def add_tag(self, step: Step) -> tuple[bool, str, dict[str, Any] | None]:
        tags: list[str] = []
        for raw in step.parameters["tags"]:
            value = resolve(raw, self.lookup)
            for tag in value if isinstance(value, list) else [value]:
                text = render_text(tag).strip()
                if text and text != _MISSING_TEXT and text not in tags:
                    tags.append(text)
        self.ensure_container()
        self.store.later(lambda conn: self.store.add_tags(conn, self.alert_id, tags))
        message = f"Tagged {', '.join(tags)}." if tags else "No tag to add."
        self.outputs[step.id] = {"status": "success", "message": message, "tags": tags}
        return True, message, None


def run_playbook(playbook: Playbook, *, alert_id: str, context: Context, trigger: str = "manual",
                 trigger_alert: dict[str, Any] | None = None, run_id: str | None = None,
                 owner: str | None = None, stop: threading.Event | None = None) -> dict[str, Any]:
    """Run ``playbook`` against the container of ``alert_id``; return the run record.

    ``context`` is the :class:`~connector.actions.ActionContext` (it must
    have a store). ``trigger`` is ``manual`` or ``new_alert``;
    ``trigger_alert`` the alert entity that triggered the run (for
    ``{{trigger.alert.*}}`` and the container's name and severity). Pass
    ``run_id=triggered_run_id(playbook, alert_id)`` for triggered runs: an
    existing successful run with that id is returned without running again.
    Manual runs get a fresh uuid. Never raises for a failing step (it is in
    the record); raises ConfigError without a store and StoreError when the
    store cannot be written.

    ``owner`` (see :func:`connector.runtime.store.new_owner`) makes the run
    hold a lease, renewed before every step and released at the end: a run
    another live owner holds is returned as stored, without running, and a
    run whose lease was taken over stops before its next step. ``stop`` set
    (SIGTERM, SIGINT) ends the run before its next step: a triggered run is
    left ``pending`` (resumed from the start later), a manual one ``stopped``.

    The record: ``id``, ``playbook``, ``playbook_version``, ``container``,
    ``trigger``, ``status`` (success|failed|running, or pending|stopped when
    stopped between steps), ``message``,
    ``started_at``, ``finished_at`` and ``steps``: per step ``id``, ``type``,
    ``status`` (success|failed|skipped), ``message``, ``duration_ms``,
    ``error`` (the error object or None) and ``action`` for action steps.
    """
    store = context.store
    if not isinstance(store, Store):
        raise ConfigError("Running a playbook needs the local store; the action context has none.")
    alert_id = str(alert_id).strip()
    if not alert_id:
        raise InputError("The alert id to run the playbook on is empty; pass a Defender alert id.")
    run_id = run_id or uuid.uuid4().hex
    existing = store.playbook_run(run_id)
    if existing is not None and existing["status"] == "success":
        return dict(existing["record"])
    if existing is not None and owner is not None and not store.claim_playbook_run(run_id, owner):
        log.info("playbook run %s is leased by another live process; not run again", run_id)
        return dict(existing["record"], id=run_id, status=existing["status"])

    record: dict[str, Any] = {
        "id": run_id,
        "playbook": playbook.name,
        "playbook_version": playbook.version,
        "container": alert_id,
        "trigger": trigger,
        "status": "running",
        "message": "",
        "started_at": _now(),
        "finished_at": None,
        "steps": [],
    }
    try:
        return _execute(playbook, store, context, record, existing, owner, stop, trigger_alert)
    finally:
        # Writes still held here belong to a run that did not finish (its
        # lease was taken over, or the store failed): it is run again from the
        # start, so they are dropped rather than written by someone else's
        # transaction on this thread.
        store.drop_later()


def _execute(playbook: Playbook, store: Store, context: Context, record: dict[str, Any],
             existing: dict[str, Any] | None, owner: str | None, stop: threading.Event | None,
             trigger_alert: dict[str, Any] | None) -> dict[str, Any]:
    run_id, alert_id, trigger = record["id"], record["container"], record["trigger"]
    run = _Run(playbook, alert_id, context, store, run_id, trigger, trigger_alert)
    if trigger_alert:
        run.ensure_container()  # the alert is known to exist: record it up front
    # The "running" record goes with the run's first transaction (a crash
    # before it leaves the run as it was queued, to be run again).
    store.later(lambda conn: _save(store, conn, dict(record, steps=list(record["steps"]))))
    if existing is None and owner is not None:
        store.claim_playbook_run(run_id, owner)  # a new row: nobody else can hold it
    statuses: dict[str, str] = {}
    stopped_by: str | None = None
    for step in playbook.order:
        halt = _halt_reason(store, run_id, owner, stop)
        if halt is not None:
            return _abandon(store, record, step, halt, owner)
        started = time.perf_counter()
        entry: dict[str, Any] = {"id": step.id, "type": step.type}
        if step.action:
            entry["action"] = step.action
        status, message, error = _run_step(run, step, statuses, stopped_by)
        entry.update(status=status, message=message, error=error,
                     duration_ms=round((time.perf_counter() - started) * 1000, 3))
        statuses[step.id] = status
        record["steps"].append(entry)
        context.progress(f"step {step.id}: {status}")
        if status == "failed" and step.on_failure == "stop" and stopped_by is None:
            stopped_by = step.id

    counts = {s: sum(1 for e in record["steps"] if e["status"] == s) for s in ("success", "failed", "skipped")}
    record["status"] = "failed" if stopped_by else "success"
    summary = f"{counts['success']} succeeded, {counts['failed']} failed, {counts['skipped']} skipped"
    if stopped_by:
        cause = next(e["message"] for e in record["steps"] if e["id"] == stopped_by)
        record["message"] = f"Playbook {playbook.name} failed at step '{stopped_by}' ({summary}): {cause}"
    else:
        record["message"] = f"Playbook {playbook.name} ran on alert {alert_id} ({summary})."
    record["finished_at"] = _now()
    with store.transaction() as conn:
        _save(store, conn, record)
        if owner is not None:
            store.release_playbook_run(run_id, owner, conn)
    return record


def _halt_reason(store: Store, run_id: str, owner: str | None, stop: threading.Event | None) -> str | None:
    """Why the run must not start its next step, or None: a stop was asked
    for, or the lease is no longer this owner's (renewed here otherwise)."""
    if stop is not None and stop.is_set():
        return "the process was asked to stop"
    if owner is not None and not store.renew_lease(run_id, owner):
        return "its lease was taken over by another process"
    return None


def _abandon(store: Store, record: dict[str, Any], step: Step, reason: str, owner: str | None) -> dict[str, Any]:
    """End a run before ``step``: a triggered run is queued again (it is
    resumed from the start, which is safe), a manual one is ``stopped``."""
    done = len(record["steps"])
    record["status"] = "stopped" if record["trigger"] == "manual" else "pending"
    then = "" if record["trigger"] == "manual" else "; it will be run again from the start"
    record["message"] = (f"Playbook {record['playbook']} stopped before step '{step.id}' after {done} step(s): "
                         f"{reason}{then}.")
    record["finished_at"] = None
    if "taken over" not in reason:  # the new owner writes the record from now on
        with store.transaction() as conn:
            _save(store, conn, record)
            if owner is not None:
                store.release_playbook_run(record["id"], owner, conn)
    else:
        store.drop_later()
    return record


def _run_step(run: _Run, step: Step, statuses: dict[str, str],
              stopped_by: str | None) -> tuple[str, str, dict[str, Any] | None]:
    if stopped_by is not None:
        return "skipped", f"Not run: step '{stopped_by}' failed and stopped the run.", None
    for dep in step.depends_on:
        if statuses.get(dep) != "success":
            what = {"skipped": "was skipped", "failed": "failed"}.get(statuses.get(dep, ""), "did not run")
            return "skipped", f"Skipped: step '{dep}', which it depends on, {what}.", None
    try:
        if step.when is not None and not evaluate(step.when, run.lookup):
            return "skipped", "Skipped: its condition is false.", None
        handlers = {"action": run.action, "decision": run.decision, "set_severity": run.set_severity,
                    "add_note": run.add_note, "add_tag": run.add_tag}
        if step.type not in handlers:
            raise InputError(f"Step type '{step.type}' is unknown; use one of {', '.join(handlers)}.")
        ok, message, error = handlers[step.type](step)
    except ConnectorError as err:
        return "failed", err.sentence(), err.to_dict()
    except Exception as exc:  # noqa: BLE001 - a bug must not leave the run "running"
        log.exception("playbook %s step %s crashed", run.playbook.name, step.id)
        return "failed", f"Step '{step.id}' failed unexpectedly ({exc.__class__.__name__}).", {"kind": "internal"}
    return ("success" if ok else "failed"), message, error


def _save(store: Store, conn: sqlite3.Connection, record: dict[str, Any]) -> None:
    store.save_playbook_run(conn, record["id"], playbook=record["playbook"], container=record["container"],
                            trigger=record["trigger"], status=record["status"], record=record,
                            started_at=record["started_at"], finished_at=record["finished_at"])
