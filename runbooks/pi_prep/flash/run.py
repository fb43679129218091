"""`inv pi-prep.flash`: refuse the wrong disk, confirm, write, verify, prepare the boot.

The order never changes: facts and refusals first (nothing written), then the operator's
typed confirmation, then the facts again (the card must be the one confirmed), then write,
read back and compare, then the boot partition. `allowed_loops` is for tests only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbooks.pi_prep.flash.device import Device, describe, human, read_device
from runbooks.pi_prep.flash.image import inspect_image, open_image
from runbooks.pi_prep.flash.refusals import DEFAULT_MAX_SIZE, Refused, refusals
from runbooks.pi_prep.flash.writer import WriteError, read_back, sync_device, write_stream

if TYPE_CHECKING:  # the boot preparation (YAML, templates) is imported only when used
    from runbooks.pi_prep.flash.bootprep import Board


class NotPrepared(RuntimeError):
    """The card is written and verified, but its boot partition could not be prepared."""


class NotConfirmed(Exception):
    """The operator did not type the device's name."""


@dataclass(frozen=True)
class FlashResult:
    device: str
    size: int
    digest: str  # XXH3-128 of the image as written and as read back
    flavour: str | None
    files: tuple[str, ...]
    seconds: float


def checked_device(path: str, image_size: int | None, max_size: int,
                   allowed_loops: Collection[str]) -> Device:
    """The device's facts, or Refused with every reason not to write it."""
    device = read_device(path)
    reasons = refusals(device, image_size, max_size, allowed_loops)
    if reasons:
        raise Refused(device, reasons)
    return device


def confirm(device: Device, ask: Callable[[str], str]) -> None:
    """The operator types the device's name (sdb or /dev/sdb); anything else stops."""
    answer = ask(f"Everything on {device.path} will be destroyed. Type its name "
                 f"({device.name}) to go on: ").strip()
    if answer not in (device.name, device.path, f"/dev/{device.name}"):
        raise NotConfirmed(f"you typed {answer!r}, not {device.name!r}: nothing was written")


def flash(image: str, device_path: str, board: Board | None, *, yes: bool = False,
          check: bool = False, max_size: int = DEFAULT_MAX_SIZE,
          ask: Callable[[str], str] = input, out: Callable[[str], None] = print,
          show_progress: bool = True, allowed_loops: Collection[str] = ()) -> FlashResult | None:
    """Flash `image` to `device_path` and prepare it for `board` (None: no preparation).
    Returns None in check mode (nothing written)."""
    info = inspect_image(image)
    size_text = human(info.size) if info.size is not None else "size not recorded"
    out(f"image: {info.path} ({info.kind}, {size_text})")
    try:
        device = checked_device(device_path, info.size, max_size, allowed_loops)
    except Refused as refused:
        out(describe(refused.device))
        raise
    out(describe(device))
    if board is not None:
        vlan = board.vlan
        out(f"board: {board.hostname}, user {board.user} with key {board.public_key[:24]}..."
            f"{', password hash' if board.password_hash else ', no password (key only)'}"
            f"{f', {vlan.name} {vlan.address} via {vlan.gateway}' if vlan else ''}")
    if check:
        out(f"check: would write {size_text} to {device.path}, read it back and compare "
            "hashes" + (", then prepare the boot partition" if board else "")
            + "; nothing written")
        return None
    if not yes:
        confirm(device, ask)
    again = checked_device(device_path, info.size, max_size, allowed_loops)
    if (again.name, again.size, again.model) != (device.name, device.size, device.model):
        raise Refused(again, [f"{device_path} changed since it was confirmed (was "
                              f"{device.model}, {human(device.size)}); run again"])
    started = time.monotonic()
    with open_image(info) as source:
        written = write_stream(device_path, source, info.size, show_progress)
    if info.size is not None and written.size != info.size:
        raise WriteError(f"wrote {written.size} bytes but the image says {info.size}: the "
                         "image is damaged; download it again")
    got = read_back(device_path, written.size, show_progress)
    if got != written.digest:
        raise WriteError(f"read-back of {device_path} differs from the image (XXH3-128 "
                         f"{got} != {written.digest}): the card is failing or fake; use "
                         "another card")
    out(f"written and verified: {human(written.size)}, read back from the device, "
        f"XXH3-128 {written.digest}")
    kind: str | None = None
    files: list[str] = []
    if board is not None:
        from runbooks.pi_prep.flash.bootprep import PrepError
        from runbooks.pi_prep.flash.prepare import prepare_boot

        try:
            kind, files = prepare_boot(device_path, board)
        except PrepError as exc:
            raise NotPrepared(f"{device_path} is written and verified, but its boot partition "
                            f"is not prepared: {exc} (or write it with --no-prepare)") from None
        finally:
            sync_device(device_path)
        out(f"boot partition prepared ({kind}): {', '.join(files)}")
    return FlashResult(device_path, written.size, written.digest, kind, tuple(files),
                       time.monotonic() - started)
