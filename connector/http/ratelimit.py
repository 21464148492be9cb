"""One client-side rate budget shared by every process on the machine.

The Defender API allows 100 calls a minute and 1,500 an hour per application.
Every API call (polling and actions, in one process or several) first takes a
slot from this budget, kept in a small file in ``state_dir``, so the
connector itself never provokes a 429.

The file: the slots of the longest window, sorted by when they stop
counting, as three arrays of doubles behind a small header, read and written
whole under an exclusive ``flock``. One lock, one read, one write per call,
and two binary searches per window whatever the occupancy: the windows'
answer is the limit-th most recent slot, an index into the sorted array.
(It replaced a SQLite table that needed two write transactions per call and
slowed as the hour window filled.) Nothing is synced to disk: the budget
only has to survive processes, not the machine; a file torn by a power cut
is read as empty. A budget file of the SQLite era (``path`` itself) is read
once when the new file is created, so its slots keep counting across the
upgrade.

Why not a library: the budget is two sliding windows over one sorted array,
with ``flock`` giving the cross-process atomicity; a few dozen lines here
against a dependency with its own bucket abstractions, and the clock stays
injectable for tests.

Which clock: the wall clock (``time.time``). The file outlives processes and
reboots and is shared by every process on the host; a monotonic clock starts
again at each boot (a budget written before a reboot would lie in its
future) and can be offset per container (Linux time namespaces), while the
wall clock means the same to every process that opens the file. Its flaw is
that NTP may step it. A step *backwards* would leave every recorded call in
the future, and each would block the window for as long as the step (an hour
for an hour's step). So each slot also records when it was taken
(``start``), and the clock is read inside the write lock, so no slot can be
taken later than the current time: a slot that starts in the future means the
clock went back. Those slots are moved back together, keeping their spacing,
so that the newest one starts "now": how much real time passed since then is
unknown, and assuming none errs late, never early. A caller then waits at
most one window, not the length of the step. (A step forwards makes past
calls look older than they are; nothing on one host can tell, and NTP steps
forwards only when the clock was behind.)

When a slot counts: the server counts a call when it arrives, some time
after the slot is taken and before the response. A slot is therefore written
to count until ``hold`` seconds after it was taken (the request's whole
timeout: by then the server has counted the call or never will), and
``settle()``, once the response is in, moves it to the response time. A
process killed mid-request (SIGKILL) leaves its slot at the late end: it
errs late, never early, so the server never sees more calls in its window
than the budget allows.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path

from connector.errors import RateLimitedError
from connector.fsguard import private_dir

Clock = Callable[[], float]
Sleeper = Callable[[float], None]

# A slot taken more than this far in the future was taken before the clock
# stepped back (the clock is read under the lock, so nothing else puts one
# there).
STEP_TOLERANCE = 1.0

# Suffix of the slot file next to ``path`` (the SQLite file's name of old).
SLOTS_SUFFIX = ".slots"

# magic, number of slots, next slot id, latest start of any slot.
_HEADER = struct.Struct("<8sqqd")
_MAGIC = b"MDERATE1"
_SLOT_BYTES = 3 * 8  # t, start, id
_FIRST_READ = 1 << 16


class _Slots:
    """The file's content: ``t`` (until when each slot counts, ascending),
    ``start`` (when it was taken) and ``ids``, index-aligned."""

    __slots__ = ("t", "start", "ids", "next_id", "latest_start")

    def __init__(self) -> None:
        self.t = array("d")
        self.start = array("d")
        self.ids = array("d")
        self.next_id = 1
        self.latest_start = 0.0

    @classmethod
    def read(cls, fd: int) -> _Slots | None:
        """The slots in the file; None when it is empty (new), and empty
        slots when it is torn or foreign."""
        slots = cls()
        data = os.pread(fd, _FIRST_READ, 0)
        if not data:
            return None
        if len(data) < _HEADER.size:
            return slots
        magic, n, next_id, latest = _HEADER.unpack_from(data)
        size = _HEADER.size + n * _SLOT_BYTES
        if magic != _MAGIC or n < 0:
            return slots
        if len(data) < size:
            if os.fstat(fd).st_size < size:  # torn (or a garbled count)
                return slots
            data = os.pread(fd, size, 0)
            if len(data) < size:
                return slots
        view = memoryview(data)
        end = _HEADER.size
        for column in (slots.t, slots.start, slots.ids):
            column.frombytes(view[end:end + 8 * n])
            end += 8 * n
        slots.next_id, slots.latest_start = next_id, latest
        return slots

    def write(self, fd: int) -> None:
        header = _HEADER.pack(_MAGIC, len(self.t), self.next_id, self.latest_start)
        os.pwrite(fd, header + self.t.tobytes() + self.start.tobytes() + self.ids.tobytes(), 0)

    def insert(self, t: float, start: float, slot_id: float) -> None:
        pos = bisect_right(self.t, t)
        self.t.insert(pos, t)
        self.start.insert(pos, start)
        self.ids.insert(pos, slot_id)
        if start > self.latest_start:
            self.latest_start = start

    def pop(self, index: int) -> tuple[float, float, float]:
        return self.t.pop(index), self.start.pop(index), self.ids.pop(index)

    def find(self, slot_id: float, t: float) -> int:
        """Index of the slot with this id (``t`` its last known value, a hint)."""
        pos = bisect_right(self.t, t) - 1
        if 0 <= pos < len(self.ids) and self.ids[pos] == slot_id:
            return pos
        try:
            return self.ids.index(slot_id)
        except ValueError:
            return -1


def _legacy_slots(path: Path) -> list[tuple[float, float]]:
    """(t, start) of the slots in a budget file of the SQLite era, if any."""
    if not path.is_file():
        return []
    import sqlite3  # only once, on an upgrade: a run whose store is not opened never pays for it

    try:
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=5)
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
            if not columns:
                return []
            # Written before slots recorded their start: each counted from
            # its own time, which is the latest it can have started.
            start = "start" if "start" in columns else "t"
            return [(float(t), float(s)) for t, s in conn.execute(f"SELECT t, {start} FROM calls")]  # noqa: S608
        finally:
            conn.close()
    except sqlite3.Error:
        return []


class RateBudget:
    """Sliding-window limits (``(limit, window_seconds)`` pairs) over a shared file.

    ``acquire(deadline)`` blocks until a slot is free, or raises
    RateLimitedError when waiting would pass ``deadline`` (a ``clock()`` value).
    ``time_scale`` > 1 shrinks the windows (a simulator's scaled clock).

    ``path`` names the budget; its slots live in ``path`` + ``.slots``
    (a SQLite file at ``path`` itself, from before, is imported once).

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
        self.slots_path = path.with_name(path.name + SLOTS_SUFFIX)
        self.limits = [(int(n), float(w) / time_scale) for n, w in limits if n and n > 0]
        self.clock = clock
        self.sleep = sleep
        self.hold = max(0.0, float(hold))
        #: Called with the seconds about to be waited for a free slot (a
        #: terminal shows them); None: nothing is told.
        self.on_wait: Callable[[float], None] | None = None
        self._local = threading.local()
        self._longest = max((w for _, w in self.limits), default=0.0)

    def _fd(self) -> int:
        fd: int | None = getattr(self._local, "fd", None)
        if fd is None or self._local.pid != os.getpid():
            private_dir(self.path.parent)
            # One descriptor per thread and process: flock excludes between
            # open files, so threads exclude each other as processes do (a
            # descriptor inherited through fork would share the parent's lock).
            fd = os.open(self.slots_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._local.fd, self._local.pid = fd, os.getpid()
        return fd

    def _load(self, fd: int) -> _Slots:
        slots = _Slots.read(fd)
        if slots is None:  # a new file: carry over the slots of the SQLite era
            slots = _Slots()
            for t, start in _legacy_slots(self.path):
                slots.insert(t, start, float(slots.next_id))
                slots.next_id += 1
        return slots

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or return how many seconds until one frees."""
        if not self.limits:
            return 0.0
        fd = self._fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # Read under the lock: every slot already written was taken
            # before this moment, unless the clock stepped back.
            now = self.clock()
            slots = self._load(fd)
            ts = slots.t
            changed = False
            if slots.latest_start > now + STEP_TOLERANCE and ts:
                self._shift_future(slots, now)
                changed = True
            old = bisect_right(ts, now - self._longest)
            if old:
                del ts[:old], slots.start[:old], slots.ids[:old]
                changed = True
            n = len(ts)
            wait = 0.0
            for limit, window in self.limits:
                # The limit-th most recent slot that still counts in this
                # window decides when the next one opens there.
                if n - bisect_right(ts, now - window) >= limit:
                    wait = max(wait, ts[n - limit] + window - now)
            if wait <= 0:
                slot_id, t = float(slots.next_id), now + self.hold
                slots.next_id += 1
                slots.insert(t, now, slot_id)
                self._local.slot = (slot_id, t, now)
                slots.write(fd)
            elif changed:
                slots.write(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return wait

    @staticmethod
    def _shift_future(slots: _Slots, now: float) -> None:
        # Slots taken "in the future" (the clock stepped back) move back
        # together, keeping their spacing, so that the newest starts now.
        shift = slots.latest_start - now
        future = now + STEP_TOLERANCE
        moved = [slots.pop(i) for i in range(len(slots.t) - 1, -1, -1)
                 if slots.t[i] > future and slots.start[i] > future]
        for t, start, slot_id in moved:
            slots.insert(t - shift, start - shift, slot_id)
        slots.latest_start = max(slots.start, default=now)

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
            if self.on_wait is not None:
                self.on_wait(wait)
            self.sleep(wait)
            waited += wait

    def settle(self) -> None:
        """Count this thread's last slot until now (the response arrived):
        the server counted the call at the latest now."""
        taken: tuple[float, float, float] | None = getattr(self._local, "slot", None)
        if taken is None or not self.limits:
            return
        self._local.slot = None
        fd = self._fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = self.clock()
            if self._settle_in_place(fd, *taken, now):
                return
            slots = self._load(fd)
            index = slots.find(taken[0], taken[1])
            if index < 0:
                return  # already out of every window
            t, start, slot_id = slots.pop(index)
            slots.insert(max(start, now), start, slot_id)
            slots.write(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _settle_in_place(fd: int, slot_id: float, t: float, start: float, now: float) -> bool:
        """The common case without reading the whole file: the slot is among
        the last few, unmoved (its ``t`` as written), and its new time keeps
        the order. Rewrites that one value; False when it cannot."""
        header = os.pread(fd, _HEADER.size, 0)
        if len(header) < _HEADER.size:
            return False
        magic, n, _, _ = _HEADER.unpack(header)
        if magic != _MAGIC or n < 1:
            return False
        k = min(n, 4)
        tail_t, tail_ids = array("d"), array("d")
        tail_t.frombytes(os.pread(fd, 8 * k, _HEADER.size + 8 * (n - k)))
        tail_ids.frombytes(os.pread(fd, 8 * k, _HEADER.size + 16 * n + 8 * (n - k)))
        if len(tail_t) != k or len(tail_ids) != k:
            return False
        for i in range(k - 1, -1, -1):
            if tail_ids[i] == slot_id:
                settled = max(start, now)
                if tail_t[i] != t or settled > t or (i > 0 and tail_t[i - 1] > settled) or (i == 0 and n > k):
                    return False  # moved, or it would have to move: the whole file
                os.pwrite(fd, struct.pack("<d", settled), _HEADER.size + 8 * (n - k + i))
                return True
        return False

    def describe(self) -> str:
        """Human-readable limits, e.g. ``100 calls/60 s, 1500 calls/3600 s``."""
        return ", ".join(f"{n} calls/{w:g} s" for n, w in self.limits)

    def close(self) -> None:
        """Close this thread's file."""
        fd = getattr(self._local, "fd", None)
        if fd is not None:
            if self._local.pid == os.getpid():
                os.close(fd)
            self._local.fd = None
