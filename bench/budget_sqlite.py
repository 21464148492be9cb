"""The rate budget as it was (a SQLite table, two write transactions per
call), and a one-transaction variant, kept only to be measured against the
slot file that replaced them (``bench/budget_cost.py``).

The one-transaction variant settles the previous slot inside the next
call's transaction instead of in an autocommit UPDATE of its own: one
``BEGIN IMMEDIATE`` ... ``COMMIT`` per call. (Settling later errs late,
which is safe.)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from connector.sqlite_db import open_database

Clock = Callable[[], float]
Sleeper = Callable[[float], None]

# A slot taken more than this far in the future was taken before the clock
# stepped back (the clock is read under the write lock, so nothing else puts
# one there).
STEP_TOLERANCE = 1.0


def _create_schema(conn: sqlite3.Connection) -> None:
    # t: until when the slot counts; start: when it was taken.
    conn.execute("CREATE TABLE IF NOT EXISTS calls (t REAL NOT NULL, start REAL NOT NULL DEFAULT 0)")
    conn.execute("CREATE INDEX IF NOT EXISTS calls_t ON calls (t)")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    if "start" not in columns:
        # A budget file written before slots recorded their start: each
        # counted from its own time, which is the latest it can have started.
        conn.execute("BEGIN IMMEDIATE")
        try:  # another process may have migrated it a moment ago
            columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
            if "start" not in columns:
                conn.execute("ALTER TABLE calls ADD COLUMN start REAL NOT NULL DEFAULT 0")
                conn.execute("UPDATE calls SET start = t")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


# Slots taken "in the future" (the clock stepped back) move back together so
# that the newest starts now; the range on t (t >= start) keeps it an index
# lookup when nothing needs moving. The shift is computed once per statement.
_SHIFT_FUTURE = (
    "UPDATE calls SET t = t - (SELECT max(start) FROM calls) + :now,"
    " start = start - (SELECT max(start) FROM calls) + :now"
    " WHERE t > :future AND start > :future"
)


class SqliteBudget:
    """Sliding-window limits (``(limit, window_seconds)`` pairs) over a shared file.

    ``acquire(deadline)`` blocks until a slot is free, or raises
    RateLimitedError when waiting would pass ``deadline`` (a ``clock()`` value).
    ``time_scale`` > 1 shrinks the windows (a simulator's scaled clock).

    ``hold``: the longest a request may take (its connect + read timeout). A
    slot counts until ``hold`` seconds after it was taken unless ``settle()``,
    called once the response is in, moves it to that moment; see the module
    docstring for why an unsettled slot must err late.
    """

    def __init__(
        self,
        path: Path,
        limits: list[tuple[int, float]],
        *,
        clock: Clock = time.time,
        sleep: Sleeper = time.sleep,
        time_scale: float = 1.0,
        hold: float = 0.0,
    ) -> None:
        self.path = path
        self.limits = [(int(n), float(w) / time_scale) for n, w in limits if n and n > 0]
        self.clock = clock
        self.sleep = sleep
        self.hold = max(0.0, float(hold))
        self._local = threading.local()
        # One statement for every window: the limit-th most recent slot in
        # each decides when the next one opens there.
        window_sql = "(SELECT t FROM calls WHERE t > :since{i} ORDER BY t DESC LIMIT 1 OFFSET :skip{i})"
        self._select = "SELECT " + ", ".join(window_sql.format(i=i) for i in range(len(self.limits)))

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            from connector.fsguard import private_dir

            private_dir(self.path.parent)
            conn = open_database(self.path, timeout=30, setup=_create_schema)
            self._local.conn = conn
        return conn

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or return how many seconds until one frees."""
        if not self.limits:
            return 0.0
        conn = self._db()
        longest = max(w for _, w in self.limits)
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read under the lock: every slot already written was taken
            # before this moment, unless the clock stepped back.
            now = self.clock()
            conn.execute(_SHIFT_FUTURE, {"now": now, "future": now + STEP_TOLERANCE})
            conn.execute("DELETE FROM calls WHERE t <= ?", (now - longest,))
            params: dict[str, float] = {}
            for i, (limit, window) in enumerate(self.limits):
                params[f"since{i}"], params[f"skip{i}"] = now - window, limit - 1
            row = conn.execute(self._select, params).fetchone()
            wait = max([0.0] + [t + window - now for t, (_, window) in zip(row, self.limits, strict=True)
                                if t is not None])
            if wait <= 0:
                self._local.slot = conn.execute("INSERT INTO calls (t, start) VALUES (?, ?)",
                                                (now + self.hold, now)).lastrowid
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return wait

    def settle(self) -> None:
        """Count this thread's last slot until now (the response arrived):
        the server counted the call at the latest now."""
        slot = getattr(self._local, "slot", None)
        if slot is None or not self.limits:
            return
        self._local.slot = None
        self._db().execute("UPDATE calls SET t = max(start, ?) WHERE rowid = ?", (self.clock(), slot))

    def describe(self) -> str:
        """Human-readable limits, e.g. ``100 calls/60 s, 1500 calls/3600 s``."""
        return ", ".join(f"{n} calls/{w:g} s" for n, w in self.limits)

    def close(self) -> None:
        """Close this thread's database connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class SqliteOneTransactionBudget(SqliteBudget):
    """``settle()`` only remembers the response time; the next ``try_acquire``
    writes it inside its own transaction."""

    def settle(self) -> None:
        slot = getattr(self._local, "slot", None)
        if slot is not None:
            self._local.pending = (self.clock(), slot)
            self._local.slot = None

    def try_acquire(self) -> float:
        conn = self._db()
        longest = max(w for _, w in self.limits)
        conn.execute("BEGIN IMMEDIATE")
        try:
            pending = getattr(self._local, "pending", None)
            if pending is not None:
                conn.execute("UPDATE calls SET t = max(start, ?) WHERE rowid = ?", pending)
                self._local.pending = None
            now = self.clock()
            conn.execute(_SHIFT_FUTURE, {"now": now, "future": now + STEP_TOLERANCE})
            conn.execute("DELETE FROM calls WHERE t <= ?", (now - longest,))
            params: dict[str, float] = {}
            for i, (limit, window) in enumerate(self.limits):
                params[f"since{i}"], params[f"skip{i}"] = now - window, limit - 1
            row = conn.execute(self._select, params).fetchone()
            wait = max([0.0] + [t + window - now for t, (_, window) in zip(row, self.limits, strict=True)
                                if t is not None])
            if wait <= 0:
                self._local.slot = conn.execute("INSERT INTO calls (t, start) VALUES (?, ?)",
                                                (now + self.hold, now)).lastrowid
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return wait
