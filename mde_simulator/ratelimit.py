"""Per-app sliding-window rate limits on a (possibly sped-up) clock.

MDE allows 100 calls per minute and 1,500 per hour per application. The
limiter keeps the scaled time of every accepted call of the last hour; a call
is refused when the last 60 (scaled) seconds already hold ``per_minute`` calls
or the last 3,600 hold ``per_hour``. Refused calls do not count, so waiting
exactly the returned delay always frees a slot.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Sliding 60 s and 3,600 s windows per key, on ``clock() * time_scale``."""

    def __init__(
        self,
        per_minute: int,
        per_hour: int,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.per_minute = per_minute
        self.per_hour = per_hour
        self.time_scale = time_scale
        self._clock = clock
        self._origin = clock()
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def now(self) -> float:
        """Scaled seconds since the limiter was created."""
        return (self._clock() - self._origin) * self.time_scale

    def acquire(self, key: str) -> float:
        """Count a call for ``key``; returns 0.0 if allowed, else the real
        (unscaled) seconds until a slot frees."""
        with self._lock:
            now = self.now()
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now - 3600.0:
                calls.popleft()
            wait = 0.0
            if len(calls) >= self.per_hour:
                wait = max(wait, calls[len(calls) - self.per_hour] + 3600.0 - now)
            # Calls inside the last minute: those with time > now - 60.
            first_in_minute = bisect.bisect_right(calls, now - 60.0)
            in_minute = len(calls) - first_in_minute
            if in_minute >= self.per_minute:
                oldest_needed = calls[len(calls) - self.per_minute]
                wait = max(wait, oldest_needed + 60.0 - now)
            if wait > 0:
                return wait / self.time_scale
            calls.append(now)
            return 0.0

    def reset(self) -> None:
        """Forget every counted call."""
        with self._lock:
            self._calls.clear()


def format_retry_after(seconds: float, time_scale: float) -> str:
    """The ``Retry-After`` value for a wait of ``seconds`` real seconds.

    At ``time_scale == 1`` this is what Microsoft sends: whole seconds,
    rounded up, at least 1. On a sped-up clock, waits of a second or more are
    still whole seconds rounded up, while shorter waits are sent as a decimal
    rounded up to the millisecond (e.g. ``"0.25"``), so that fast tests and
    benchmarks are not slowed down by a one-second floor.
    """
    if time_scale == 1.0 or seconds >= 1.0:
        return str(max(1, math.ceil(seconds - 1e-9)))
    millis = max(1, math.ceil(seconds * 1000 - 1e-6))
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
