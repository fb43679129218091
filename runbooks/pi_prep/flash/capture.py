"""`inv pi-prep.capture`: a prepared card back to a compressed image that any number of
boards can be flashed from, each becoming unique.

The card is only read. Its root partition is copied to a sparse work file beside the
output, its per-board identity cleared there (SSH host keys, machine-id, host name, with
e2fsprogs' debugfs), checked, and shrunk to what it uses when the root is the last partition
of an MBR table (resize2fs -M, the partition entry shrunk to match). Then the bytes before
the root, the root and anything after it are streamed through xz or zstd into a temporary
file renamed over the output only when complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from runbooks.pi_prep.flash import ext4
from runbooks.pi_prep.flash.device import describe, human, read_device
from runbooks.pi_prep.flash.partitions import Table, mbr_with_size, read_table
from runbooks.pi_prep.flash.refusals import DEFAULT_MAX_SIZE, Refused, refusals
from runbooks.pi_prep.flash.writer import CHUNK, progress

COMPRESSORS = {".img.xz": ["xz", "-T0", "-c"], ".img.zst": ["zstd", "-T0", "-q", "-c"],
               ".img": None}
IDENTITY_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id", "/etc/hostname")
_ZERO = bytes(CHUNK)


class CaptureError(ValueError):
    """The card or the output cannot be captured; the message says what to do."""


@dataclass(frozen=True)
class CaptureResult:
    output: Path
    raw_size: int  # bytes of the image inside the output
    shrunk: bool
    cleared: tuple[str, ...]


def _compressor(output: Path) -> list[str] | None:
    for suffix, command in COMPRESSORS.items():
        if output.name.endswith(suffix):
            if command and shutil.which(command[0]) is None:
                raise CaptureError(f"{command[0]} is not installed; install Debian's "
                                   f"{'xz-utils' if command[0] == 'xz' else 'zstd'} package")
            return command
    raise CaptureError(f"{output}: name the output .img.xz, .img.zst or .img")


def _copy_sparse(device: str, start: int, length: int, target: Path, advance) -> None:
    """Copy `length` bytes at `start` of `device` to `target`, all-zero chunks as holes."""
    with open(device, "rb", buffering=0) as src, open(target, "wb") as dst:
        src.seek(start)
        done = 0
        while done < length:
            chunk = src.read(min(CHUNK, length - done))
            if not chunk:
                raise CaptureError(f"{device} ended {length - done} bytes early")
            if chunk == _ZERO[:len(chunk)]:
                dst.seek(len(chunk), os.SEEK_CUR)
            else:
                dst.write(chunk)
            done += len(chunk)
            advance(len(chunk))
        dst.truncate(length)


def clear_identity(root: Path) -> list[str]:
    """Remove the board's identity from the ext4 image `root`; the paths cleared."""
    cleared: list[str] = []
    commands: list[str] = []
    for name in ext4.listdir(str(root), "/etc/ssh"):
        if name.startswith("ssh_host_"):
            commands.append(f"rm /etc/ssh/{name}")
            cleared.append(f"/etc/ssh/{name}")
    with tempfile.TemporaryDirectory() as work:
        empty = Path(work) / "empty"
        empty.write_text("")
        localhost = Path(work) / "hostname"
        localhost.write_text("localhost\n")
        if ext4.read_file(str(root), 0, "/etc/machine-id") is not None:
            commands += ["rm /etc/machine-id", f"write {empty} /etc/machine-id",
                         "sif /etc/machine-id mode 0100444"]
            cleared.append("/etc/machine-id")
        if ext4.read_file(str(root), 0, "/var/lib/dbus/machine-id") is not None:
            commands.append("rm /var/lib/dbus/machine-id")
            cleared.append("/var/lib/dbus/machine-id")
        if ext4.read_file(str(root), 0, "/etc/hostname") is not None:
            commands += ["rm /etc/hostname", f"write {localhost} /etc/hostname",
                         "sif /etc/hostname mode 0100644"]
            cleared.append("/etc/hostname")
        hosts_text = ext4.read_file(str(root), 0, "/etc/hosts")
        if hosts_text is not None and "127.0.1.1" in hosts_text:
            hosts = Path(work) / "hosts"
            hosts.write_text("".join(line for line in hosts_text.splitlines(keepends=True)
                                     if not line.startswith("127.0.1.1")))
            commands += ["rm /etc/hosts", f"write {hosts} /etc/hosts",
                         "sif /etc/hosts mode 0100644"]
            cleared.append("/etc/hosts (127.0.1.1)")
        if commands:
            ext4.debugfs_write(str(root), commands)
    return cleared


