"""Prepare the boot partition of a written card (or image file) for its board, in place.

Reads the partition table, the boot partition's files (mtools) and the root's os-release
(debugfs), picks the flavour (bootprep.flavour), writes the files bootprep gives.
"""

from __future__ import annotations

from runbooks.pi_prep.flash import ext4
from runbooks.pi_prep.flash.bootprep import Board, boot_files, flavour
from runbooks.pi_prep.flash.fat import FatPartition
from runbooks.pi_prep.flash.partitions import read_table


def prepare_boot(path: str, board: Board) -> tuple[str, list[str]]:
    """Write the board's boot files into `path`; return the flavour and the names written."""
    table = read_table(path)
    boot = FatPartition(path, table.boot().start)
    names = boot.names()
    root = table.root()
    os_release = None
    if root is not None and ext4.is_ext(path, root.start):
        os_release = ext4.read_file(path, root.start, "/etc/os-release")
        if os_release is None:
            os_release = ext4.read_file(path, root.start, "/usr/lib/os-release")
    kind = flavour(names, os_release)
    cmdline = boot.read("cmdline.txt")
    files = boot_files(board, kind, cmdline.decode() if cmdline is not None else None)
    for name, content in files.items():
        if name == "cmdline.txt" and cmdline == content:
            continue
        boot.write(name, content)
    return kind, sorted(files)
