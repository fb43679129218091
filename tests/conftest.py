"""Every test leaves the process as it found it: the secrets registry, the engine's access
plug-ins and sys.path are restored after each test (a test that registers a secret or a
plug-in cannot change what later tests see).

Like tasks.py (the CLI layer), the tests let inventories describe the virtual lab: many of
them read hosts/lab*.yaml. The lab's access (its key) is plugged in only by tests/lab/."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbooks.lab.schema import declare as declare_lab_inventory_keys

declare_lab_inventory_keys()


@pytest.fixture(autouse=True)
def no_global_state_left_behind() -> Iterator[None]:
    from runbooks.core import access, secrets

    saved_secrets = set(secrets._secrets)
    saved_providers = list(access._providers)
    saved_path = list(sys.path)
    yield
    secrets._secrets.clear()
    secrets._secrets.update(saved_secrets)
    access._providers[:] = saved_providers
    sys.path[:] = saved_path


# Kept connections are on by default (60 s): every keeper a test starts inherits this mark in
# its environment (keep_client.keeper_environment passes ours on), so the session's end finds
# and stops each of them, wherever its socket is (a test's own HOME or XDG_RUNTIME_DIR, an `inv`
# the test started), and no other keeper (a user's own) is touched.
TEST_RUN_MARK = "GREENROOM_TEST_RUN"
os.environ[TEST_RUN_MARK] = f"{os.getpid()}-{time.time_ns()}"


def keepers_of_this_run(mark: str) -> list[tuple[int, str]]:
    """(pid, socket) of every live keeper whose environment carries this run's mark."""
    found = []
    wanted = f"{TEST_RUN_MARK}={mark}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"runbooks.core.keep_server" not in argv:
                continue
            if wanted not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            where = argv.index(b"runbooks.core.keep_server") + 1
            found.append((int(entry), argv[where].decode() if where < len(argv) else ""))
    return found


@pytest.fixture(scope="session", autouse=True)
def no_keeper_left_behind() -> Iterator[None]:
    """Every SSH connection keeper started during the session (by a run with kept
    connections: the default) is stopped when the session ends: asked to stop on its socket,
    then SIGTERM if it did not within 10 s."""
    yield
    from runbooks.core.keep_client import ask
    from runbooks.core.keep_paths import socket_path

    if socket_path().exists():
        ask(socket_path(), "stop")
    mark = os.environ[TEST_RUN_MARK]
    for _pid, path in keepers_of_this_run(mark):
        if path and Path(path).exists():
            ask(Path(path), "stop")
    deadline = time.monotonic() + 10
    while keepers_of_this_run(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid, _path in keepers_of_this_run(mark):
        os.kill(pid, signal.SIGTERM)
