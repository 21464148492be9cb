"""Fixtures for the simulator's own tests: one shared simulator, a factory for
simulators with custom options, and an authenticated client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mde_simulator import Simulator, SimulatorOptions
from tests.simulator.sim_helpers import Api, acquire


@pytest.fixture(scope="session")
def sim_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state directory shared by the tests' simulators (keys reused)."""
    return tmp_path_factory.mktemp("sim-state")


@pytest.fixture(scope="session")
def sim(sim_state: Path) -> Iterator[Simulator]:
    """The shared simulator: seed 7, rate limits out of the way."""
    options = SimulatorOptions(seed=7, rate_per_minute=1_000_000, rate_per_hour=10_000_000)
    with Simulator(sim_state, options) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def token(sim: Simulator) -> str:
    """An access token of the default app, obtained with msal and the secret."""
    result = acquire(sim, sim.client_secret)
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture(scope="session")
def api(sim: Simulator, token: str) -> Api:
    """Authenticated client of the shared simulator."""
    return Api(sim, token)


@pytest.fixture
def make_sim(sim_state: Path) -> Iterator[Callable[..., Simulator]]:
    """Factory: a started simulator with the given options, stopped afterwards."""
    started: list[Simulator] = []

    def make(**options: Any) -> Simulator:
        simulator = Simulator(sim_state, SimulatorOptions(**options)).start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()
