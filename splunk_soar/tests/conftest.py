"""Fixtures of the Splunk SOAR app tests (run by .ci/splunk-soar in the SDK
virtualenv, never by the main pytest run).

``soar`` runs actions through the SDK's local runner (``AppCliRunner``, what
``python -m src.app action ...`` runs) in this process, against the connector's
simulator over TLS, and records what the app hands to the platform: the
SDK's stand-in for SOAR keeps state in memory and accepts every container, so
the recorder plays SOAR's part of keeping one container per
source_data_identifier and one artifact per source_data_identifier in a
container.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

APP_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The connector's Defender + Entra ID simulator on loopback (TLS, own CA)."""
    from mde_simulator import Simulator, SimulatorOptions

    options = SimulatorOptions(rate_per_minute=1_000_000, rate_per_hour=10_000_000)
    with Simulator(tmp_path_factory.mktemp("sim"), options) as sim:
        yield sim


@pytest.fixture
def sim(simulator: Any) -> Iterator[Any]:
    """The shared simulator with no scripted responses or faults left over."""
    from connector.http import auth
    from mde_simulator import Faults

    simulator.clear_script()
    simulator.set_faults(Faults())
    simulator.reset_log()
    auth._apps.clear()
    yield simulator
    simulator.clear_script()
    simulator.set_faults(Faults())


class Platform:
    """What SOAR would hold after the actions ran: containers and artifacts."""

    def __init__(self) -> None:
        self.containers: dict[int, dict[str, Any]] = {}
        self.artifacts: dict[int, dict[str, Any]] = {}
        self.container_calls = 0
        self.fail_container_at: int | None = None

    def save_container(self, container: dict[str, Any],
                       fail_on_duplicate: bool = False) -> tuple[bool, str, int | None]:
        self.container_calls += 1
        if self.fail_container_at is not None and self.container_calls == self.fail_container_at:
            return False, "Container creation failed: the database is unavailable", None
        sdi = container.get("source_data_identifier")
        for cid, existing in self.containers.items():
            if sdi and existing.get("source_data_identifier") == sdi:
                return False, "Duplicate container found", cid
        cid = len(self.containers) + 1
        artifacts = container.pop("artifacts", None) or []
        self.containers[cid] = dict(container)
        for artifact in artifacts:
            self.add_artifact({**artifact, "container_id": cid})
        return True, "Container saved successfully", cid

    def add_artifact(self, artifact: dict[str, Any]) -> int:
        for aid, existing in self.artifacts.items():
            if (existing.get("container_id"), existing.get("source_data_identifier")) == (
                    artifact.get("container_id"), artifact.get("source_data_identifier")):
                return aid
        aid = len(self.artifacts) + 1
        self.artifacts[aid] = dict(artifact)
        return aid

    def save_artifacts(self, artifacts: list[dict[str, Any]]) -> tuple[bool, str, list[int]]:
        return True, "Artifacts saved successfully", [self.add_artifact(a) for a in artifacts]

    def artifacts_of(self, sdi: str) -> list[dict[str, Any]]:
        cids = [cid for cid, c in self.containers.items() if c.get("source_data_identifier") == sdi]
        return [a for a in self.artifacts.values() if a.get("container_id") in cids]


class Soar:
    """Runs app actions through the SDK's local runner."""

    CONTAINER_ID = 42

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import src.app as module

        self.module = module
        self.app = module.app
        self.tmp = tmp_path
        self.platform = Platform()
        manager = self.app.actions_manager
        # A fresh asset and platform state for each test (the SDK keeps both
        # on the App object for the life of the process).
        if hasattr(self.app, "_asset"):
            del self.app._asset
        manager._BaseConnector__state = {}
        monkeypatch.setattr(manager, "save_container", self.platform.save_container)
        monkeypatch.setattr(manager, "save_artifacts", self.platform.save_artifacts)
        sdk_create = self.app.soar_client.artifact.create

        def create(artifact: dict[str, Any]) -> int:
            sdk_create(artifact)  # the SDK's defaults and checks, then SOAR's de-duplication
            return self.platform.add_artifact(artifact)

        monkeypatch.setattr(self.app.soar_client.artifact, "create", create)
        # The local runner draws a random container per run; an analyst re-running
        # an action works in the same container.
        monkeypatch.setattr(self.app.soar_client, "get_executing_container_id", lambda: self.CONTAINER_ID)
        self.runs = 0

    def new_asset(self) -> None:
        """Forget the asset read by earlier runs (the next run reads its file)."""
        if hasattr(self.app, "_asset"):
            del self.app._asset

    @property
    def ingest_state(self) -> dict[str, Any]:
        return dict(self.app.asset.ingest_state.get_all())

    def run(self, action: str, asset: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
        """Run ``action`` and return its SOAR action result (status, message,
        data, summary)."""
        from soar_sdk.app_cli_runner import AppCliRunner

        self.runs += 1
        asset_file = self.tmp / f"asset{self.runs}.json"
        asset_file.write_text(json.dumps(asset))
        argv = ["action", action, "-a", str(asset_file)]
        if params is not None:
            param_file = self.tmp / f"params{self.runs}.json"
            param_file.write_text(json.dumps(params))
            argv += ["-p", str(param_file)]
        manager = self.app.actions_manager
        manager.action_results.clear()
        AppCliRunner(self.app).run(argv)
        assert len(manager.action_results) == 1, manager.action_results
        return manager.action_results[0]


@pytest.fixture
def soar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Soar:
    monkeypatch.chdir(APP_DIR)
    return Soar(tmp_path, monkeypatch)


@pytest.fixture
def asset(sim: Any, tmp_path: Path) -> dict[str, Any]:
    """An asset configured for the simulator: its API and sign-in URLs, its CA."""
    return {**sim.connector_config(state_dir=str(tmp_path / "state")), "first_poll_lookback_hours": 1,
            "poll_overlap_minutes": 10, "ingest_related_files": True}


@pytest.fixture(scope="session")
def package_path() -> Path:
    """The .tgz scripts/build-splunk-soar-app wrote (MDE_SOAR_PACKAGE)."""
    value = os.environ.get("MDE_SOAR_PACKAGE")
    if not value or not Path(value).is_file():
        pytest.fail("MDE_SOAR_PACKAGE must name the package built by scripts/build-splunk-soar-app "
                    "(.ci/splunk-soar sets it).")
    return Path(value)
