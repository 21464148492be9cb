"""File-system safety on a shared host: which directories and files the
connector trusts, and how it writes files.

The state directory holds the token cache, the store and the rate budget; the
configuration file may hold a secret. Another user who can write either (or
any directory above them, or a symlink on the way) could read the tokens or
feed the connector a trust store of their choosing. The rules, after OpenSSH's
``StrictModes``:

- every directory on the way, from ``/`` down, is owned by root or by the
  connector's user and not writable by group or others, unless it has the
  sticky bit (``/tmp``: nobody may rename or remove another user's entry);
- every symlink on the way is owned by root or by the connector's user;
- the state directory itself is owned by the connector's user and not
  writable by group or others; the configuration file is owned by root or
  the user and not writable by group or others.

A directory the connector did not create is never chmod-ed: one that breaks
a rule is refused with the command that fixes it. Root counts as trusted
because root can do anything anyway.

Files are written with :func:`atomic_write`: a new temporary file created
with ``O_EXCL | O_NOFOLLOW`` (never an existing file, never through a
symlink) in the target directory, fsync-ed, then renamed over the target.

Every refusal is a ConfigError (exit 2) naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from connector.errors import ConfigError

# More symlinks than this on one path is a loop (Linux's own limit).
_MAX_SYMLINKS = 40


def _trusted(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _others_may_write(st: os.stat_result) -> bool:
    return bool(st.st_mode & 0o022)


def _walk(path: Path, what: str) -> tuple[str, list[str], os.stat_result | None]:
    """Follow ``path`` from ``/`` one component at a time, checking every
    directory and symlink on the way (not the last component).

    Returns the resolved path of the deepest component that exists, the
    names still missing below it, and the ``lstat`` of the last component
    when it exists (None otherwise).
    """
    pending = list(Path(os.path.abspath(path)).parts[1:])
    current = "/"
    _check_ancestor(path, current, os.lstat(current), what)
    hops = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return current, [name, *pending], None
        except NotADirectoryError:
            raise ConfigError(f"The {what} {path} cannot be used: {current} is a file, not a directory.") from None
        except OSError as exc:
            raise ConfigError(
                f"The {what} {path} cannot be checked: {candidate} cannot be examined "
                f"({exc.strerror or exc.__class__.__name__}).",
                hint=f"Give your user access to {current}, or choose another {what}.",
            ) from None
        if stat.S_ISLNK(st.st_mode):
            if not _trusted(st.st_uid):
                raise ConfigError(
                    f"The {what} {path} is reached through the symlink {candidate}, which belongs to another "
                    f"user (uid {st.st_uid}).",
                    hint=f"Use a path without that symlink, or one of your own, for the {what}.",
                )
            hops += 1
            if hops > _MAX_SYMLINKS:
                raise ConfigError(f"The {what} {path} is reached through a loop of symlinks.")
            target = Path(os.readlink(candidate))
            if target.is_absolute():
                current = "/"
                pending = [*target.parts[1:], *pending]
            else:
                pending = [*target.parts, *pending]
            continue
        if not pending:
            return candidate, [], st
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"The {what} {path} cannot be used: {candidate} is a file, not a directory.")
        _check_ancestor(path, candidate, st, what)
        current = candidate
    return current, [], os.lstat(current)


def _check_ancestor(path: Path, directory: str, st: os.stat_result, what: str) -> None:
    if not _trusted(st.st_uid):
        raise ConfigError(
            f"The {what} {path} is inside {directory}, which belongs to another user (uid {st.st_uid}) who could "
            "replace it.",
            hint=f"Choose a {what} below a directory of your own.",
        )
    if _others_may_write(st) and not st.st_mode & stat.S_ISVTX:
        raise ConfigError(
            f"The {what} {path} is inside {directory}, which other users may write (they could replace it).",
            hint=f"Run `chmod go-w {directory}` or choose a {what} below a directory of your own.",
        )


def _check_private_dir(path: Path, resolved: str, st: os.stat_result) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(
            f"The state directory {path} is not a directory.",
            hint="Set 'state_dir' to a directory the connector may create or write.",
        )
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"The state directory {path} belongs to another user (uid {st.st_uid}).",
            hint="Set 'state_dir' to a directory of your own; the connector keeps tokens there.",
        )
    if _others_may_write(st):
        raise ConfigError(
            f"The state directory {path} is writable by other users.",
            hint=f"Run `chmod 700 {resolved}`.",
        )


def private_dir(path: Path, *, create: bool = True, writable: bool = True) -> Path:
    """Check the state directory ``path`` by the rules above and return it.

    ``create``: missing directories are made with mode 0700 (and only those:
    an existing one is never chmod-ed). ``writable``: a directory this user
    cannot write is refused ("read-only"); read-only commands pass False.
    Without ``create`` a missing directory is returned as is (nothing to read).
    """
    where, missing, st = _walk(path, "state directory")
    if missing:
        if not create:
            return path
        for name in missing:
            where = os.path.join(where, name)
            try:
                os.mkdir(where, 0o700)
            except FileExistsError:
                pass  # another process made it a moment ago: checked below like any other
            except OSError as exc:
                if exc.errno == errno.EROFS:
                    raise _read_only(path) from None
                raise ConfigError(
                    f"The state directory {path} cannot be created ({exc.strerror or exc.__class__.__name__}).",
                    hint="Set 'state_dir' to a directory the connector may create or write.",
                ) from None
        where, missing, st = _walk(path, "state directory")
        if missing or st is None:
            raise ConfigError(f"The state directory {path} disappeared while it was being created.")
    if st is None:
        raise ConfigError(f"The state directory {path} cannot be found.")
    _check_private_dir(path, where, st)
    if writable and not os.access(where, os.W_OK | os.X_OK):
        raise _read_only(path)
    return path


def _read_only(path: Path) -> ConfigError:
    return ConfigError(
        f"The state directory {path} is read-only for this user, and this command writes to it.",
        hint="Give your user write access to it, or set 'state_dir' to a writable directory; "
        "'containers list', 'runs list' and 'artifacts list' work on a read-only one.",
    )


def check_config_file(path: Path) -> os.stat_result:
    """Check the configuration file ``path`` by the rules above; return its
    ``stat`` (the caller looks at the read bits). A missing file is left to
    the caller to report."""
    _, missing, st = _walk(path, "configuration file")
    if missing or st is None:
        raise FileNotFoundError(str(path))
    if not _trusted(st.st_uid):
        raise ConfigError(
            f"The configuration file {path} belongs to another user (uid {st.st_uid}), who could change it.",
            hint="Use a configuration file of your own (or one of root's).",
        )
    if stat.S_ISREG(st.st_mode) and _others_may_write(st):
        raise ConfigError(
            f"The configuration file {path} is writable by other users.",
            hint=f"Run `chmod 600 {path}`.",
        )
    return st


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` all at once: a reader sees the old file
    or the new one, never a part. The temporary file is new (``O_EXCL``), not
    followed through a symlink (``O_NOFOLLOW``), named at random in the
    target's directory, created with ``mode`` and fsync-ed before the rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
