"""Opening the SQLite files that several processes share (store, rate budget).

One place for what both need: the file created 0600 before SQLite creates it
(its -wal and -shm files take the database file's mode), WAL journaling, and a
retry around the first statements. Switching a new database to WAL needs a
moment of exclusive access, and when several processes open it at the same
instant SQLite can answer "database is locked" straight away, without waiting
for its busy timeout; a retry within the same timeout keeps that from
reaching a user.

The WAL file stays between processes: by default the last connection to
close checkpoints the WAL into the database (two syncs), deletes it, and the
next process creates it again (a directory sync), on every CLI run. Where
Python exposes SQLite's documented ``SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE``
(``Connection.setconfig``, Python 3.12+), a closing connection leaves the WAL
as it is: checkpoints happen as SQLite's automatic ones (every 1,000 pages),
and ``journal_size_limit`` truncates the file after each. The trade-off is
that of ``synchronous=NORMAL`` in WAL mode, already in force for long-running
processes (``watch``, ``console``): a power cut (not a crash of the process)
can roll back the last transactions since a checkpoint; their writes are
idempotent upserts and a re-run restores them. On older Pythons the WAL is
checkpointed and removed at close, as before.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

# SQLite's documented "no checkpoint on close" option, where Python has it.
_NO_CHECKPOINT_ON_CLOSE: int | None = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)
# The WAL kept between processes is cut back to this size after a checkpoint.
WAL_SIZE_LIMIT = 4 * 1024 * 1024


def open_database(path: Path, *, timeout: float, setup: Callable[[sqlite3.Connection], object] | None = None,
                  read_only: bool = False) -> sqlite3.Connection:
    """A connection (autocommit, WAL, busy timeout) to ``path``; ``setup``
    (schema creation) runs once it is in WAL mode. Raises sqlite3.Error when
    the database stays locked past ``timeout`` seconds.

    ``read_only``: an existing database opened for reading only, which works
    where this user cannot write (a read-only directory or file); ``setup``
    does not run."""
    if read_only:
        return _open_read_only(path, timeout)
    if not path.exists():
        # Only when missing: closing any descriptor of a live database drops
        # this process's POSIX locks on it (SQLite's documented pitfall).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    setconfig = getattr(conn, "setconfig", None)
    if setconfig is not None and _NO_CHECKPOINT_ON_CLOSE is not None:
        setconfig(_NO_CHECKPOINT_ON_CLOSE, True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if setup is not None:
                setup(conn)
            return conn
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.005 + random.random() * 0.02)  # noqa: S311 - jitter, not security


def _open_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    uri = path.absolute().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    # A WAL database whose -shm file is missing and cannot be created (a
    # read-only directory): nobody can be writing it, so read it as an
    # unchanging file.
    conn = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, isolation_level=None)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn
