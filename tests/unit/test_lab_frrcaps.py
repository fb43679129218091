"""The lab's frr-caps seed: the preload is built once per machine and put into a guest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runbooks.lab import frrcaps

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="needs a C compiler (apt-get install gcc libc6-dev)")


def test_seed_puts_the_preload_and_the_drop_in(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "root"
    frrcaps.seed_frr_caps(root)
    library = root / frrcaps.GUEST_LIBRARY
    assert library.read_bytes()[:4] == b"\x7fELF"
    drop_in = (root / frrcaps.DROP_IN).read_text()
    assert f"Environment=LD_PRELOAD=/{frrcaps.GUEST_LIBRARY}" in drop_in
    built = frrcaps.build_library()
    assert built.stat().st_mtime == frrcaps.build_library().stat().st_mtime  # built once


def test_the_preload_only_ever_removes_capabilities() -> None:
    source = frrcaps.SOURCE.read_text()
    assert "CAP_CLEAR_" in source and "CAP_SET" not in source
    assert "PR_CAPBSET_READ" in source
