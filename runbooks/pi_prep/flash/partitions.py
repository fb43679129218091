"""The partition table of an image or device (read with sfdisk), and the MBR edit that
capture needs to shrink the last partition.

Offsets and sizes are bytes. Tools reach a partition by offset (mtools `file@@offset`,
debugfs `file?offset=`), so nothing here needs the kernel's partition devices.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from dataclasses import dataclass

FAT_TYPES = {"b", "c", "e", "6", "4", "1", "ef",
             "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",  # GPT EFI system
             "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"}  # GPT basic data
LINUX_TYPES = {"83", "0fc63daf-8483-4772-8e79-3d69d8477de4"}


class PartitionError(ValueError):
    """The image's partition table is not what a board image has."""


@dataclass(frozen=True)
class Part:
    number: int  # 1-based
    start: int
    size: int
    type: str

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class Table:
    label: str  # dos or gpt
    sector: int
    parts: tuple[Part, ...]

    @property
    def end(self) -> int:
        """Where the last partition ends (the used span of the disk)."""
        return max((p.end for p in self.parts), default=0)

    def boot(self) -> Part:
        """The first FAT partition: the board's boot (firmware) partition."""
        for part in self.parts:
            if part.type.lower() in FAT_TYPES:
                return part
        raise PartitionError("no FAT boot partition in the image: it is not a Raspberry Pi "
                             "or Ubuntu board image; check the file")

    def root(self) -> Part | None:
        """The first Linux partition after the boot partition, if any."""
        return next((p for p in self.parts if p.type.lower() in LINUX_TYPES), None)


def read_table(path: str) -> Table:
    """The partition table of the image file or device at `path`."""
    sfdisk = shutil.which("sfdisk")
    if sfdisk is None:
        raise PartitionError("sfdisk is not installed; install Debian's fdisk package")
    out = subprocess.run([sfdisk, "--json", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise PartitionError(f"{path}: no partition table ({out.stderr.strip()}); this is "
                             "not a disk image, or the write did not complete")
    table = json.loads(out.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    parts = tuple(
        Part(index + 1, int(p["start"]) * sector, int(p["size"]) * sector, str(p["type"]))
        for index, p in enumerate(table.get("partitions", []))
    )
    return Table(str(table["label"]), sector, parts)


def mbr_with_size(mbr: bytes, number: int, sectors: int) -> bytes:
    """The 512-byte MBR `mbr` with primary partition `number`'s length set to `sectors`."""
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa" or not 1 <= number <= 4:
        raise PartitionError("not an MBR (dos) partition table with that primary partition")
    entry = 446 + 16 * (number - 1)
    return mbr[:entry + 12] + struct.pack("<I", sectors) + mbr[entry + 16:]
