"""The embedded SQLite store: containers, artifacts, runs, notes, checkpoints.

A container is one alert (keyed by the alert id). Artifacts are upserted by
``source_data_identifier`` so re-running an action adds nothing twice. Each
action result is written in one transaction: the store holds either all of a
result or none of it. WAL mode and a busy timeout let several processes (CLI
runs, the watcher, its workers) write without "database is locked" reaching a
user. The file is created 0600 inside the 0700 state directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connector import severity as severity_scale
from connector.config import ensure_private_dir
from connector.errors import ConfigError, InputError, StoreError
from connector.fsguard import private_dir
from connector.sdk import JSON, ActionResult
from connector.sqlite_db import open_database
from connector.text import db_json, db_text, escape_text

#: How long a playbook run's lease lasts without a heartbeat. A worker renews
#: it before every step; a run whose lease expired (or whose owner process is
#: gone from this host) may be resumed by another process.
LEASE = timedelta(minutes=5)
#: The store's file name inside the state directory.
STORE_FILE = "store.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    alert_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    severity TEXT NOT NULL DEFAULT 'informational',
    status TEXT NOT NULL DEFAULT 'new',
    source TEXT NOT NULL DEFAULT 'manual',
    tags TEXT NOT NULL DEFAULT '[]',
    data TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS artifacts (
    source_data_identifier TEXT PRIMARY KEY,
    container TEXT NOT NULL REFERENCES containers(alert_id),
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_container ON artifacts (container);
CREATE TABLE IF NOT EXISTS artifact_digests (
    container TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS action_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    container TEXT,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    parameter TEXT NOT NULL,
    summary TEXT NOT NULL,
    error TEXT,
    started_at TEXT NOT NULL,
    duration_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    container TEXT NOT NULL,
    key TEXT UNIQUE,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS playbook_runs (
    id TEXT PRIMARY KEY,
    playbook TEXT NOT NULL,
    container TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    heartbeat TEXT,
    lease_expires TEXT
);
CREATE INDEX IF NOT EXISTS playbook_runs_container ON playbook_runs (container);
CREATE TABLE IF NOT EXISTS poller_seen (
    poller TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    stamp TEXT NOT NULL,
    PRIMARY KEY (poller, alert_id)
);
CREATE INDEX IF NOT EXISTS poller_seen_stamp ON poller_seen (poller, stamp);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    poller TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    stamp TEXT,
    alert TEXT,
    transient INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (poller, alert_id)
);
"""


# Columns added to playbook_runs after its first release; older stores gain
# them when opened.
_RUN_COLUMNS = {
    "attempts": "INTEGER NOT NULL DEFAULT 0",
    "owner": "TEXT",
    "heartbeat": "TEXT",
    "lease_expires": "TEXT",
}


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)
    if "created_at" in {row[1] for row in conn.execute("PRAGMA table_info(containers)")}:
        # The keyset of 'containers list' pages (a very old store lacks the column).
        conn.execute("CREATE INDEX IF NOT EXISTS containers_created ON containers (created_at, alert_id)")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(playbook_runs)")}
    for name, declaration in _RUN_COLUMNS.items():
        if name not in columns:
            try:
                conn.execute(f"ALTER TABLE playbook_runs ADD COLUMN {name} {declaration}")
            except sqlite3.OperationalError as exc:
                # Another process opening the same old store added it a moment ago.
                if "duplicate column" not in str(exc):
                    raise


def utc_now(delta: timedelta = timedelta(0)) -> str:
    """ISO-8601 UTC timestamp with milliseconds and ``Z`` (now plus ``delta``)."""
    return (datetime.now(timezone.utc) + delta).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cause(exc: BaseException) -> str:
    return escape_text(" ".join(str(exc).split()))[:200] or type(exc).__name__


def _hostname() -> str:
    # socket is imported here, not at the top: only lease owners need it, and
    # reading commands (artifacts list, containers list) would pay its import
    # on every run (bench/NOTES.md, "Deferred imports").
    import socket

    return socket.gethostname()


