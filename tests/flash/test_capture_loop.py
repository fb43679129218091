"""capture round trip on loop devices: flash a prepared card, capture it, flash the capture
to a second card; the same files, the board's identity cleared, the root shrunk."""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest

from runbooks.pi_prep.flash.capture import CaptureError, capture
from runbooks.pi_prep.flash.partitions import read_table
from runbooks.pi_prep.flash.refusals import Refused
from runbooks.pi_prep.flash.run import flash
from tests.flash.imagekit import MiB, build_image


def _tree(device: str, where: Path) -> tuple[Path, Path]:
    """The boot and root filesystems of `device` copied out to `where` (mtools, debugfs)."""
    table = read_table(device)
    boot, root = where / "boot", where / "root"
    boot.mkdir(parents=True)
    root.mkdir()
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(["mcopy", "-s", "-n", "-i", f"{device}@@{table.boot().start}", "::/*",
                    str(boot)], check=True, capture_output=True, env=env)
    rootpart = table.root()
    assert rootpart is not None
    subprocess.run(["debugfs", "-R", f"rdump / {root}", f"{device}?offset={rootpart.start}"],
                   check=True, capture_output=True)
    return boot, root


def _differences(a: Path, b: Path) -> list[str]:
    """Relative paths present on one side only or with different contents (byte by byte)."""
    def files(top: Path) -> set[str]:
        return {str(p.relative_to(top)) for p in top.rglob("*") if not p.is_dir()}

    left, right = files(a), files(b)
    differ = {name for name in left & right
              if not filecmp.cmp(a / name, b / name, shallow=False)}
    return sorted((left ^ right) | differ)


@pytest.mark.parametrize("suffix", [".img.xz", ".img.zst"])
def test_capture_round_trip(suffix, tmp_path, loops, board):
    image = build_image(tmp_path / "raspios.img", "raspios", size=128 * MiB, payload=8 * MiB)
    first = loops(160 * MiB)
    flash(str(image), first, board, yes=True, allowed_loops={first}, out=lambda _: None,
          show_progress=False)
    captured = tmp_path / f"golden{suffix}"
    result = capture(first, captured, allowed_loops={first}, out=lambda _: None,
                     show_progress=False)
    assert result.shrunk and result.raw_size < 128 * MiB
    assert "/etc/machine-id" in result.cleared and "/etc/hostname" in result.cleared
    assert captured.stat().st_size < result.raw_size
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".capture-")] == []

    second = loops(160 * MiB)
    again = flash(str(captured), second, None, yes=True, allowed_loops={second},
                  out=lambda _: None, show_progress=False)
    assert again is not None and again.size == result.raw_size
    table = read_table(second)
    root = table.root()
    assert root is not None and root.end == result.raw_size

    boot_a, root_a = _tree(first, tmp_path / "a")
    boot_b, root_b = _tree(second, tmp_path / "b")
    assert _differences(boot_a, boot_b) == []
    assert _differences(root_a, root_b) == [
        "etc/hostname", "etc/hosts", "etc/machine-id",
        "etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub",
        "etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub",
        "var/lib/dbus/machine-id"]
    assert (root_b / "etc/machine-id").read_text() == ""
    assert (root_b / "etc/hostname").read_text() == "localhost\n"
    assert "127.0.1.1" not in (root_b / "etc/hosts").read_text()
    assert not list((root_b / "etc/ssh").glob("ssh_host_*"))
    assert (root_b / "etc/ssh/sshd_config").exists()
    assert filecmp.cmp(root_a / "opt/data/payload.bin", root_b / "opt/data/payload.bin",
                       shallow=False)


def test_capture_without_shrink_keeps_the_full_root(tmp_path, loops):
    image = build_image(tmp_path / "raspios.img", "raspios", size=64 * MiB)
    card = loops(image)
    result = capture(card, tmp_path / "full.img", shrink=False, allowed_loops={card},
                     out=lambda _: None, show_progress=False)
    assert not result.shrunk and result.raw_size == 64 * MiB
    assert (tmp_path / "full.img").stat().st_size == 64 * MiB


def test_capture_refuses_a_card_that_is_not_a_card_and_a_bad_name(tmp_path, loops):
    card = loops(64 * MiB)
    with pytest.raises(Refused, match="not USB or MMC"):
        capture(card, tmp_path / "x.img.xz", out=lambda _: None, show_progress=False)
    with pytest.raises(CaptureError, match="name the output"):
        capture(card, tmp_path / "x.tar", allowed_loops={card}, out=lambda _: None)
    with pytest.raises(Exception, match="no partition table"):
        capture(card, tmp_path / "x.img.xz", allowed_loops={card}, out=lambda _: None,
                show_progress=False)
    assert not (tmp_path / "x.img.xz").exists()
