"""One client-side rate budget shared by every process on the machine.

The Defender API allows 100 calls a minute and 1,500 an hour per application.
Every API call (polling and actions, in one process or several) first takes a
slot from this budget, kept in a small SQLite file in ``state_dir``, so the
connector itself never provokes a 429.

Why not a library: the budget is two sliding windows over one table of call
times, with ``BEGIN IMMEDIATE`` giving the cross-process atomicity; about
sixty lines here against a dependency with its own bucket abstractions, and
the clock stays injectable for tests.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from connector.errors import RateLimitedError
from connector.sqlite_db import open_database

Clock = Callable[[], float]
Sleeper = Callable[[float], None]


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS calls (t REAL NOT NULL)")
    conn.execute("CREATE INDEX IF NOT EXISTS calls_t ON calls (t)")


class RateBudget:
    """Sliding-window limits (``(limit, window_seconds)`` pairs) over a shared file.

    ``acquire(deadline)`` blocks until a slot is free, or raises
    RateLimitedError when waiting would pass ``deadline`` (a ``clock()`` value).
    ``time_scale`` > 1 shrinks the windows (a simulator's scaled clock).

    A slot is taken before the request is sent, but the server counts the
    call when it arrives, a connection set-up later. ``settle()``, called
    once the response is in, moves this thread's last slot to that moment, so
    that every settled slot is at or after the server's own count and a
    window this budget sees as free is free for the server too.
    """

    def __init__(
        self,
        path: Path,
        limits: list[tuple[int, float]],
        *,
        clock: Clock = time.time,
        sleep: Sleeper = time.sleep,
        time_scale: float = 1.0,
    ) -> None:
        self.path = path
        self.limits = [(int(n), float(w) / time_scale) for n, w in limits if n and n > 0]
        self.clock = clock
        self.sleep = sleep
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = open_database(self.path, timeout=30, setup=_create_schema)
            self._local.conn = conn
            try:
                self.path.chmod(0o600)
            except OSError:
                pass
        return conn

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or return how many seconds until one frees."""
        if not self.limits:
            return 0.0
        conn = self._db()
        now = self.clock()
        longest = max(w for _, w in self.limits)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM calls WHERE t <= ?", (now - longest,))
            wait = 0.0
            for limit, window in self.limits:
                # The limit-th most recent call inside the window decides when
                # the next slot opens.
                row = conn.execute(
                    "SELECT t FROM calls WHERE t > ? ORDER BY t DESC LIMIT 1 OFFSET ?",
                    (now - window, limit - 1),
                ).fetchone()
                if row is not None:
                    wait = max(wait, row[0] + window - now)
            if wait <= 0:
                self._local.slot = conn.execute("INSERT INTO calls (t) VALUES (?)", (now,)).lastrowid
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return max(wait, 0.0)

    def acquire(self, deadline: float | None = None) -> float:
        """Block until a slot is taken; return the seconds spent waiting."""
        waited = 0.0
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return waited
            # A tiny margin so we wake after the slot has really freed.
            wait += 0.005
            if deadline is not None and self.clock() + wait > deadline:
                raise RateLimitedError(
                    f"The connector's own rate budget ({self.describe()}) has no free call "
                    f"for {wait:.0f} more seconds, beyond the retry time budget.",
                    hint="Try again later, or raise 'retry_budget_seconds'.",
                )
            self.sleep(wait)
            waited += wait

    def settle(self) -> None:
        """Count this thread's last slot from now (the response arrived)."""
        slot = getattr(self._local, "slot", None)
        if slot is None or not self.limits:
            return
        self._local.slot = None
        self._db().execute("UPDATE calls SET t = max(t, ?) WHERE rowid = ?", (self.clock(), slot))

    def describe(self) -> str:
        """Human-readable limits, e.g. ``100 calls/60 s, 1500 calls/3600 s``."""
        return ", ".join(f"{n} calls/{w:g} s" for n, w in self.limits)

    def close(self) -> None:
        """Close this thread's database connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
