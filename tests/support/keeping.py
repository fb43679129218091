"""A keeper of a test's own: kept connections on (60 s), its socket in the test's own
XDG_RUNTIME_DIR, and the keeper stopped (and gone) when the test ends."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runbooks.core.keep_client import ask, running_keepers


@contextmanager
def own_keeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Keeping on with a keeper of this test's own; yields its runtime directory."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("GREENROOM_SSH_KEEP", "60")
    try:
        yield runtime
    finally:
        for path in running_keepers():
            answer = ask(path, "stop")
            if answer:
                wait_gone(answer["pid"])


def wait_gone(pid: int, seconds: float = 10) -> None:
    """Wait until process `pid` has exited (reaped, if it is our child)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