def _pieces(device: str, table: Table, root_start: int, root_file: Path, root_len: int,
            rest: tuple[int, int] | None, new_sectors: int | None,
            root_number: int) -> Iterator[bytes]:
    """The captured image: the device before the root (MBR patched), the root, the rest."""
    with open(device, "rb", buffering=0) as src:
        first = True
        offset = 0
        while offset < root_start:
            chunk = src.read(min(CHUNK, root_start - offset))
            if first and new_sectors is not None:
                chunk = mbr_with_size(chunk[:512], root_number, new_sectors) + chunk[512:]
            first = False
            offset += len(chunk)
            yield chunk
        with open(root_file, "rb", buffering=0) as root:
            left = root_len
            while left > 0:
                chunk = root.read(min(CHUNK, left))
                left -= len(chunk)
                yield chunk
        if rest is not None:
            src.seek(rest[0])
            left = rest[1] - rest[0]
            while left > 0:
                chunk = src.read(min(CHUNK, left))
                left -= len(chunk)
                yield chunk


def capture(device_path: str, output: str | os.PathLike[str], *,
            max_size: int = DEFAULT_MAX_SIZE, shrink: bool = True, show_progress: bool = True,
            out: Callable[[str], None] = print,
            allowed_loops: Collection[str] = ()) -> CaptureResult:
    """Capture the card at `device_path` into `output` (see the module docstring)."""
    target = Path(output)
    command = _compressor(target)
    device = read_device(device_path)
    reasons = refusals(device, None, max_size, allowed_loops, reading=True)
    if reasons:
        raise Refused(device, reasons)
    out(describe(device))
    table = read_table(device_path)
    root = table.root()
    if root is None or not ext4.is_ext(device_path, root.start):
        raise CaptureError(f"{device_path} has no ext4 root partition: the board's identity "
                           "cannot be cleared, so the image would make identical boards")
    if not target.parent.is_dir():
        raise CaptureError(f"{target.parent} does not exist; create it or name another place")
    can_shrink = (shrink and table.label == "dos" and root.end == table.end
                  and root.number <= 4)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".capture-") as work:
        root_file = Path(work) / "root.ext4"
        with progress("read", root.size, show_progress) as advance:
            _copy_sparse(device_path, root.start, root.size, root_file, advance)
        cleared = clear_identity(root_file)
        ext4.check(str(root_file))
        root_len = ext4.shrink(str(root_file)) if can_shrink else root.size
        sectors = root_len // table.sector if can_shrink else None
        rest = None if can_shrink or root.end >= table.end else (root.end, table.end)
        total = root.start + root_len + (rest[1] - rest[0] if rest else 0)
        partial = Path(work) / "out"
        with open(partial, "wb") as sink:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=sink) \
                if command else None
            stream = proc.stdin if proc else sink
            assert stream is not None
            try:
                with progress("compress" if proc else "write", total, show_progress) as advance:
                    for chunk in _pieces(device_path, table, root.start, root_file, root_len,
                                         rest, sectors, root.number):
                        stream.write(chunk)
                        advance(len(chunk))
            finally:
                if proc is not None:
                    assert proc.stdin is not None
                    proc.stdin.close()
                    if proc.wait() != 0:
                        raise CaptureError(f"{command[0] if command else ''} failed while "
                                           "compressing; check free space")
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(partial, target)
    out(f"captured {human(total)} of {device_path} into {target} "
        f"({human(target.stat().st_size)}){', root shrunk' if can_shrink else ''}; "
        f"cleared: {', '.join(cleared) or 'nothing to clear'}")
    return CaptureResult(target, total, can_shrink, tuple(cleared))
