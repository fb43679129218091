"""What the facts of a device forbid: every reason not to write it, each with what to do.

`refusals(device, image_size, max_size)` is pure: it looks only at a `Device` (see
device.py). A loop device is never a card; tests accept one only by passing its path in
`allowed_loops`, which no task exposes. An allowed loop device is still refused for every
other reason (mounted, swap, size).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from runbooks.pi_prep.flash.device import Device, human

DEFAULT_MAX_SIZE = 256 * 10**9  # 256 GB, as cards are sold
CARD_TRANSPORTS = ("usb", "mmc")


class Refused(Exception):
    """The device must not be written; `reasons` lists every cause with what to do."""

    def __init__(self, device: Device, reasons: list[str]):
        self.device = device
        self.reasons = reasons
        super().__init__(f"refusing to write {device.path}:\n"
                         + "\n".join(f"  - {reason}" for reason in reasons))


def refusals(device: Device, image_size: int | None, max_size: int = DEFAULT_MAX_SIZE,
             allowed_loops: Collection[str] = (), reading: bool = False) -> list[str]:
    """Every reason to refuse writing `image_size` bytes to `device` (empty: go ahead);
    `reading`: the reasons not to capture it (read-only is fine then)."""
    out: list[str] = []
    allowed_loop = device.transport == "loop" and device.path in allowed_loops
    if not device.whole_disk:
        out.append(f"{device.path} is a partition, not a whole disk: an image carries its own "
                   f"partition table; give the disk it belongs to (see `lsblk -d`)")
    if device.system_mounts:
        out.append(f"{device.path} holds the running system (mounted on "
                   f"{', '.join(device.system_mounts)}): this is this computer's own disk; "
                   "give the card reader's disk instead")
    if device.swaps:
        out.append(f"{device.path} is in use as swap ({', '.join(device.swaps)}): it is "
                   "this computer's own disk or in use; give the card reader's disk instead")
    mounted = [(name, where) for name, where in device.mounts if not device.system_mounts]
    if mounted:
        listed = ", ".join(f"{name} on {where}" for name, where in mounted)
        points = " ".join(sorted({where for _, where in mounted}))
        out.append(f"{device.path} has mounted filesystems ({listed}): unmount them first "
                   f"(`umount {points}`) if this really is the card")
    if not allowed_loop:
        if device.transport not in CARD_TRANSPORTS:
            out.append(f"{device.path} is attached over {device.transport}, not USB or MMC: "
                       "SD cards sit in a USB reader or the MMC slot; give that device")
        # the kernel never marks MMC block devices removable: there the card type tells
        if device.transport == "mmc" and device.mmc_type != "SD":
            out.append(f"{device.path} is {device.mmc_type or 'MMC'} storage, not an SD "
                       "card: built-in eMMC looks like a card slot; give the SD card's device")
        elif device.transport != "mmc" and not device.removable:
            out.append(f"{device.path} is not removable media: an SD card in a reader "
                       "reports removable; check `lsblk -d -o NAME,RM,TRAN,MODEL`")
    if device.read_only and not reading:
        out.append(f"{device.path} is read-only: slide the card's lock switch to unlock "
                   "and insert it again")
    if device.size > max_size:
        out.append(f"{device.path} is {human(device.size)}, larger than the limit of "
                   f"{human(max_size)}: no SD card is that big, so this is likely another "
                   "disk; if it really is the card, raise the limit with --max-size")
    if device.size == 0:
        out.append(f"{device.path} has size 0: no medium in the reader; insert the card")
    elif image_size is not None and image_size > device.size:
        out.append(f"the image is {human(image_size)}, larger than {device.path} "
                   f"({human(device.size)}): use a bigger card")
    return out


def parse_size(text: str) -> int:
    """`256GB`, `64G`, `512MB`, `1000000000` -> bytes (decimal units, as cards are sold)."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([TGM]?)B?", str(text).strip().upper())
    if found is None or float(found.group(1)) <= 0:
        raise ValueError(f"--max-size {text!r} is not a size; write e.g. 256GB or 64G")
    scale = {"T": 10**12, "G": 10**9, "M": 10**6, "": 1}[found.group(2)]
    return int(float(found.group(1)) * scale)
