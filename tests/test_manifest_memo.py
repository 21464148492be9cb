"""The packaged manifest carries a stamp: the digest of a manifest and schema
that passed validation. A manifest with that digest is not validated again;
changed in any way, it is; and nothing is written at run time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector import manifest as manifest_module
from connector.errors import ManifestError
from connector.manifest import default_manifest_path, load_manifest, validate_manifest_file


def packaged() -> dict[str, Any]:
    return json.loads(default_manifest_path().read_text(encoding="utf-8"))


def write(tmp_path: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def count_validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = manifest_module._problems

    def counting(raw: dict[str, Any], filename: str, *, first_only: bool) -> list[str]:
        seen.append(filename)
        return real(raw, filename, first_only=first_only)

    monkeypatch.setattr(manifest_module, "_problems", counting)
    return seen


def test_the_shipped_stamp_is_the_packaged_manifests_digest() -> None:
    text = default_manifest_path().read_text(encoding="utf-8")
    stamp = manifest_module._STAMP.read_text(encoding="ascii").strip()
    assert stamp == manifest_module._validation_digest(text), (
        "connector/manifest.validated is stale (manifest.json or its schema changed): "
        "run `python -m connector.manifest --stamp` and commit the file")
    validate_manifest_file(default_manifest_path())  # and what it vouches for is valid


def test_a_manifest_equal_to_the_stamped_one_is_not_validated_again(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_validations(monkeypatch)
    load_manifest(write(tmp_path, "same.json", default_manifest_path().read_text(encoding="utf-8")))
    assert seen == []


def test_a_changed_manifest_is_validated_in_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_validations(monkeypatch)
    load_manifest(write(tmp_path, "good.json", packaged()))  # same content, other bytes
    assert seen == ["good.json"]
    broken = packaged()
    del broken["actions"][0]["name"]
    with pytest.raises(ManifestError, match="'name' is a required property"):
        load_manifest(write(tmp_path, "broken.json", broken))


def test_loading_writes_nothing_even_after_a_full_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = tmp_path / "manifest.validated"
    monkeypatch.setattr(manifest_module, "_STAMP", stamp)
    before = sorted(p.name for p in tmp_path.iterdir())
    path = write(tmp_path, "m.json", packaged())
    load_manifest(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "m.json"])


def test_a_missing_or_garbled_stamp_means_full_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = default_manifest_path().read_text(encoding="utf-8")
    for stamp_bytes in (None, b"\xff\xfe", b"0" * 64):
        stamp = tmp_path / "stamp"
        if stamp_bytes is None:
            stamp.unlink(missing_ok=True)
        else:
            stamp.write_bytes(stamp_bytes)
        monkeypatch.setattr(manifest_module, "_STAMP", stamp)
        seen = count_validations(monkeypatch)
        path = write(tmp_path, "m.json", text)
        manifest_module._CACHE.pop(path.resolve(), None)
        load_manifest(path)
        assert seen == ["m.json"], stamp_bytes


def test_the_digest_covers_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = default_manifest_path().read_text(encoding="utf-8")
    before = manifest_module._validation_digest(text)
    schema = tmp_path / "schema.json"
    schema.write_text(manifest_module._SCHEMA_PATH.read_text(encoding="utf-8") + " ", encoding="utf-8")
    monkeypatch.setattr(manifest_module, "_SCHEMA_PATH", schema)
    assert manifest_module._validation_digest(text) != before
    assert manifest_module._validation_digest(text + " ") != manifest_module._validation_digest(text)


def test_stamping_refuses_an_invalid_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = packaged()
    broken["version"] = 7
    monkeypatch.setattr(manifest_module, "default_manifest_path", lambda: write(tmp_path, "broken.json", broken))
    stamp = tmp_path / "stamp"
    monkeypatch.setattr(manifest_module, "_STAMP", stamp)
    with pytest.raises(ManifestError):
        manifest_module.stamp_packaged_manifest()
    assert not stamp.exists()
