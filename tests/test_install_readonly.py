"""An installed connector writes nothing beside its installed code.

Build the wheel, install it (offline, no dependencies: they come from this
test's environment) into a fresh virtual environment, run the CLI as a user
would, with bytecode writing on, then compare the installed package's files
with the wheel's RECORD: no file may have appeared. Run as root (as CI does),
every write would succeed, so any would show. Where an unprivileged user can
run this interpreter, the same install is also made read-only and run as that
user: it must work without writing.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "manifest.json", "connector", "mde_simulator")


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kwargs)


def _interpreter() -> str:
    """This Python, or the same version outside a directory only root may
    enter (pyenv under /root), so that an unprivileged user can run it too."""
    system = Path(f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}")
    return str(system) if system.exists() else sys.executable


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Path]]:
    """(the new environment's python, its site-packages) with the wheel installed."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="mde-install-"))
    os.chmod(root, 0o755)  # noqa: S103 - an unprivileged user runs the installation too
    try:
        yield _install(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _install(root: Path) -> tuple[Path, Path]:
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", str(root / "dist"), str(src)])
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (root / "dist").glob("mde_connector-*.whl")
    venv = root / "venv"
    made = _run([_interpreter(), "-m", "venv", "--without-pip", "--system-site-packages", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The dependencies (requests, msal, jsonschema, ...) from this test's own
    # environment, after the new one's site-packages; a path line, so the
    # editable install's finder there is not loaded.
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    # --ignore-installed: where this test's environment holds a regular
    # (non-editable) install of the same version, as CI's does, pip would
    # otherwise see it through the path line and install nothing.
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps",
                 "--ignore-installed", str(wheel)])
    assert done.returncode == 0, done.stderr[-2000:]
    return python, site


def _record(site: Path) -> tuple[set[Path], Path]:
    (dist_info,) = site.glob("mde_connector-*.dist-info")
    with open(dist_info / "RECORD", encoding="utf-8", newline="") as fh:
        listed = {(site / row[0]).resolve() for row in csv.reader(fh) if row}
    return listed, dist_info


def _files(site: Path, dist_info: Path) -> set[Path]:
    found: set[Path] = set()
    for top in (site / "connector", site / "mde_simulator", dist_info):
        found |= {p.resolve() for p in top.rglob("*") if not p.is_dir()}
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MDE_"))}
    return {**env, **extra}  # bytecode writing on: a write into the package would show


def _cli_runs(python: Path, sim: Any, tmp: Path, env: dict[str, str], user: list[str] | None = None) -> None:
    alert_id = sim.add_alert()["id"]
    config = tmp / "mde.json"
    sim.write_config(config, state_dir=str(tmp / "state"))
    commands = [["--version"], ["actions"],
                ["run", "get_alert_related_files", "--param", f"alert_id={alert_id}", "--config", str(config),
                 "--output", "json"],
                ["artifacts", "list", "--config", str(config)]]
    for args in commands:
        result = _run([*(user or []), str(python), "-m", "connector", *args], env=env, cwd=tmp)
        assert result.returncode == 0, (args, result.stderr[-2000:])


def test_a_cli_run_writes_nothing_inside_the_installed_package(installed: tuple[Path, Path], simulator: Any,
                                                                tmp_path: Path) -> None:
    python, site = installed
    listed, dist_info = _record(site)
    assert (site / "connector" / "manifest.validated").resolve() in listed  # the stamp ships
    _cli_runs(python, simulator, tmp_path, _env())
    extra = sorted(str(p.relative_to(site.resolve())) for p in _files(site, dist_info) - listed)
    assert extra == []
    # and the files that are there are the wheel's, unchanged
    changed = []
    with open(dist_info / "RECORD", encoding="utf-8", newline="") as fh:
        for name, digest, _size in csv.reader(fh):
            if digest.startswith("sha256="):
                actual = base64.urlsafe_b64encode(hashlib.sha256((site / name).read_bytes()).digest()).rstrip(b"=")
                if actual.decode() != digest[7:]:
                    changed.append(name)
    assert changed == []


def _unprivileged() -> list[str] | None:
    """A command prefix that runs as nobody, if this is root with setpriv."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def test_a_read_only_install_runs_for_an_unprivileged_user(installed: tuple[Path, Path], simulator: Any,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    python, site = installed
    prefix = _unprivileged()
    if prefix is None:
        pytest.skip("needs root and setpriv to run as an unprivileged user")
    probe = _run([*prefix, str(python), "-c", "import connector; print(connector.__file__)"], env=_env(), cwd="/")
    if probe.returncode != 0 or not probe.stdout.startswith(str(site)):
        pytest.skip(f"this interpreter is not usable by an unprivileged user: {probe.stderr.strip()[-200:]}")
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="mde-readonly-"))
    try:
        os.chmod(tmp, 0o755)  # noqa: S103 - the unprivileged user must reach its home inside
        home = tmp / "home"
        home.mkdir()
        os.chown(home, 65534, 65534)
        ca = tmp / "ca.pem"
        shutil.copy(simulator.ca_bundle, ca)
        os.chmod(ca, 0o644)
        listed, dist_info = _record(site)
        _cli_runs(python, _ReadableCA(simulator, ca), home, _env(HOME=str(home)), prefix)
        assert _files(site, dist_info) - listed == set()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _ReadableCA:
    """The simulator, with its CA at a path an unprivileged user can read."""

    def __init__(self, sim: Any, ca: Path) -> None:
        self._sim = sim
        self._ca = ca

    def write_config(self, path: Path, **overrides: Any) -> Path:
        written = self._sim.write_config(path, **overrides, ca_bundle=str(self._ca))
        os.chown(path, 65534, 65534)
        return Path(written)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)
