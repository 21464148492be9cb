"""The extra CA is parsed once per content: the combined bundle file, written
only after its certificates parsed, is the proof for later runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from connector.errors import ConfigError
from connector.transport import trust_store


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []
    real = x509.load_pem_x509_certificates

    def counting(data: bytes) -> Any:
        seen.append(data)
        return real(data)

    monkeypatch.setattr(x509, "load_pem_x509_certificates", counting)
    return seen


def test_a_ca_is_parsed_once_per_content(simulator: Any, tmp_path: Path, parses: list[bytes]) -> None:
    ca = Path(simulator.ca_bundle)
    first = trust_store(ca, tmp_path / "state")
    assert trust_store(ca, tmp_path / "state") == first
    assert len(parses) == 1
    assert Path(first).read_bytes().endswith(ca.read_bytes())
    other = tmp_path / "other.pem"
    other.write_bytes(ca.read_bytes() + b"\n")
    assert trust_store(other, tmp_path / "state") != first
    assert len(parses) == 2


def test_an_unreadable_ca_is_refused_every_time(tmp_path: Path, parses: list[bytes]) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="cannot be read"):
            trust_store(bad, tmp_path / "state")
    assert len(parses) == 2
    assert not list((tmp_path / "state").glob("ca-bundle-*")) if (tmp_path / "state").exists() else True
