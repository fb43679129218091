"""Every test leaves the process as it found it: the secrets registry, the engine's access
plug-ins and sys.path are restored after each test (a test that registers a secret or a
plug-in cannot change what later tests see).

Like tasks.py (the CLI layer), the tests let inventories describe the virtual lab: many of
them read hosts/lab*.yaml. The lab's access (its key) is plugged in only by tests/lab/."""

from __future__ import annotations

import sys
from collections.abc import Iterator

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


@pytest.fixture(scope="session", autouse=True)
def no_keeper_left_behind() -> Iterator[None]:
    """The SSH connection keeper of this checkout's code (started by a test run with
    GREENROOM_SSH_KEEP or `ssh: {keep:}`) is stopped when the session ends."""
    yield
    from runbooks.core.keep_client import ask
    from runbooks.core.keep_paths import socket_path

    if socket_path().exists():
        ask(socket_path(), "stop")
