"""Refusals on real block-device facts: the machine's root disk, a partition, a mounted
filesystem, an oversized and an undersized device, a read-only one, a loop device not on
the allow list. Nothing is written in any of these tests."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from runbooks.pi_prep.flash.device import read_device
from runbooks.pi_prep.flash.image import ImageInfo, chunks, inspect_image
from runbooks.pi_prep.flash.refusals import Refused, refusals
from runbooks.pi_prep.flash.run import flash
from tests.flash.imagekit import MiB, build_image


def _root_disk() -> str | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[4] == "/" and fields[sep + 2].startswith("/dev/"):
            return fields[sep + 2]
    return None


def test_the_machines_root_disk_is_refused_as_the_running_system() -> None:
    disk = _root_disk()
    if disk is None:
        pytest.skip("/ is not on a block device here (container overlay)")
    device = read_device(disk)
    reasons = refusals(device, 10 * MiB, allowed_loops={disk})
    assert any("holds the running system" in r and "/" in r for r in reasons), reasons


def test_the_root_disk_is_refused_by_flash_before_anything_is_written(tmp_path, board):
    disk = _root_disk()
    if disk is None:
        pytest.skip("/ is not on a block device here")
    image = build_image(tmp_path / "img.img", size=48 * MiB)
    with pytest.raises(Refused) as refused:
        flash(str(image), disk, board, yes=True, out=lambda _: None, show_progress=False)
    assert "running system" in str(refused.value)


def test_a_plain_loop_device_is_not_a_card(loops):
    device = read_device(loops(64 * MiB))
    reasons = refusals(device, 10 * MiB)
    assert [r.split(" is ")[1].split(":")[0] for r in reasons] == [
        "attached over loop, not USB or MMC", "not removable media"]


def test_an_allowed_loop_device_passes(loops):
    path = loops(64 * MiB)
    assert refusals(read_device(path), 10 * MiB, allowed_loops={path}) == []


def test_a_loop_device_with_a_mounted_ext4_is_refused(loops, tmp_path):
    path = loops(64 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", path], check=True)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    subprocess.run(["mount", path, str(mountpoint)], check=True)
    try:
        reasons = refusals(read_device(path), 10 * MiB, allowed_loops={path})
        assert len(reasons) == 1 and "has mounted filesystems" in reasons[0]
        assert str(mountpoint) in reasons[0] and "umount" in reasons[0]
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
    assert refusals(read_device(path), 10 * MiB, allowed_loops={path}) == []


def _partition_nodes(disk: str, where: Path) -> list[str]:
    """Device nodes for the partitions of `disk`, made in `where` (not in /dev: this
    machine may have no udev); partx adds them where the kernel parsed no table."""
    name = Path(disk).name
    if not Path(f"/sys/class/block/{name}p1").exists():
        subprocess.run(["partx", "-a", disk], check=True, capture_output=True)
    nodes = []
    for number in (1, 2):
        major, minor = Path(f"/sys/class/block/{name}p{number}/dev").read_text().split(":")
        node = where / f"{name}p{number}"
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(int(major), int(minor)))
        nodes.append(str(node))
    return nodes


def test_a_mounted_partition_refuses_its_whole_disk_and_the_partition_itself(loops, tmp_path):
    image = build_image(tmp_path / "img.img", size=64 * MiB)
    path = loops(image, partscan=True)
    part1, part2 = _partition_nodes(path, tmp_path)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    subprocess.run(["mount", part2, str(mountpoint)], check=True)
    try:
        disk = read_device(path)
        assert [p.name for p in disk.partitions] == [f"{disk.name}p1", f"{disk.name}p2"]
        reasons = refusals(disk, 10 * MiB, allowed_loops={path})
        assert len(reasons) == 1 and f"{disk.name}p2 on {mountpoint}" in reasons[0]
        part = read_device(part1)
        assert part.name == f"{disk.name}p1"
        assert any("is a partition, not a whole disk" in r
                   for r in refusals(part, 1, allowed_loops={part1}))
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
        subprocess.run(["partx", "-d", path], capture_output=True)


def test_an_oversized_device_is_refused_unless_the_limit_is_raised(loops):
    path = loops(300 * 10**9)  # sparse: no space used
    device = read_device(path)
    reasons = refusals(device, 10 * MiB, allowed_loops={path})
    assert len(reasons) == 1 and "larger than the limit of 256.0 GB" in reasons[0]
    assert "--max-size" in reasons[0]
    assert refusals(device, 10 * MiB, max_size=400 * 10**9, allowed_loops={path}) == []


def test_a_device_smaller_than_the_image_is_refused_and_left_untouched(loops, tmp_path, board):
    image = build_image(tmp_path / "img.img", size=64 * MiB)
    path = loops(32 * MiB)
    with pytest.raises(Refused) as refused:
        flash(str(image), path, board, yes=True, allowed_loops={path}, out=lambda _: None,
              show_progress=False)
    assert "larger than" in refused.value.reasons[0] and "bigger card" in refused.value.reasons[0]
    with open(path, "rb") as f:
        assert f.read(1 * MiB) == bytes(1 * MiB)


def test_a_read_only_device_is_refused(tmp_path):
    backing = tmp_path / "ro.bin"
    with open(backing, "wb") as f:
        f.truncate(64 * MiB)
    path = subprocess.run(["losetup", "--find", "--show", "--read-only", str(backing)],
                          check=True, capture_output=True, text=True).stdout.strip()
    try:
        reasons = refusals(read_device(path), 10 * MiB, allowed_loops={path})
        assert len(reasons) == 1 and "read-only" in reasons[0]
    finally:
        subprocess.run(["losetup", "-d", path], check=True)


def test_a_damaged_xz_image_is_reported_with_what_to_do(tmp_path):
    image = tmp_path / "broken.img.xz"
    image.write_bytes(b"not xz at all")
    with pytest.raises(ValueError, match="not a valid xz file"):
        inspect_image(image)
    with pytest.raises(ValueError, match="decompression failed.*download it again"):
        list(chunks(ImageInfo(image, "xz", None)))
