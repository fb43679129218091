"""Where the connection keeper listens: a private directory and a socket named per code.

The directory is `$XDG_RUNTIME_DIR/greenroom` when that is set, else
`~/.cache/greenroom/keep` ($XDG_CACHE_HOME), made with mode 0700. It is used only when it
is a real directory (not a symlink) owned by us that no group or other user can write:
whoever can write there could put a socket of theirs where our commands (and a sudo
password on their standard input) would go. The socket's name holds a hash of the Python
interpreter, the runbooks package's path and the keeper code's modification times, so a
keeper started by other code (another checkout, an older version) is never used.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path
from typing import Any

from runbooks.core.errors import UsageError

CORE = Path(__file__).resolve().parent
PACKAGE_ROOT = CORE.parent.parent  # the directory holding the runbooks package
# the code a keeper runs: a change to any of these is another version
KEEP_ENV = "GREENROOM_SSH_KEEP"
KEEP_DEFAULT = 60  # seconds; `ssh: {keep: 0}` or GREENROOM_SSH_KEEP=0 turns keeping off
KEEPER_CODE = ("keep_paths.py", "keep_wire.py", "keep_server.py", "session.py",
               "session_direct.py", "session_hostkeys.py")


class KeepDirRefused(Exception):
    """The keeper's directory is not private to this user."""


def keep_dir() -> Path:
    """The directory of this user's keeper sockets (not checked, not made)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "greenroom"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greenroom" / "keep"


def private_dir(directory: Path, make: bool = True) -> Path:
    """`directory`, made (mode 0700) when missing and `make`; raises KeepDirRefused when it
    is a symlink, not a directory, another user's, or writable by group or others."""
    if make:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            pass  # not a directory: said below
        except OSError as exc:
            raise KeepDirRefused(f"cannot make {directory}: {exc}") from exc
    try:
        found = os.lstat(directory)
    except OSError as exc:
        raise KeepDirRefused(f"{directory}: {exc}") from exc
    if stat.S_ISLNK(found.st_mode):
        raise KeepDirRefused(f"{directory} is a symbolic link")
    if not stat.S_ISDIR(found.st_mode):
        raise KeepDirRefused(f"{directory} is not a directory")
    if found.st_uid != os.getuid():
        raise KeepDirRefused(f"{directory} belongs to uid {found.st_uid}, not to us")
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeepDirRefused(f"{directory} is writable by group or others "
                             f"(mode {stat.S_IMODE(found.st_mode):o})")
    return directory


def code_version(executable: str | None = None, root: Path | None = None) -> str:
    """A short hash naming the interpreter, the package's place and the keeper code's
    modification times (another value: another keeper)."""
    root = root or PACKAGE_ROOT
    parts = [executable or sys.executable, str(root)]
    for name in KEEPER_CODE:
        try:
            parts.append(f"{name}:{os.stat(root / 'runbooks' / 'core' / name).st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:-")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def socket_path(directory: Path | None = None, version: str | None = None) -> Path:
    """The socket of the keeper for this code, in `directory` (default: `keep_dir()`)."""
    return (directory or keep_dir()) / f"keep-{version or code_version()}.sock"


def keep_seconds(inventory: Any, environ: Any = None) -> int:
    """How long connections are kept after their last use (0: not kept): the environment's
    GREENROOM_SSH_KEEP, else the inventory's `ssh: {keep: ...}`, else KEEP_DEFAULT (60 s,
    like Ansible's ControlPersist: a check/reset/check within a minute logs in once)."""
    environ = os.environ if environ is None else environ
    value = environ.get(KEEP_ENV, "").strip()
    if value:
        if not value.isdigit():
            raise UsageError(f"{KEEP_ENV}={value!r}: expected whole seconds (0 turns keeping "
                             "connections off), such as 60")
        return int(value)
    section = getattr(inventory, "sections", {}).get("ssh") or {}
    return int(section.get("keep", KEEP_DEFAULT))
