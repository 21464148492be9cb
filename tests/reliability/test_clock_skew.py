"""This machine's clock an hour ahead of or behind Entra ID and Defender.

A client secret does not care (tokens are cached on the local clock, checked
by the server on its own); a certificate credential's signed assertion is
refused by Entra ID, and the error says to check the clock. (A token the
cache still trusts but the API has expired, and a Retry-After date under
skew, are in test_faults.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.support import EXAMPLE, cli_env, count

DRIVER = Path(__file__).with_name("skew_driver.py")
HOUR = 3600


def _skewed(skew: int, *args: str) -> subprocess.CompletedProcess[str]:
    count("processes")
    return subprocess.run([sys.executable, str(DRIVER), str(skew), "--", *args], capture_output=True, text=True,
                          env=cli_env(), timeout=60)


def _files(config: Path) -> tuple[str, ...]:
    return ("run", "get_alert_related_files", "--param", f"alert_id={EXAMPLE}", "--config", str(config),
            "--output", "json")


@pytest.mark.parametrize("skew", [-HOUR, HOUR, -20 * HOUR])
def test_a_secret_works_and_tokens_are_reused_with_a_skewed_clock(sim: Any, tmp_path: Path, skew: int) -> None:
    count("faults")
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"))
    sim.reset_log()
    for _ in range(2):
        proc = _skewed(skew, *_files(config))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["status"] == "success"
    assert sim.token_requests == 1  # the second run used the cached token


@pytest.mark.parametrize("skew", [-HOUR, HOUR])
def test_a_certificate_assertion_from_a_skewed_clock_is_refused_naming_the_clock(sim: Any, tmp_path: Path,
                                                                              skew: int) -> None:
    count("faults")
    config = sim.write_config(tmp_path / "mde.json", state_dir=str(tmp_path / "state"), client_secret=None,
                              certificate_path=str(sim.client_cert_pem))
    proc = _skewed(skew, *_files(config))
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["error"]["kind"] == "authentication" and result["error"]["code"] == "AADSTS700024"
    assert "clock" in result["message"]
    assert _skewed(0, *_files(config)).returncode == 0  # the same credential, a correct clock
