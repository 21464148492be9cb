"""One CLI run on a real installation, as its owner and where nothing can be
written beside the installed code.

The wheel is built from this checkout and installed (offline, no
dependencies: those come from the benchmark's own environment through a
path file) into fresh virtual environments owned by root, mode 0755, made
with an interpreter that an unprivileged user may run, one for each kind (so
that what one user's runs leave in the package cannot help the other's).
Then, interleaved:

- *writable install*: ``mde-connector run`` and the same-work baseline
  script, run by root (who owns the installation and could write into it);
- *read-only install*: the same two commands run by ``nobody`` (setpriv),
  with its own home and state directory: the installation cannot be
  written, as for a service user. (Root ignores read-only bits, so a
  read-only install can only be measured as another user.)

Both kinds use the installed bytecode (no private cache, no
``PYTHONDONTWRITEBYTECODE``), the same trust (public CAs plus the
simulator's) and the same interpreter on both sides of each ratio.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli_runs import pair_ratio_median, same_trust_bundle
from bench.common import BENCH, REPO, SimProcess, cached_access_token, log, ratio, summary_ms
from bench.inproc import UNBOUND_SCALE, config_values

NOBODY = 65534
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "manifest.json", "connector", "mde_simulator")


def _interpreter() -> str | None:
    """A Python of this minor version that an unprivileged user can run."""
    name = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (f"/usr/bin/{name}", f"/usr/local/bin/{name}", sys.executable):
        if Path(candidate).exists():
            probe = subprocess.run([*_as_nobody(), candidate, "-c", "pass"], capture_output=True, check=False,
                                   cwd="/")
            if probe.returncode == 0:
                return candidate
    return None


def _as_nobody() -> list[str]:
    return [shutil.which("setpriv") or "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MDE_"))}
    return {**env, **extra}


def _install(root: Path, interpreter: str) -> tuple[Path, Path]:
    root.mkdir(mode=0o755, exist_ok=True)
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(root / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (root / "dist").glob("mde_connector-*.whl")
    venv = root / "venv"
    subprocess.run([interpreter, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                   check=True, capture_output=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "zz_bench_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
                    "--no-deps", str(wheel)], check=True, capture_output=True)
    return python, Path(site) / "connector"


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> int:
    t0 = time.perf_counter_ns()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter_ns() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[-8:])} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return elapsed


def run(sim: SimProcess, pairs: int, warmup: int) -> dict[str, Any]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return {"skipped": "needs root and setpriv to run the read-only install as an unprivileged user"}
    interpreter = _interpreter()
    if interpreter is None:
        return {"skipped": "no Python of this version that an unprivileged user can run"}
    alert_id = sim.add_alerts(1)[0]
    url = f"{sim.base_url}/api/alerts/{alert_id}/files"
    tmp = Path(tempfile.mkdtemp(prefix="bench-install-"))
    try:
        os.chmod(tmp, 0o755)  # noqa: S103 - the unprivileged user must reach its own home inside
        log("install kinds: building the wheel and a root-owned environment")
        # One installation per kind: what one user's runs leave (or fail to
        # leave) in the package must not help the other's.
        installs = {kind: _install(tmp / kind, interpreter) for kind in ("writable", "read_only")}
        files_before = {kind: set(package.rglob("*")) for kind, (_, package) in installs.items()}
        trust = same_trust_bundle(tmp, sim.ca_bundle)
        os.chmod(trust, 0o644)
        ca = tmp / "simulator-ca.pem"
        shutil.copy(sim.ca_bundle, ca)
        os.chmod(ca, 0o644)
        kinds: dict[str, dict[str, Any]] = {}
        for kind, user, uid in (("writable", [], 0), ("read_only", _as_nobody(), NOBODY)):
            python = installs[kind][0]
            home = tmp / f"home-{kind}"
            home.mkdir(mode=0o700)
            os.chown(home, uid, uid)
            values = config_values({**sim.config, "ca_bundle": str(ca)}, home / "state", UNBOUND_SCALE)
            config = home / "mde.json"
            config.write_text(__import__("json").dumps(values), encoding="utf-8")
            os.chmod(config, 0o600)
            os.chown(config, uid, uid)
            env = _clean_env(HOME=str(home))
            cli = [*user, str(python), "-m", "connector", "run", "get_alert_related_files", "--param",
                   f"alert_id={alert_id}", "--config", str(config), "--output", "json"]
            _timed(cli, env, home)  # the token
            base_env = {**env, "BENCH_TOKEN": cached_access_token(home / "state")}
            base = [*user, str(python), str(BENCH / "baseline_get.py"), url, str(trust), str(home / "base.sqlite")]
            kinds[kind] = {"cli": cli, "env": env, "base": base, "base_env": base_env, "home": home,
                           "cli_ns": [], "base_ns": []}
        for _ in range(warmup):
            for k in kinds.values():
                _timed(k["cli"], k["env"], k["home"])
                _timed(k["base"], k["base_env"], k["home"])
        log(f"install kinds: {pairs} interleaved rounds of CLI / same-work script, writable and read-only")
        for i in range(pairs):
            for k in kinds.values():
                order = [(k["cli"], k["env"], k["cli_ns"]), (k["base"], k["base_env"], k["base_ns"])]
                for cmd, env, samples in (order if i % 2 == 0 else order[::-1]):
                    samples.append(_timed(cmd, env, k["home"]))
        written = sorted(f"{kind}: {p.relative_to(package)}" for kind, (_, package) in installs.items()
                         for p in set(package.rglob("*")) - files_before[kind])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out: dict[str, Any] = {"pairs": pairs, "interpreter": interpreter, "installations": "one per kind",
                           "files_written_into_the_package": written}
    for kind, k in kinds.items():
        c, b = summary_ms(k["cli_ns"]), summary_ms(k["base_ns"])
        out[kind] = {"cli": c, "baseline_script": b, "ratio_p50": ratio(c["p50_ms"], b["p50_ms"]),
                     "pair_ratio_median": pair_ratio_median(k["cli_ns"], k["base_ns"])}
    return out
