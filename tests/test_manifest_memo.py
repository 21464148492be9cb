"""A manifest that passed validation is remembered by digest, like a .pyc:
unchanged, it is not validated again; changed in any way, it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector import manifest as manifest_module
from connector.errors import ManifestError
from connector.manifest import default_manifest_path, load_manifest


@pytest.fixture
def mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pycache" / "manifest-validated"
    monkeypatch.setattr(manifest_module, "_VALIDATED_MARK", path)
    return path


def packaged() -> dict[str, Any]:
    return json.loads(default_manifest_path().read_text(encoding="utf-8"))


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def count_validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = manifest_module._problems

    def counting(raw: dict[str, Any], filename: str, *, first_only: bool) -> list[str]:
        seen.append(filename)
        return real(raw, filename, first_only=first_only)

    monkeypatch.setattr(manifest_module, "_problems", counting)
    return seen


def test_an_unchanged_manifest_is_validated_once(tmp_path: Path, mark: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = count_validations(monkeypatch)
    path = write(tmp_path, "m.json", packaged())
    load_manifest(path)
    assert seen == ["m.json"] and mark.is_file()
    copy = write(tmp_path, "copy.json", packaged())  # same bytes, another process would load it alike
    load_manifest(copy)
    assert seen == ["m.json"]


def test_a_changed_manifest_is_validated_again(tmp_path: Path, mark: Path) -> None:
    load_manifest(write(tmp_path, "good.json", packaged()))
    broken = packaged()
    del broken["actions"][0]["name"]
    with pytest.raises(ManifestError, match="'name' is a required property"):
        load_manifest(write(tmp_path, "broken.json", broken))


def test_an_invalid_manifest_is_never_remembered(tmp_path: Path, mark: Path) -> None:
    broken = packaged()
    broken["version"] = 7
    path = write(tmp_path, "broken.json", broken)
    for _ in range(2):
        with pytest.raises(ManifestError):
            load_manifest(path)
        manifest_module._CACHE.pop(path.resolve(), None)
    assert not mark.exists()


def test_the_digest_covers_the_schema_and_the_validating_code(tmp_path: Path, mark: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    text = default_manifest_path().read_text(encoding="utf-8")
    before = manifest_module._validation_digest(text)
    schema = tmp_path / "schema.json"
    schema.write_text(manifest_module._SCHEMA_PATH.read_text(encoding="utf-8") + " ", encoding="utf-8")
    monkeypatch.setattr(manifest_module, "_SCHEMA_PATH", schema)
    assert manifest_module._validation_digest(text) != before
    assert manifest_module._validation_digest(text + " ") != manifest_module._validation_digest(text)


def test_an_unwritable_mark_still_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setattr(manifest_module, "_VALIDATED_MARK", blocker / "manifest-validated")
    seen = count_validations(monkeypatch)
    path = write(tmp_path, "m.json", packaged())
    load_manifest(path)
    manifest_module._CACHE.pop(path.resolve(), None)
    load_manifest(path)
    assert seen == ["m.json", "m.json"]
    assert not list(tmp_path.glob(".*.tmp"))
