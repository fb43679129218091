"""An ext4 root filesystem inside a device or image, through e2fsprogs (debugfs with an
offset; no mount): read a file, and for capture clear files, check and shrink."""

from __future__ import annotations

import re
import shutil
import subprocess


class Ext4Error(RuntimeError):
    """e2fsprogs failed; the message carries its error."""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Ext4Error(f"{name} is not installed; install Debian's e2fsprogs package")
    return found


def spec(path: str, offset: int = 0) -> str:
    """The name e2fsprogs' debugfs opens for a filesystem `offset` bytes into `path`."""
    return f"{path}?offset={offset}" if offset else path


def is_ext(path: str, offset: int = 0) -> bool:
    """True when an ext2/3/4 filesystem starts at `offset` (its superblock magic)."""
    with open(path, "rb") as f:
        f.seek(offset + 1024 + 56)
        return f.read(2) == b"\x53\xef"


def read_file(path: str, offset: int, name: str) -> str | None:
    """The text of `name` in the filesystem, or None when it does not exist."""
    out = subprocess.run([_tool("debugfs"), "-R", f"cat {name}", spec(path, offset)],
                         capture_output=True)
    err = out.stderr.decode(errors="replace")
    if out.returncode != 0 or "File not found" in err or "not found by ext2_lookup" in err:
        return None
    return out.stdout.decode(errors="replace")


def debugfs_write(path: str, commands: list[str]) -> str:
    """Run debugfs `commands` read-write on the filesystem image `path`; their output."""
    out = subprocess.run([_tool("debugfs"), "-w", "-f", "-", path],
                         input="\n".join(commands) + "\n", capture_output=True, text=True)
    if out.returncode != 0:
        raise Ext4Error(f"debugfs on {path} failed: {out.stderr.strip()}")
    return out.stdout + out.stderr


def listdir(path: str, folder: str) -> list[str]:
    """Names in `folder` of the filesystem image `path` (empty when missing)."""
    out = subprocess.run([_tool("debugfs"), "-R", f"ls -p {folder}", path],
                         capture_output=True, text=True)
    names = []
    for line in out.stdout.splitlines():
        fields = line.strip("/").split("/")
        if len(fields) >= 5 and fields[4] not in (".", ".."):
            names.append(fields[4])
    return names


def check(path: str) -> None:
    """e2fsck -fy: a clean filesystem (resize2fs insists on one)."""
    out = subprocess.run([_tool("e2fsck"), "-fy", path], capture_output=True, text=True)
    if out.returncode >= 4:
        raise Ext4Error(f"e2fsck found errors it could not fix on the card's root "
                        f"filesystem:\n{out.stdout.strip()}\nrepair the card first")


def shrink(path: str) -> int:
    """Shrink the filesystem image `path` to its minimum (resize2fs -M); its new size."""
    out = subprocess.run([_tool("resize2fs"), "-M", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise Ext4Error(f"resize2fs -M failed: {out.stderr.strip()}")
    head = subprocess.run([_tool("dumpe2fs"), "-h", path], capture_output=True, text=True)
    count = re.search(r"^Block count:\s+(\d+)", head.stdout, re.M)
    block = re.search(r"^Block size:\s+(\d+)", head.stdout, re.M)
    if not count or not block:
        raise Ext4Error(f"dumpe2fs -h gave no block count for {path}")
    return int(count.group(1)) * int(block.group(1))
