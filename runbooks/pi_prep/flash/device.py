"""Facts about a block device, read from the kernel (sysfs, mountinfo, swaps), never guessed.

`read_device("/dev/sdb")` returns a `Device`: whole disk or partition, size, removable flag,
transport (usb, mmc, loop, ...), model, its partitions, and what on it (or on anything built on
it: partitions, device-mapper, md) is mounted or used as swap, and whether that includes the
running system. Nothing here writes anything; `refusals.py` decides what these facts forbid.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/boot/firmware", "/usr", "/var", "/home")


class DeviceError(ValueError):
    """The path names no block device we can read facts about."""


@dataclass(frozen=True)
class Partition:
    name: str
    size: int  # bytes


@dataclass(frozen=True)
class Device:
    """What the kernel says about one block device (sizes in bytes)."""

    path: str
    name: str  # kernel name: sdb, mmcblk0, loop3
    size: int
    whole_disk: bool
    removable: bool
    transport: str  # usb, mmc, loop, nvme, virtio, ata, scsi, unknown
    model: str
    read_only: bool = False
    partitions: tuple[Partition, ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()  # (kernel name, mount point)
    swaps: tuple[str, ...] = ()  # kernel names (or swap files) in use as swap
    system_mounts: tuple[str, ...] = field(default=())  # mount points of the running system
    backing_file: str | None = None  # loop devices: the file behind them
    mmc_type: str | None = None  # MMC devices: SD (a card) or MMC (built-in eMMC)


def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def _transport(sysdir: Path, name: str) -> str:
    if name.startswith("loop"):
        return "loop"
    if name.startswith("mmcblk"):
        return "mmc"
    if name.startswith("nvme"):
        return "nvme"
    if name.startswith("vd"):
        return "virtio"
    try:
        real = os.path.realpath(sysdir / "device")
    except OSError:
        return "unknown"
    if "/usb" in real:
        return "usb"
    if "/mmc" in real:
        return "mmc"
    if "/ata" in real:
        return "ata"
    return "scsi" if name.startswith("sd") else "unknown"


def _model(sysdir: Path) -> str:
    parts = [_read(sysdir / "device" / key) for key in ("vendor", "model", "name")]
    return " ".join(p for p in parts if p) or "(no model reported)"


def _stack(sys_block: Path, names: list[str]) -> set[str]:
    """`names` and every device built on them (holders: dm, md), transitively."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        holders = sys_block / name / "holders"
        if holders.is_dir():
            todo.extend(entry.name for entry in holders.iterdir())
    return seen


def _devnums(sys_block: Path, names: set[str]) -> dict[str, str]:
    """major:minor -> kernel name for `names`."""
    out = {}
    for name in names:
        dev = _read(sys_block / name / "dev")
        if dev:
            out[dev] = name
    return out


def _mountinfo(proc: Path) -> list[tuple[str, str, str]]:
    """(major:minor, mount point, source) of every mount this process sees."""
    out = []
    for line in _read(proc / "self" / "mountinfo").splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        mountpoint = fields[4].replace("\\040", " ")
        source = fields[sep + 2] if len(fields) > sep + 2 else ""
        out.append((fields[2], mountpoint, source))
    return out


def _devnum_of(path: str) -> str | None:
    """major:minor of a block device node, or of the filesystem holding a file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    number = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    return f"{os.major(number)}:{os.minor(number)}"


def _swaps(proc: Path) -> list[str]:
    lines = _read(proc / "swaps").splitlines()[1:]
    return [line.split()[0].replace("\\040", " ") for line in lines if line.split()]


def read_device(path: str, sys_root: str = "/sys", proc_root: str = "/proc") -> Device:
    """The facts of the block device at `path` (a /dev node or a symlink to one)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise DeviceError(f"{path} does not exist; list the disks with `lsblk -d -o "
                          "NAME,SIZE,TRAN,RM,MODEL` and give one of them") from None
    if not stat.S_ISBLK(st.st_mode):
        raise DeviceError(f"{path} is not a block device; give the card reader's disk, "
                          "e.g. /dev/sdb or /dev/mmcblk0 (see `lsblk -d`)")
    sys_block = Path(sys_root) / "class" / "block"
    devnum = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    sysdir = Path(os.path.realpath(Path(sys_root) / "dev" / "block" / devnum))
    name = sysdir.name
    if not (sysdir / "dev").exists():
        raise DeviceError(f"{path}: the kernel has no sysfs entry for {devnum}")
    whole = not (sysdir / "partition").exists()
    disk_dir = sysdir if whole else sysdir.parent
    partitions = tuple(
        Partition(entry.name, int(_read(entry / "size", "0")) * 512)
        for entry in sorted(disk_dir.iterdir())
        if (entry / "partition").exists()
    ) if whole else ()
    stack = _stack(sys_block, [name, *(p.name for p in partitions)])
    numbers = _devnums(sys_block, stack)
    mounts: list[tuple[str, str]] = []
    system: list[str] = []
    proc = Path(proc_root)
    for number, mountpoint, source in _mountinfo(proc):
        holder = numbers.get(number)
        if holder is None and source.startswith("/dev/"):
            holder = numbers.get(_devnum_of(source) or "")
        if holder is not None:
            mounts.append((holder, mountpoint))
            if mountpoint in SYSTEM_MOUNTS:
                system.append(mountpoint)
    swaps = [entry for entry in _swaps(proc)
             if (_devnum_of(entry) or "") in numbers]
    backing = _read(sysdir / "loop" / "backing_file") or None
    return Device(
        path=path,
        name=name,
        size=int(_read(sysdir / "size", "0")) * 512,
        whole_disk=whole,
        removable=_read(sysdir / "removable", "0") == "1",
        transport=_transport(sysdir, name),
        model=_model(sysdir),
        read_only=_read(sysdir / "ro", "0") == "1",
        partitions=partitions,
        mounts=tuple(mounts),
        swaps=tuple(swaps),
        system_mounts=tuple(system),
        backing_file=backing,
        mmc_type=(_read(sysdir / "device" / "type") or None) if name.startswith("mmcblk")
        else None,
    )


def describe(device: Device) -> str:
    """What the operator sees before confirming: model, size, transport, partitions, mounts."""
    lines = [f"{device.path} ({device.name}): {device.model}, {human(device.size)}, "
             f"{device.transport}{', removable' if device.removable else ''}"
             f"{', read-only' if device.read_only else ''}"]
    if device.backing_file:
        lines.append(f"  loop device backed by {device.backing_file}")
    if device.partitions:
        for part in device.partitions:
            where = [m for n, m in device.mounts if n == part.name]
            lines.append(f"  {part.name}: {human(part.size)}"
                         + (f", mounted on {', '.join(where)}" if where else ""))
    else:
        lines.append("  no partitions")
    return "\n".join(lines)


def human(size: int) -> str:
    """A size in decimal units, as cards are sold: 31.9 GB, 512.0 MB."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
