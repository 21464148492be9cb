"""Building the connector in-process exactly as the CLI does, with the rate
budget on the simulator's scaled clock.

The budget's clock is matched to the simulator's through the configuration
key ``rate_time_scale``, which multiplies the budget's windows: for a
simulator running ``time_scale`` times faster it is ``1 / time_scale``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A budget with the production limits (100/min, 1,500/h) on a clock so fast
# that it never makes a latency loop wait: its SQLite work is measured, its
# sleeping is not (every scenario records the waits).
UNBOUND_SCALE = 10_000.0


class SleepLog:
    """A real sleep that remembers how long the budget made us wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def config_values(values: dict[str, Any], state_dir: Path, time_scale: float) -> dict[str, Any]:
    """Connector configuration values for a simulator running ``time_scale``
    times faster than real time."""
    return {**values, "state_dir": str(state_dir), "rate_time_scale": 1.0 / time_scale}


def make_context(values: dict[str, Any], state_dir: Path, time_scale: float,
                 sleep: Callable[[float], None] | None = None) -> Any:
    """An ActionContext as the CLI builds it: configuration resolved and
    validated, store in ``state_dir``, client from the configuration on first
    use. ``sleep`` (if given) replaces the rate budget's sleep, to observe it."""
    from connector.actions import ActionContext
    from connector.config import resolve
    from connector.http.client import DefenderClient
    from connector.runtime.store import Store

    config = resolve(config_values(values, state_dir, time_scale))

    def factory(cfg: Any) -> Any:
        client = DefenderClient.from_config(cfg)
        if sleep is not None:
            client.budget.sleep = sleep
        return client

    return ActionContext(config=config, store=Store.open(config.state_dir), client_factory=factory)
