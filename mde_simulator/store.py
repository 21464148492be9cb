"""Thread-safe alert and file storage with pre-serialised JSON.

Alert entities are treated as immutable once stored (``put`` replaces), which
lets the store cache their JSON encoding and parsed timestamps; a file list is
serialised once per alert (item by item, so pages are cheap slices) and kept
until ``set_files`` replaces it.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from . import data
from .odata import DATETIME_FIELDS, parse_ticks


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is), as Microsoft serialises; a
    lone surrogate (hostile data) goes out as a ``\\udXXX`` JSON escape, the
    only way JSON can carry one."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


@dataclass
class _Entry:
    alert: dict[str, Any]
    recipe: str | None = None
    files_seed: str | None = None
    explicit_files: list[dict[str, Any]] | None = None
    explicit_evidence: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    ticks: dict[str, int | None] = field(default_factory=dict)
    items: list[bytes] | None = None
    joined: bytes | None = None
    evidence: list[dict[str, Any]] | None = None
    json_plain: bytes | None = None
    json_expanded: bytes | None = None


class AlertStore:
    """The simulator's alerts, in insertion order."""

    def __init__(self, now_ticks: int) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._now_ticks = now_ticks

    # -- writing -----------------------------------------------------------
    def put_spec(self, spec: data.AlertSpec) -> None:
        """Store a generated alert whose files come from its recipe."""
        entry = _Entry(alert=spec.alert, recipe=spec.recipe, files_seed=spec.files_seed)
        self._put(entry)

    def put(self, alert: dict[str, Any], files: list[dict[str, Any]] | None) -> None:
        """Store (or replace) an alert with an explicit file list."""
        entry = _Entry(
            alert=copy.deepcopy(alert),
            explicit_files=copy.deepcopy(files) if files is not None else [],
            explicit_evidence=bool(alert.get("evidence")),
        )
        self._put(entry)

    def _put(self, entry: _Entry) -> None:
        self._precompute_ticks(entry)
        with self._lock:
            # Re-inserting moves the alert to the end, like a newly seen one.
            self._entries.pop(entry.alert["id"], None)
            self._entries[entry.alert["id"]] = entry

    def set_files(self, alert_id: str, files: list[dict[str, Any]]) -> None:
        """Replace an alert's related files. Raises KeyError for an unknown id."""
        with self._lock:
            old = self._entries[alert_id]
            entry = _Entry(
                alert=old.alert,
                explicit_files=copy.deepcopy(files),
                explicit_evidence=old.explicit_evidence,
                ticks=old.ticks,
            )
            self._entries[alert_id] = entry

    # -- reading -----------------------------------------------------------
    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def alert_dicts(self) -> list[dict[str, Any]]:
        """All alert entities, insertion order (the caller must not mutate)."""
        with self._lock:
            return [e.alert for e in self._entries.values()]

    def snapshot(self) -> list[dict[str, Any]]:
        """Deep copies of every alert, evidence included."""
        with self._lock:
            ids = list(self._entries)
        out = []
        for alert_id in ids:
            entry = self._entries.get(alert_id)
            if entry is None:
                continue
            alert = copy.deepcopy(entry.alert)
            alert["evidence"] = copy.deepcopy(self._evidence(entry))
            out.append(alert)
        return out

    def ticks(self, alert: dict[str, Any], field_name: str) -> int | None:
        """A datetime property of a stored alert, as ticks (cached)."""
        entry = self._entries.get(alert.get("id", ""))
        if entry is not None and entry.alert is alert:
            return entry.ticks.get(field_name)
        value = alert.get(field_name)
        try:
            return parse_ticks(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def alert_json(self, alert_id: str, *, expand: bool) -> bytes | None:
        """The alert entity as JSON bytes; evidence only when ``expand``."""
        entry = self._entries.get(alert_id)
        if entry is None:
            return None
        if expand:
            if entry.json_expanded is None:
                alert = dict(entry.alert)
                alert["evidence"] = self._evidence(entry)
                entry.json_expanded = dumps(alert)
            return entry.json_expanded
        if entry.json_plain is None:
            alert = dict(entry.alert)
            alert["evidence"] = []
            entry.json_plain = dumps(alert)
        return entry.json_plain

    def file_items(self, alert_id: str) -> list[bytes] | None:
        """Each related file as JSON bytes, or None for an unknown alert."""
        entry = self._entries.get(alert_id)
        if entry is None:
            return None
        if entry.items is None:
            with entry.lock:
                if entry.items is None:
                    entry.items = [dumps(f) for f in self._files(entry)]
        return entry.items

    def files_joined(self, alert_id: str) -> bytes | None:
        """All related files as the comma-joined inside of a JSON array."""
        entry = self._entries.get(alert_id)
        if entry is None:
            return None
        if entry.joined is None:
            items = self.file_items(alert_id)
            entry.joined = b",".join(items or [])
        return entry.joined

    def files(self, alert_id: str) -> list[dict[str, Any]] | None:
        """Deep copies of an alert's related files, or None if unknown."""
        entry = self._entries.get(alert_id)
        if entry is None:
            return None
        return copy.deepcopy(self._files(entry))

    # -- internals -----------------------------------------------------------
    def _files(self, entry: _Entry) -> list[dict[str, Any]]:
        if entry.explicit_files is not None:
            return entry.explicit_files
        if entry.recipe is None or entry.files_seed is None:
            return []
        return [
            r.entity
            for r in data.generate_files(entry.recipe, entry.files_seed, self._now_ticks)
        ]

    def _evidence(self, entry: _Entry) -> list[dict[str, Any]]:
        if entry.evidence is not None:
            return entry.evidence
        created = entry.alert.get("alertCreationTime") or ""
        if entry.explicit_evidence:
            evidence = entry.alert.get("evidence") or []
        elif entry.explicit_files is not None:
            records = [
                data.FileRecord(f, f.get("fileName") or "", f.get("filePath") or "")
                for f in entry.explicit_files[:5]
            ]
            evidence = data.evidence_for(records, created)
        else:
            records = data.generate_files(
                entry.recipe or "mixed:0", entry.files_seed or "", self._now_ticks, limit=5
            )
            evidence = data.evidence_for(records, created)
        entry.evidence = evidence
        return evidence

    @staticmethod
    def _precompute_ticks(entry: _Entry) -> None:
        for name in DATETIME_FIELDS:
            value = entry.alert.get(name)
            try:
                entry.ticks[name] = parse_ticks(value) if isinstance(value, str) else None
            except ValueError:
                entry.ticks[name] = None
