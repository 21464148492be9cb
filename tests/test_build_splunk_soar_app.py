"""scripts/build-splunk-soar-app without Python 3.13: one sentence, exit 1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build-splunk-soar-app"


def bare_path(tmp_path: Path) -> str:
    """A PATH with only the tools the script needs before it looks for Python."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_build_script_without_python_313_fails_with_one_sentence(tmp_path: Path) -> None:
    # No pyenv, no ~/.pyenv, no python3.13 on PATH, no SDK virtualenv yet.
    env = {"PATH": bare_path(tmp_path), "HOME": str(tmp_path), "SOAR_VENV": str(tmp_path / "venv")}
    proc = subprocess.run([shutil.which("bash") or "bash", str(SCRIPT), "--out", str(tmp_path / "out")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Python 3.13 is missing" in lines[0]
    assert not (tmp_path / "out").exists()


def test_build_script_refuses_an_unknown_option(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--outt", "x"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert "unknown option --outt" in proc.stderr
