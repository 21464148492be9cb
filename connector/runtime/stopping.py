"""Stopping ``watch`` and ``playbook run`` on SIGTERM or SIGINT.

The first signal is acknowledged on stderr at once ("stopping after the
current step") and sets a stop event: the poller takes no further alert and
starts no queued playbook run (they stay pending), a running playbook stops
before its next step, and every wait (the shared rate budget, a retry's
back-off) ends early by raising :class:`~connector.errors.Interrupted`. The
process then exits 130 (SIGINT) or 143 (SIGTERM), the shell's convention.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any, TypeVar

from connector.errors import Interrupted

_C = TypeVar("_C")

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class StopSignals:
    """A stop event set by SIGTERM/SIGINT once :meth:`install` is called."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        """Handle SIGTERM and SIGINT from now on (main thread only)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            # os.write, not print: the handler may interrupt a print to stderr.
            name = _NAMES.get(signal.Signals(signum), str(signum))
            os.write(2, f"\nmde-connector: {name} received; stopping after the current step.\n".encode())
        # Set from another thread: the handler runs in the main thread, which
        # may hold the event's lock at this very moment.
        threading.Thread(target=self.event.set, name="stop", daemon=True).start()

    @property
    def stopped(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set() or self.signum is not None

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise Interrupted as soon as a stop is asked for."""
        if self.event.wait(max(0.0, seconds)) or self.signum is not None:
            raise Interrupted("Stopped while waiting, as SIGTERM or SIGINT asked.")

    def interruptible(self, client: _C) -> _C:
        """``client`` (a DefenderClient) with its retry and rate-budget waits
        made interruptible."""
        setattr(client, "sleep", self.sleep)  # noqa: B010 - the client's retry waits
        budget = getattr(client, "budget", None)
        if budget is not None and hasattr(budget, "sleep"):
            budget.sleep = self.sleep
        return client

    def exit_code(self, default: int) -> int:
        """128 + the signal number once stopped by a signal, else ``default``."""
        return 128 + self.signum if self.signum is not None else default
