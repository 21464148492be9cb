"""The extra CA is parsed once per content: the combined bundle file, written
only after its certificates parsed, is the proof for later runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from connector.errors import ConfigError
from connector.http.transport import trust_store


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


# -- the combined file is trusted by its content, not its name -------------------


def test_a_combined_bundle_changed_on_disk_is_rebuilt_not_trusted(simulator: Any, tmp_path: Path,
                                                                  parses: list[bytes]) -> None:
    ca = Path(simulator.ca_bundle)
    combined = Path(trust_store(ca, tmp_path / "state"))
    good = combined.read_bytes()
    # Someone slips one more certificate into the file that bears the right name.
    combined.write_bytes(good + b"\n-----BEGIN CERTIFICATE-----\nMIIBattacker\n-----END CERTIFICATE-----\n")
    assert trust_store(ca, tmp_path / "state") == str(combined)
    assert combined.read_bytes() == good
    assert len(parses) == 2  # rebuilt the slow way, parse included


def test_a_combined_bundle_of_the_right_length_but_other_bytes_is_rebuilt(simulator: Any, tmp_path: Path,
                                                                           parses: list[bytes]) -> None:
    ca = Path(simulator.ca_bundle)
    combined = Path(trust_store(ca, tmp_path / "state"))
    good = combined.read_bytes()
    combined.write_bytes(good[:-40] + b"X" * 40)
    trust_store(ca, tmp_path / "state")
    assert combined.read_bytes() == good


def test_a_symlink_at_the_combined_bundles_name_is_replaced_never_followed(simulator: Any, tmp_path: Path,
                                                                           parses: list[bytes]) -> None:
    ca = Path(simulator.ca_bundle)
    combined = Path(trust_store(ca, tmp_path / "state"))
    good = combined.read_bytes()
    planted = tmp_path / "planted.pem"
    planted.write_bytes(good)  # even the right bytes do not make a symlink trusted
    combined.unlink()
    combined.symlink_to(planted)
    assert trust_store(ca, tmp_path / "state") == str(combined)
    assert not combined.is_symlink() and combined.read_bytes() == good
    assert planted.read_bytes() == good
    assert len(parses) == 2


def test_a_combined_bundle_others_may_write_is_rebuilt_private(simulator: Any, tmp_path: Path,
                                                               parses: list[bytes]) -> None:
    ca = Path(simulator.ca_bundle)
    combined = Path(trust_store(ca, tmp_path / "state"))
    combined.chmod(0o666)
    trust_store(ca, tmp_path / "state")
    assert oct(combined.stat().st_mode & 0o777) == "0o600"
