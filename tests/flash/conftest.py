"""Fixtures for the flash and capture tests on real loop devices.

They need root (losetup) and Debian's fdisk (sfdisk), dosfstools, mtools, e2fsprogs, xz-utils
and zstd; without them they skip with the reason. Every loop device a test uses is made by
`loops` and detached at the end of the test whatever happens; nothing else is ever written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from runbooks.core.inventory import load_inventory
from runbooks.pi_prep.flash.bootprep import Board, board_from_inventory
from tests.flash.imagekit import loop_device

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("losetup", "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4", "debugfs", "resize2fs",
         "xz", "zstd")
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlashTestKeyOnlyForTests operator@laptop"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "loop devices need root"
    elif missing:
        reason = f"missing tools: {', '.join(missing)} (apt-get install fdisk dosfstools " \
                 "mtools e2fsprogs xz-utils zstd)"
    if reason:
        for item in items:
            if "tests/flash/" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`loops(size_or_path, partscan=False)` -> a new loop device over a sparse file of that
    many bytes (or over that file); every one detached at the end of the test."""
    with ExitStack() as stack:
        counter = iter(range(100))

        def make(backing: int | Path, partscan: bool = False) -> str:
            if isinstance(backing, int):
                path = tmp_path / f"card{next(counter)}.bin"
                with open(path, "wb") as f:
                    f.truncate(backing)
                backing = path
            return stack.enter_context(loop_device(backing, partscan))

        yield make


@pytest.fixture(scope="session")
def board() -> Board:
    inv = load_inventory(REPO / "hosts" / "demo.yaml")
    return board_from_inventory(inv, inv.host("rp0"), PUBLIC_KEY)