def new_owner() -> str:
    """A lease owner id for this process: ``host:pid:random``."""
    return f"{_hostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_alive(owner: str) -> bool:
    """False only when ``owner`` names a process on this host that is gone;
    an owner on another host is presumed alive (its lease expiry decides)."""
    parts = owner.split(":")
    if len(parts) < 3 or not parts[-2].isdigit():
        return True
    host = ":".join(parts[:-2])
    if host != _hostname():
        return True
    pid = int(parts[-2])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def page_cursor(kind: str, key: Any, rowid: Any) -> str:
    """An opaque paging cursor for ``--after``: URL-safe text that encodes the
    position (``kind`` names the listing, so a cursor is not mistaken for
    another listing's)."""
    import base64

    raw = json.dumps([kind, key, rowid], ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _cursor_parts(cursor: str, kind: str, second: type) -> tuple[Any, Any]:
    """The (key, rowid) a cursor made by :func:`page_cursor` holds; InputError
    when it is not a cursor of this listing."""
    import base64
    import binascii

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found, key, rowid = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        found, key, rowid = None, None, None
    if found != kind or not isinstance(key, str) or not isinstance(rowid, second) or isinstance(rowid, bool):
        raise InputError(f"--after {escape_text(cursor[:80])!r} is not a cursor of this {kind} listing.",
                         hint="Pass the cursor the previous page printed, or leave --after out for the first page.")
    return key, rowid


#: One write lock per store file in this process: threads of one process wait
#: for each other here, woken the moment the lock is free, instead of in
#: SQLite's busy handler, which sleeps and polls (1, 2, 5, 10 ms ...).
#: Other processes are still kept out by SQLite's own lock.
_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.RLock:
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


def _dumps(value: Any) -> str:
    # Values come from the API: lone surrogates and NaN must not make SQLite
    # (or a later strict reader) refuse the row.
    return db_json(value)


def _digest(artifacts: list[dict[str, Any]]) -> str | None:
    """SHA-256 of the artifacts' exact values, in order, or None when they
    hold a type marshal cannot write. marshal (format 2: no object sharing,
    so equal values give equal bytes) is exact, type-tagged and ~3x faster
    than JSON; a slice at a time, so no copy of the whole list is built.
    Another format or Python version gives another digest: the artifacts
    are then written once more, never skipped wrongly."""
    digest = hashlib.sha256(b"marshal-2:")
    try:
        for start in range(0, len(artifacts), 1024):
            digest.update(marshal.dumps(artifacts[start:start + 1024], 2))
    except ValueError:
        return None
    return digest.hexdigest()


def _text(value: Any) -> Any:
    return db_text(value) if isinstance(value, str) else value


class Store:
    """The SQLite store at ``path``. Thread-safe: one connection per thread.

    Writes go through :meth:`transaction` (``BEGIN IMMEDIATE``); methods that
    write take an optional open connection so several writes share one
    transaction.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        if read_only and os.access(path.parent, os.W_OK | os.X_OK) and os.access(path, os.W_OK):
            # Writable after all: opened as always, so that an older store
            # gains the tables and columns the queries expect.
            read_only = False
        self.read_only = read_only
        self._local = threading.local()
        self._write_lock = _write_lock(path)
        if read_only:
            private_dir(path.parent, create=False, writable=False)
        else:
            ensure_private_dir(path.parent)
            if path.exists() and not os.access(path, os.W_OK):
                raise ConfigError(
                    f"The store {path} is read-only for this user, and this command writes to it.",
                    hint="Give your user write access to it; 'containers list', 'runs list' and "
                    "'artifacts list' work on a read-only store.",
                )
        self._connect()

    @classmethod
    def open(cls, state_dir: Path, *, read_only: bool = False) -> Store:
        """The store in ``state_dir`` (``store.sqlite``). ``read_only``: for
        commands that only read; where this user cannot write the directory
        or the file, the store is opened read-only (any write raises
        StoreError) instead of being refused."""
        return cls(Path(state_dir) / STORE_FILE, read_only=read_only)

    @classmethod
    def open_existing(cls, state_dir: Path, *, hint: str = "Run an action or a playbook first.") -> Store:
        """The store in ``state_dir`` for a command that only reads it (``~``
        expanded), opened as :meth:`open` with ``read_only``. Raises
        ConfigError naming the directory, with ``hint``, when no store is
        there yet, so that reading never creates an empty one."""
        state = Path(state_dir).expanduser()
        if not (state / STORE_FILE).exists():
            raise ConfigError(f"There is no store in {state} yet.", hint=hint)
        return cls.open(state, read_only=True)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = open_database(self.path, timeout=60, setup=_create_schema, read_only=self.read_only)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreError(f"The store {self.path} cannot be opened ({exc}).") from None
            self._local.conn = conn
        return conn

    def _rows(self, sql: str, args: tuple[Any, ...] = (), json_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Query rows as dicts, decoding the named JSON columns."""
        out = []
        for row in self._connect().execute(sql, args):
            item = dict(row)
            for column in json_columns:
                item[column] = json.loads(item[column])
            out.append(item)
        return out

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- writes held for the next transaction ---------------------------------

    def later(self, write: Callable[[sqlite3.Connection], object]) -> None:
        """Hold ``write(conn)`` until this thread's next :meth:`transaction`,
        which does it first (in order, atomically with its own writes).

        For work that is safe to lose and redo (a playbook run's record and
        built-in steps: a run that never ends is run again from the start),
        so that one run costs a few write transactions instead of one per
        step. :meth:`flush_later` writes what is held now; :meth:`drop_later`
        forgets it (a run that ends without finishing)."""
        held = getattr(self._local, "later", None)
        if held is None:
            held = self._local.later = []
        held.append(write)

    def flush_later(self) -> None:
        """Write what :meth:`later` holds (one transaction), if anything."""
        if getattr(self._local, "later", None):
            with self.transaction():
                pass

    def drop_later(self) -> None:
        """Forget what :meth:`later` holds for this thread."""
        self._local.later = []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; commits on success, rolls back on any error.
        Writes held by :meth:`later` are done first, inside it.

        A SQLite error inside it (a full disk, say) is raised as StoreError
        naming the store and the cause; other exceptions pass unchanged."""
        conn = self._connect()
        with self._write_lock:
            yield from self._transaction(conn)

    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"The store {self.path} is not writable ({_cause(exc)}).") from None
        held: list[Callable[[sqlite3.Connection], object]] = getattr(self._local, "later", None) or []
        self._local.later = []
        try:
            for write in held:
                write(conn)
            yield conn
        except sqlite3.Error as exc:
            self._rollback(conn, held)
            raise StoreError(f"The store {self.path} could not be written ({_cause(exc)}).") from None
        except BaseException:
            self._rollback(conn, held)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn, held)
            raise StoreError(f"The store {self.path} could not commit ({_cause(exc)}).") from None

    def _rollback(self, conn: sqlite3.Connection, held: list[Callable[[sqlite3.Connection], object]]) -> None:
        # Held writes were undone with the rest: hold them again for the next
        # transaction (drop_later() forgets them).
        self._local.later = held + (getattr(self._local, "later", None) or [])
        # SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR);
        # a ROLLBACK then fails with "no transaction is active", and that
        # failure must not replace the error that caused it.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    # -- containers -------------------------------------------------------

    def upsert_container(
        self,
        conn: sqlite3.Connection,
        alert_id: str,
        *,
        name: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        source: str = "manual",
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Create the alert's container, or update the fields given. Severity
        only ever rises here (use :meth:`set_severity` to lower it). Returns
        True when the container is new."""
        now = utc_now()
        cur = conn.execute(
            "INSERT INTO containers (alert_id, name, severity, status, source, data, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(alert_id) DO NOTHING",
            (_text(alert_id), _text(name or f"Defender alert {alert_id}"), _text(severity or "informational"),
             _text(status or "new"), _text(source), _dumps(data or {}), now, now),
        )
        if cur.rowcount:
            return True
        alert_id = _text(alert_id)
        if data:
            conn.execute("UPDATE containers SET data = ?, updated_at = ? WHERE alert_id = ?",
                         (_dumps(data), now, alert_id))
        if name:
            conn.execute("UPDATE containers SET name = ? WHERE alert_id = ?", (_text(name), alert_id))
        if status:
            conn.execute("UPDATE containers SET status = ? WHERE alert_id = ?", (_text(status), alert_id))
        if severity:
            self.raise_severity(conn, alert_id, severity)
        return False

    def raise_severity(self, conn: sqlite3.Connection, alert_id: str, severity: str) -> None:
        """Set the container's severity if it is higher than the current one."""
        row = conn.execute("SELECT severity FROM containers WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is not None and severity_scale.rank(severity) > severity_scale.rank(row[0]):
            conn.execute("UPDATE containers SET severity = ?, updated_at = ? WHERE alert_id = ?",
                         (severity, utc_now(), alert_id))

    def set_severity(self, conn: sqlite3.Connection, alert_id: str, severity: str) -> None:
        """Set the container's severity, up or down."""
        conn.execute("UPDATE containers SET severity = ?, updated_at = ? WHERE alert_id = ?",
                     (severity, utc_now(), alert_id))

    def add_tags(self, conn: sqlite3.Connection, alert_id: str, tags: Iterable[str]) -> None:
        """Add tags to the container (set semantics, order kept)."""
        row = conn.execute("SELECT tags FROM containers WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is None:
            return
        current = json.loads(row[0])
        merged = current + [t for t in tags if t not in current]
        conn.execute("UPDATE containers SET tags = ? WHERE alert_id = ?", (_dumps(merged), alert_id))

    def add_note(self, conn: sqlite3.Connection, alert_id: str, text: str, key: str | None = None) -> None:
        """Add a note to the container; a note with the same ``key`` is added once."""
        conn.execute(
            "INSERT INTO notes (container, key, text, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET text = excluded.text",
            (_text(alert_id), _text(key), _text(text), utc_now()),
        )

    def container(self, alert_id: str) -> dict[str, Any] | None:
        """One container with its tags, notes and artifact count, or None."""
        conn = self._connect()
        row = conn.execute("SELECT * FROM containers WHERE alert_id = ?", (alert_id,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["tags"] = json.loads(out["tags"])
        out["data"] = json.loads(out["data"])
        out["notes"] = [r[0] for r in conn.execute(
            "SELECT text FROM notes WHERE container = ? ORDER BY id", (alert_id,))]
        out["artifact_count"] = conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE container = ?", (alert_id,)).fetchone()[0]
        return out

    def containers(self) -> list[dict[str, Any]]:
        """All containers, oldest first (without their data)."""
        return self._rows(
            "SELECT c.alert_id, c.name, c.severity, c.status, c.source, c.tags, c.created_at,"
            " (SELECT COUNT(*) FROM artifacts a WHERE a.container = c.alert_id) AS artifact_count"
            " FROM containers c ORDER BY c.created_at, c.alert_id", json_columns=("tags",))

    def containers_page(self, after: str | None = None,
                        limit: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Containers in :meth:`containers` order (oldest first), as a stream
        of ``(cursor, container)``: those after the cursor ``after`` (see
        :func:`page_cursor`), at most ``limit`` (None: all). Keyset
        pagination on the (created_at, alert_id) index, never OFFSET, so a
        page costs the same at any depth. ``cursor`` is the value of
        ``after`` that continues behind that container."""
        sql = ("SELECT c.alert_id, c.name, c.severity, c.status, c.source, c.tags, c.created_at,"
               " (SELECT COUNT(*) FROM artifacts a WHERE a.container = c.alert_id) AS artifact_count"
               " FROM containers c")
        args: list[Any] = []
        if after is not None:
            created, alert_id = _cursor_parts(after, "container", str)
            sql += " WHERE (c.created_at, c.alert_id) > (?, ?)"
            args += [created, alert_id]
        sql += " ORDER BY c.created_at, c.alert_id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self._connect().execute(sql, args):
            item = dict(row)
            item["tags"] = json.loads(item["tags"])
            yield page_cursor("container", item["created_at"], item["alert_id"]), item

    # -- artifacts --------------------------------------------------------

    def upsert_artifacts(self, conn: sqlite3.Connection, artifacts: list[dict[str, Any]]) -> int:
        """Insert or update artifacts by ``source_data_identifier``; returns how
        many were new.

        The artifacts of one container are written at most once while they do
        not change: a digest of the whole list is kept per container, and an
        unchanged list (an alert re-run, say) is neither serialised row by row
        nor written again."""
        if not artifacts:
            return 0
        containers = sorted({a["container"] for a in artifacts})
        digest = _digest(artifacts) if len(containers) == 1 else None
        if digest is not None:
            row = conn.execute("SELECT digest, count FROM artifact_digests WHERE container = ?",
                               (_text(containers[0]),)).fetchone()
            if row is not None and row[0] == digest and row[1] == len(artifacts):
                return 0
        new = self._upsert_artifacts(conn, artifacts, containers)
        if digest is not None:
            conn.execute("INSERT INTO artifact_digests (container, digest, count) VALUES (?, ?, ?)"
                         " ON CONFLICT(container) DO UPDATE SET digest = excluded.digest, count = excluded.count",
                         (_text(containers[0]), digest, len(artifacts)))
        else:  # rows changed without a digest: none of these containers may be skipped on its old one
            conn.executemany("DELETE FROM artifact_digests WHERE container = ?", [(_text(c),) for c in containers])
        return new

    def _upsert_artifacts(self, conn: sqlite3.Connection, artifacts: list[dict[str, Any]],
                          containers: list[str]) -> int:
        now = utc_now()

        def count() -> int:
            return sum(conn.execute("SELECT COUNT(*) FROM artifacts WHERE container = ?", (c,)).fetchone()[0]
                       for c in containers)

        before = count()
        conn.executemany(
            "INSERT INTO artifacts (source_data_identifier, container, name, label, type, severity, body,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(source_data_identifier) DO UPDATE SET name = excluded.name,"
            " severity = excluded.severity, body = excluded.body, updated_at = excluded.updated_at"
            " WHERE artifacts.body != excluded.body",
            # A generator: the rows are never all in memory at once.
            ((_text(a["source_data_identifier"]), _text(a["container"]), _text(a["name"]),
              _text(a.get("label", "file")), _text(a.get("type", "file")),
              _text(a.get("severity", "informational")), _dumps(a), now, now)
             for a in artifacts),
        )
        return count() - before

    def artifacts(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        """Stored artifacts (as the action produced them), oldest first."""
        conn = self._connect()
        if alert_id is None:
            rows = conn.execute("SELECT body FROM artifacts ORDER BY container, rowid")
        else:
            rows = conn.execute("SELECT body FROM artifacts WHERE container = ? ORDER BY rowid", (alert_id,))
        return [json.loads(r[0]) for r in rows]

    def artifacts_page(self, alert_id: str | None = None, after: str | None = None,
                       limit: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stored artifacts in :meth:`artifacts` order, as a stream of
        ``(cursor, artifact)``: those after the cursor ``after``, at most
        ``limit`` (None: all). Keyset pagination on (container, rowid) through
        the ``artifacts_container`` index, never OFFSET: the first page of a
        million artifacts costs what it costs for ten. ``cursor`` is the
        value of ``after`` that continues behind that artifact."""
        sql = "SELECT container, rowid, body FROM artifacts"
        where: list[str] = []
        args: list[Any] = []
        if alert_id is not None:
            where.append("container = ?")
            args.append(alert_id)
        if after is not None:
            container, rowid = _cursor_parts(after, "artifact", int)
            where.append("(container, rowid) > (?, ?)")
            args += [container, rowid]
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY container, rowid"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for container, rowid, body in self._connect().execute(sql, args):
            yield page_cursor("artifact", container, rowid), json.loads(body)

    def artifacts_with_hash(self, digest: str) -> list[dict[str, Any]]:
        """Every stored artifact (of any alert) whose MD5, SHA-1 or SHA-256 is
        ``digest`` (lowercase hex), in :meth:`artifacts` order."""
        digest = digest.lower()
        out = []
        # instr() on the stored JSON text (hashes are stored in lowercase) is
        # a cheap filter; the exact check on the decoded artifact decides (a
        # hash may also appear inside a name).
        for (body,) in self._connect().execute(
                "SELECT body FROM artifacts WHERE instr(body, ?) > 0 ORDER BY container, rowid", (digest,)):
            artifact = json.loads(body)
            cef = artifact.get("cef") or {}
            if any(str(cef.get(k) or "").lower() == digest for k in ("fileHashMd5", "fileHashSha1", "fileHashSha256")):
                out.append(artifact)
        return out

    # -- action results ---------------------------------------------------

    def save_action_result(self, result: ActionResult, *, container: str | None, started: float,
                           container_fields: dict[str, Any] | None = None) -> int:
        """Write an action result in one transaction: its container (when it
        has one), artifacts and a run record. Returns the run id."""
        duration_ms = (time.time() - started) * 1000
        started_at = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="milliseconds")
        with self.transaction() as conn:
            if container is not None and (result.artifacts or result.ok or container_fields):
                fields = dict(container_fields or {})
                severity = fields.pop("severity", None)
                self.upsert_container(conn, container, **fields)
                if result.artifacts:
                    self.upsert_artifacts(conn, result.artifacts)
                    top = severity_scale.highest(a.get("severity") for a in result.artifacts)
                    self.raise_severity(conn, container, top or severity_scale.DEFAULT)
                if severity:
                    self.raise_severity(conn, container, severity)
            cur = conn.execute(
                "INSERT INTO action_runs (action, container, status, message, parameter, summary, error,"
                " started_at, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_text(result.action), _text(container), _text(result.status), _text(result.message),
                 _dumps(result.parameter),
                 _dumps(result.summary), _dumps(result.error) if result.error else None, started_at, duration_ms),
            )
            return int(cur.lastrowid or 0)

    def action_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent action runs, newest first."""
        rows = self._connect().execute("SELECT * FROM action_runs ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    # -- playbook runs ------------------------------------------------------

    def save_playbook_run(self, conn: sqlite3.Connection, run_id: str, *, playbook: str, container: str,
                          trigger: str, status: str, record: dict[str, Any], started_at: str,
                          finished_at: str | None) -> None:
        """Insert or replace a playbook run record (id chosen by the engine)."""
        conn.execute(
            "INSERT INTO playbook_runs (id, playbook, container, trigger, status, record, started_at, finished_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET status = excluded.status,"
            " record = excluded.record, finished_at = excluded.finished_at",
            (_text(run_id), _text(playbook), _text(container), _text(trigger), _text(status), _dumps(record),
             started_at, finished_at),
        )

    def playbook_run(self, run_id: str) -> dict[str, Any] | None:
        """One playbook run record, or None."""
        row = self._connect().execute("SELECT * FROM playbook_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["record"] = json.loads(out["record"])
        return out

    def playbook_run_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of the playbook runs starting with ``prefix`` (at most
        ``limit``, sorted), through the primary key index."""
        if not prefix:
            return []
        rows = self._connect().execute(
            "SELECT id FROM playbook_runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit))
        return [r[0] for r in rows]

    def playbook_runs(self, container: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Playbook runs, newest first, without their full records."""
        sql = "SELECT id, playbook, container, trigger, status, started_at, finished_at FROM playbook_runs"
        args: tuple[Any, ...] = ()
        if container is not None:
            sql += " WHERE container = ?"
            args = (container,)
        sql += " ORDER BY started_at DESC, id LIMIT ?"
        return [dict(r) for r in self._connect().execute(sql, args + (limit,))]

    def pending_playbook_runs(self, max_attempts: int = 1) -> list[dict[str, Any]]:
        """Runs to (re)start, oldest first: those left ``pending`` or
        ``running`` (e.g. by a crash), and triggered runs that failed after
        fewer than ``max_attempts`` attempts."""
        return self._rows("SELECT * FROM playbook_runs WHERE status IN ('pending', 'running')"
                          " OR (status = 'failed' AND trigger = 'new_alert' AND attempts < ?)"
                          " ORDER BY started_at, id", (max_attempts,), json_columns=("record",))

    def start_attempt(self, run_id: str) -> int:
        """Count one more attempt of a run; returns the new count."""
        with self.transaction() as conn:
            conn.execute("UPDATE playbook_runs SET attempts = attempts + 1 WHERE id = ?", (run_id,))
            row = conn.execute("SELECT attempts FROM playbook_runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0]) if row else 0

    def count_attempt(self, conn: sqlite3.Connection, run_id: str) -> None:
        """Count one more attempt of a run, in the caller's transaction."""
        conn.execute("UPDATE playbook_runs SET attempts = attempts + 1 WHERE id = ?", (db_text(run_id),))

    # -- checkpoints ------------------------------------------------------

    def checkpoint(self, name: str) -> JSON:
        """The stored checkpoint value (JSON), or None."""
        row = self._connect().execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def seen_stamp(self, conn: sqlite3.Connection, poller: str, alert_id: str) -> str | None:
        """The timestamp at which ``poller`` took the alert in, or None."""
        row = conn.execute("SELECT stamp FROM poller_seen WHERE poller = ? AND alert_id = ?",
                           (poller, alert_id)).fetchone()
        return row[0] if row else None

    def mark_seen(self, conn: sqlite3.Connection, poller: str, alert_id: str, stamp: str) -> None:
        """Remember that ``poller`` took the alert in at ``stamp``."""
        conn.execute("INSERT INTO poller_seen (poller, alert_id, stamp) VALUES (?, ?, ?)"
                     " ON CONFLICT(poller, alert_id) DO UPDATE SET stamp = excluded.stamp",
                     (poller, _text(alert_id), stamp))

    def forget_seen(self, conn: sqlite3.Connection, poller: str, before: str) -> None:
        """Drop seen marks older than ``before`` (outside any overlap window)."""
        conn.execute("DELETE FROM poller_seen WHERE poller = ? AND stamp < ?", (poller, before))

    def set_checkpoint(self, conn: sqlite3.Connection, name: str, value: Any) -> None:
        """Set a checkpoint inside the caller's transaction."""
        conn.execute(
            "INSERT INTO checkpoints (name, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (name, _dumps(value), utc_now()),
        )

    # -- quarantine -------------------------------------------------------

    def quarantine_alert(self, poller: str, alert_id: str, reason: str, *, stamp: str | None,
                         alert: str | None, transient: bool) -> int:
        """Record (or record again) an alert the poller could not take in, in
        its own transaction; returns how many times it has been quarantined.
        ``alert`` is the alert as JSON text when it could be serialised."""
        now = utc_now()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO quarantine (poller, alert_id, reason, stamp, alert, transient, attempts, first_seen,"
                " last_seen) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT(poller, alert_id) DO UPDATE SET"
                " reason = excluded.reason, stamp = coalesce(excluded.stamp, quarantine.stamp),"
                " alert = coalesce(excluded.alert, quarantine.alert), transient = excluded.transient,"
                " attempts = quarantine.attempts + 1, last_seen = excluded.last_seen",
                (poller, db_text(alert_id), db_text(reason), stamp, alert, int(transient), now, now),
            )
            row = conn.execute("SELECT attempts FROM quarantine WHERE poller = ? AND alert_id = ?",
                               (poller, db_text(alert_id))).fetchone()
        return int(row[0]) if row else 1

    def quarantined(self, poller: str | None = None) -> list[dict[str, Any]]:
        """Quarantined alerts, most recently seen first, without their bodies:
        ``poller``, ``alert_id``, ``reason``, ``stamp``, ``transient``,
        ``attempts``, ``first_seen``, ``last_seen``."""
        sql = ("SELECT poller, alert_id, reason, stamp, transient, attempts, first_seen, last_seen"
               " FROM quarantine")
        args: tuple[Any, ...] = ()
        if poller is not None:
            sql += " WHERE poller = ?"
            args = (poller,)
        rows = self._rows(sql + " ORDER BY last_seen DESC, alert_id", args)
        for row in rows:
            row["transient"] = bool(row["transient"])
        return rows

    def quarantine_entry(self, poller: str, alert_id: str) -> dict[str, Any] | None:
        """One quarantined alert with its stored body (``alert``, JSON text or
        None), or None when it is not quarantined."""
        found = self._rows("SELECT * FROM quarantine WHERE poller = ? AND alert_id = ?", (poller, db_text(alert_id)))
        return found[0] if found else None

    def retriable_quarantine(self, poller: str, max_attempts: int) -> list[dict[str, Any]]:
        """Quarantined alerts whose cause was transient (a store write that
        failed), stored with their body, with fewer than ``max_attempts``."""
        return self._rows("SELECT * FROM quarantine WHERE poller = ? AND transient = 1 AND alert IS NOT NULL"
                          " AND attempts < ? ORDER BY stamp, alert_id", (poller, max_attempts))

    def release_quarantine(self, conn: sqlite3.Connection, poller: str, alert_id: str) -> None:
        """Forget a quarantined alert that has now been taken in."""
        conn.execute("DELETE FROM quarantine WHERE poller = ? AND alert_id = ?", (poller, db_text(alert_id)))

    # -- run leases -------------------------------------------------------

    def claim_playbook_run(self, run_id: str, owner: str, lease: timedelta = LEASE) -> bool:
        """Take the lease of a run for ``owner``; False when another owner
        holds a lease that has not expired and is not known to be dead.
        Already holding it for most of ``lease`` costs a read, not a write."""
        if self._holding(run_id, owner, lease):
            return True
        with self.transaction() as conn:
            row = conn.execute("SELECT owner, lease_expires FROM playbook_runs WHERE id = ?",
                               (db_text(run_id),)).fetchone()
            if row is None:
                return False
            holder, expires = row[0], row[1]
            if holder and holder != owner and expires and expires > utc_now() and owner_alive(holder):
                return False
            conn.execute("UPDATE playbook_runs SET owner = ?, heartbeat = ?, lease_expires = ? WHERE id = ?",
                         (owner, utc_now(), utc_now(lease), db_text(run_id)))
        return True

    def renew_lease(self, run_id: str, owner: str, lease: timedelta = LEASE) -> bool:
        """Extend ``owner``'s lease of a run (its heartbeat); False when the
        run is no longer leased to ``owner``. A lease renewed less than a
        quarter of ``lease`` ago is left as it is (a read, not a write)."""
        if self._holding(run_id, owner, lease):
            return True
        with self.transaction() as conn:
            cur = conn.execute("UPDATE playbook_runs SET heartbeat = ?, lease_expires = ? WHERE id = ? AND owner = ?",
                               (utc_now(), utc_now(lease), db_text(run_id), owner))
        return bool(cur.rowcount)

    def release_playbook_run(self, run_id: str, owner: str, conn: sqlite3.Connection | None = None) -> None:
        """End ``owner``'s lease of a run (the owner stays recorded), in the
        caller's transaction ``conn`` if given. A run not leased to ``owner``
        costs a read, not a write."""
        sql = "UPDATE playbook_runs SET heartbeat = ?, lease_expires = NULL WHERE id = ? AND owner = ?"
        if conn is not None:
            conn.execute(sql, (utc_now(), db_text(run_id), owner))
            return
        row = self._connect().execute("SELECT owner, lease_expires FROM playbook_runs WHERE id = ?",
                                      (db_text(run_id),)).fetchone()
        if row is None or row[0] != owner or row[1] is None:
            return
        with self.transaction() as tx:
            tx.execute(sql, (utc_now(), db_text(run_id), owner))

    def _holding(self, run_id: str, owner: str, lease: timedelta) -> bool:
        """Whether ``owner`` holds the run's lease with more than three
        quarters of ``lease`` left (renewed moments ago: no write needed)."""
        row = self._connect().execute("SELECT owner, lease_expires FROM playbook_runs WHERE id = ?",
                                      (db_text(run_id),)).fetchone()
        return bool(row is not None and row[0] == owner and row[1] and row[1] > utc_now(lease * 3 / 4))

    def lease_in(self, conn: sqlite3.Connection, run_id: str, owner: str, lease: timedelta = LEASE) -> None:
        """Lease a run just queued in ``conn`` (nobody else can hold it yet)
        to ``owner``, in the caller's transaction."""
        conn.execute("UPDATE playbook_runs SET owner = ?, heartbeat = ?, lease_expires = ? WHERE id = ?",
                     (owner, utc_now(), utc_now(lease), db_text(run_id)))

    def leased_elsewhere(self, row: dict[str, Any], owner: str) -> bool:
        """Whether a run row is held by a live lease of another owner."""
        holder, expires = row.get("owner"), row.get("lease_expires")
        return bool(holder and holder != owner and expires and expires > utc_now() and owner_alive(holder))
