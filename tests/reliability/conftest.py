"""Fixtures of the reliability and security suite: one simulator with the
rate limits out of the way (the rate tests start their own), cleaned between
tests, and the end-of-run counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.support import STATS


@pytest.fixture(scope="session")
def rsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A simulator shared by this suite; rate limits far away."""
    from mde_simulator import Simulator, SimulatorOptions

    options = SimulatorOptions(rate_per_minute=1_000_000, rate_per_hour=10_000_000)
    with Simulator(tmp_path_factory.mktemp("rsim"), options) as sim:
        yield sim


@pytest.fixture
def sim(rsim: Any) -> Iterator[Any]:
    """The shared simulator with no scripted responses, faults or request log
    left over; each test's msal applications are its own."""
    from connector.http import auth
    from mde_simulator import Faults

    rsim.clear_script()
    rsim.set_faults(Faults())
    rsim.reset_log()
    auth._apps.clear()
    yield rsim
    rsim.clear_script()
    rsim.set_faults(Faults())
    auth._apps.clear()


@pytest.fixture
def own_sim(fresh_simulator: Any) -> Any:
    """A simulator of this test alone, for responses that are still being
    delayed when the client gives up: stopping it at teardown ends them, so
    their late request records never show up in another test's log."""
    from connector.http import auth

    auth._apps.clear()
    return fresh_simulator(rate_per_minute=1_000_000, rate_per_hour=10_000_000)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STATS:
        parts = ", ".join(f"{name} {n}" for name, n in sorted(STATS.items()))
        terminalreporter.write_line(f"reliability suite: {parts}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: kills or races real processes for several seconds; runs by default (deselect with "
        "-m 'not slow' for a quick local loop)")
