"""The state directory and the configuration file on a shared host: refused
(one sentence, exit 2) when another user owns them or could change them,
never chmod-ed when the connector did not create them; files are written
through new, non-followed temporary files.

The tests run as root here, and root owns everything: "another user" is
uid 65534 (nobody), given to a file or directory with chown."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from connector import fsguard
from connector.config import ensure_private_dir, load_config
from connector.errors import ConfigError

OTHER_UID = 65534 if os.geteuid() != 65534 else 65533
CONFIG = {"tenant_id": "8b6b2c1e-5f0c-4f5e-9d43-2a1e6f3b7c90", "client_id": "3c2f1b7a-9e44-4d1c-8a5b-6f0e2d9c1a37",
          "client_secret": "Kq8~S3cr3t.V4lue-Never-Printed"}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def refused(path: Path, match: str) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as info:
        ensure_private_dir(path)
    err = info.value
    assert err.exit_code == 2 and "\n" not in str(err) and str(path) in str(err)
    return err


# -- the state directory -------------------------------------------------------


def test_a_missing_state_directory_and_its_parents_are_created_private(tmp_path: Path) -> None:
    state = tmp_path / "a" / "b" / "state"
    assert ensure_private_dir(state) == state
    assert state.is_dir()
    for made in (tmp_path / "a", tmp_path / "a" / "b", state):
        assert mode(made) & 0o077 == 0


def test_an_existing_readable_directory_is_used_but_never_chmodded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    ensure_private_dir(state)
    assert mode(state) == 0o755  # not the connector's to change


@pytest.mark.parametrize("bad_mode", [0o770, 0o707, 0o777, 0o720], ids=oct)
def test_a_state_directory_others_may_write_is_refused_with_the_fix(tmp_path: Path, bad_mode: int) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(bad_mode)
    err = refused(state, "writable by other users")
    assert f"chmod 700 {state}" in str(err)
    assert mode(state) == bad_mode  # refused, not "fixed" behind the user's back


@needs_root
def test_a_state_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, OTHER_UID, -1)
    err = refused(state, "belongs to another user")
    assert f"uid {OTHER_UID}" in str(err)
    assert mode(state) == 0o700 and state.stat().st_uid == OTHER_UID


@needs_root
def test_a_state_directory_reached_through_another_users_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "state"
    link.symlink_to(real)
    os.lchown(link, OTHER_UID, -1)
    err = refused(link, "symlink")
    assert str(link) in str(err)


def test_a_state_directory_reached_through_the_users_own_symlink_is_used(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    ensure_private_dir(tmp_path / "link" / "state")
    assert (real / "state").is_dir()


@needs_root
def test_a_symlink_higher_up_the_path_that_another_user_owns_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "state").mkdir(parents=True, mode=0o700)
    link = tmp_path / "via"
    link.symlink_to(real)
    os.lchown(link, OTHER_UID, -1)
    refused(link / "state", "symlink")


def test_a_parent_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    err = refused(shared / "state", "other users may write")
    assert f"chmod go-w {shared}" in str(err)
    assert not (shared / "state").exists()


def test_a_sticky_world_writable_parent_like_tmp_is_accepted(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    ensure_private_dir(shared / "state")
    assert (shared / "state").is_dir()


@needs_root
def test_a_parent_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER_UID, -1)
    refused(theirs / "state", "belongs to another user")


def test_a_file_in_place_of_the_state_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    refused(tmp_path / "state", "not a directory")
    refused(tmp_path / "state" / "below", "is a file")


def test_a_symlink_loop_is_refused_not_followed_forever(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    refused(tmp_path / "a", "loop of symlinks")


# -- the configuration file ----------------------------------------------------


def config_file(tmp_path: Path, file_mode: int = 0o600) -> Path:
    path = tmp_path / "mde.json"
    path.write_text(json.dumps({**CONFIG, "state_dir": str(tmp_path / "state")}), encoding="utf-8")
    path.chmod(file_mode)
    return path


def config_refused(path: Path, match: str) -> ConfigError:
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path, env={})
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert CONFIG["client_secret"] not in str(info.value)
    return info.value


@pytest.mark.parametrize("bad_mode", [0o620, 0o602, 0o666], ids=oct)
def test_a_configuration_file_others_may_write_is_refused(tmp_path: Path, bad_mode: int) -> None:
    path = config_file(tmp_path, bad_mode)
    err = config_refused(path, "writable by other users")
    assert f"chmod 600 {path}" in str(err)
    assert mode(path) == bad_mode


@needs_root
def test_a_configuration_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    os.chown(path, OTHER_UID, -1)
    config_refused(path, "belongs to another user")


@needs_root
def test_a_configuration_file_reached_through_another_users_symlink_is_refused(tmp_path: Path) -> None:
    real = config_file(tmp_path)
    link = tmp_path / "linked.json"
    link.symlink_to(real)
    os.lchown(link, OTHER_UID, -1)
    config_refused(link, "symlink")


def test_a_configuration_file_in_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    path = config_file(shared)
    shared.chmod(0o777)
    config_refused(path, "other users may write")


def test_a_private_configuration_file_through_the_users_own_symlink_loads(tmp_path: Path) -> None:
    real = config_file(tmp_path)
    link = tmp_path / "linked.json"
    link.symlink_to(real)
    assert load_config(link, env={}).client_id == CONFIG["client_id"]


@needs_root
def test_the_cli_refuses_an_unsafe_configuration_in_one_sentence(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli.main import main

    path = config_file(tmp_path)
    os.chown(path, OTHER_UID, -1)
    code = main(["containers", "list", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "belongs to another user" in err and "Traceback" not in err


# -- writing files ---------------------------------------------------------------


def test_atomic_write_creates_a_private_file_and_replaces_a_readable_one(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_text("old")
    target.chmod(0o644)
    fsguard.atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary file left


def test_atomic_write_never_writes_through_a_planted_temporary_name(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    target = tmp_path / "f.json"
    monkeypatch.setattr(fsguard.secrets, "token_hex", lambda n: "guessed")
    (tmp_path / ".f.json.guessed.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        fsguard.atomic_write(target, b"new")
    assert victim.read_text() == "keep me" and not target.exists()


def test_atomic_write_replaces_a_symlink_rather_than_writing_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    target = tmp_path / "f.json"
    target.symlink_to(victim)
    fsguard.atomic_write(target, b"new")
    assert victim.read_text() == "keep me"
    assert not target.is_symlink() and target.read_bytes() == b"new"


def test_a_path_that_cannot_be_examined_is_one_sentence_not_a_traceback(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    real_lstat = os.lstat

    def lstat(path: object) -> os.stat_result:
        if str(path).startswith(str(closed / "")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_lstat(path)  # type: ignore[arg-type]

    monkeypatch.setattr(fsguard.os, "lstat", lstat)
    err = refused(closed / "state", "cannot be checked")
    assert "Permission denied" in str(err)
    config_refused(closed / "mde.json", "cannot be")
