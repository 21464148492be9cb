"""Fixtures of the console tests: a store filled by a real poll of the
simulator (what ``watch --once`` does), the console server on a free loopback
port, and Debian's chromium driven headless by Playwright.

Browser tests skip locally when chromium or playwright is missing, and fail
under CI (``CI=true``): CI installs both (``.ci/run``), so a skip there would
hide a broken install. Screenshots go to ``tests/console/output/``
(gitignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MDE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUTPUT = Path(__file__).parent / "output"
# Auto-waiting safety net for a busy 2-core machine; never the thing tested.
WAIT_MS = 60_000

HOSTILE_ALERT_ID = "hostile_<b>1</b>"
HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
HOSTILE_SIGNER = "<script>alert(2)</script>Micro\u202esoft\u0007 {{container.alert_id}}"


@dataclass
class World:
    """What the console tests share: the simulator, the configuration, the
    store, the playbook directory and the running console."""

    sim: Any
    config: Any
    store: Any
    playbook_dir: Path
    server: Any
    example_alert: str

    @property
    def secret(self) -> str:
        return str(self.config.client_secret)


def _hostile_file() -> dict[str, Any]:
    return {
        "sha1": "0991a395da64e1c5fbe8732ed11e6be064081d9f",
        "sha256": "3b1a8dd8ec4e2d6fa3b0cd95d64aa1b89f97bc5bb0ab4ed8ae1e2f5a5cf7fd41",
        "md5": "f1d62648ef915d85cb4fc140359e925a",
        "globalPrevalence": 3,
        "signer": HOSTILE_SIGNER,
        "issuer": "Issuer \u0085 <i>x</i>",
        "isValidCertificate": False,
        "determinationType": "Malware",
        "determinationValue": "Trojan:<b>Win32</b>",
        "fileType": "APP",
        "size": 1024,
    }


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A simulator of the module's own: a poll of every alert spends much of
    the simulator's per-minute rate limit, which the session's simulator
    shares with other modules."""
    from mde_simulator import Simulator

    with Simulator(tmp_path_factory.mktemp("console-simulator")) as sim:
        yield sim


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, simulator: Any) -> Iterator[World]:
    """The simulator's alerts polled into a fresh store with the shipped
    triage playbook, one alert with hostile text added, and the console
    serving it."""
    from connector.actions import ActionContext
    from connector.artifacts import build_artifacts
    from connector.config import load_config
    from connector.console.app import ConsoleApp
    from connector.console.server import ConsoleServer
    from connector.http.client import DefenderClient
    from connector.runtime.engine import load_shipped_playbooks
    from connector.runtime.poller import Poller
    from connector.runtime.store import Store
    from mde_simulator import EXAMPLE_ALERT_ID

    root = tmp_path_factory.mktemp("console")
    config_path = simulator.write_config(root / "connector.json", state_dir=str(root / "state"))
    config = load_config(config_path)
    store = Store.open(config.state_dir)
    client = DefenderClient.from_config(config)

    def context() -> Any:
        return ActionContext(config=config, store=store, client_factory=lambda _cfg: client)

    report = Poller(client=client, store=store, context_factory=context,
                    playbooks=load_shipped_playbooks()).poll_once()
    assert report.processed, "the simulator's alerts should have been polled into the store"
    with store.transaction() as conn:
        store.upsert_container(conn, HOSTILE_ALERT_ID, name=HOSTILE_TITLE, severity="high",
                               data={"title": HOSTILE_TITLE, "description": "evil\u202etxt.exe \x1b[31m"})
        store.add_tags(conn, HOSTILE_ALERT_ID, ["<u>tag</u>"])
        store.add_note(conn, HOSTILE_ALERT_ID, "<script>alert(3)</script>")
        store.upsert_artifacts(conn, build_artifacts(HOSTILE_ALERT_ID, [_hostile_file()]).artifacts)

    def console_context(progress: Any) -> Any:
        return ActionContext(config=config, store=store, progress=progress, client_factory=lambda _cfg: client)

    playbook_dir = root / "playbooks"
    app = ConsoleApp(store=store, config=config, playbook_dir=playbook_dir, context_factory=console_context)
    server = ConsoleServer(app).start()
    try:
        yield World(sim=simulator, config=config, store=store, playbook_dir=playbook_dir, server=server,
                    example_alert=EXAMPLE_ALERT_ID)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium under Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed; '.[test]' must bring it in CI.")
        pytest.skip("playwright is not installed (pip install '.[test]').")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"chromium is missing at {CHROMIUM}; .ci/run installs it with apt.")
        pytest.skip("chromium is not installed (apt-get install chromium).")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any, world: World) -> Iterator[Any]:
    """A logged-in page (the printed URL opened, token exchanged for the
    cookie). Every response body is kept in ``page.bodies`` for secret scans;
    page errors (an uncaught exception, a CSP violation report) in
    ``page.errors``."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(WAIT_MS)
    pg = context.new_page()
    bodies: list[str] = []
    errors: list[str] = []
    dialogs: list[str] = []

    def keep(response: Any) -> None:
        with contextlib.suppress(Exception):  # a redirect or aborted response has no body
            bodies.append(response.text())

    pg.on("response", keep)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors are CSP refusals and script errors; a 4xx answer the page
    # expects (a form the server refuses) is logged too and is not one.
    pg.on("console", lambda msg: errors.append(msg.text)
          if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.bodies = bodies
    pg.errors = errors
    pg.dialogs = dialogs
    pg.goto(world.server.url)
    yield pg
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Keep a screenshot of the page as a test artifact."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def shipped(name: str) -> dict[str, Any]:
    """A shipped playbook as parsed JSON."""
    path = Path(__file__).resolve().parents[2] / "connector" / "playbooks" / name
    return dict(json.loads(path.read_text(encoding="utf-8")))
