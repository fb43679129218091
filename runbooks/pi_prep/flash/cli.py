"""The bodies of `inv pi-prep.flash` and `inv pi-prep.capture`: options in, clear errors out.

Exit codes: 2 for a refusal or bad input (nothing written), 1 when writing, verifying or
capturing failed. No option here reaches the test-only loop-device allow list.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

from invoke import Context, Exit

from runbooks.core.cli import load_inventory_or_exit

KEY_NAMES = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
PASSWORD_ENV = "GREENROOM_FLASH_PASSWORD"

FLASH_HELP = {
    "host": "The inventory host the card is for (its user, hostname and VLAN address).",
    "image": "Image file: .img, .img.xz, .img.zst, or a .zip holding one .img.",
    "device": "The card's whole disk, e.g. /dev/sdb or /dev/mmcblk0 (see `lsblk -d`).",
    "inventory": "Inventory file (default from invoke.yaml).",
    "key": "Public key to log in with (default ~/.ssh/id_ed25519.pub, id_ecdsa.pub or "
           "id_rsa.pub).",
    "password": f"Also give the user a password: asked twice (or read from ${PASSWORD_ENV}); "
                "only its SHA-512 crypt hash goes on the card.",
    "yes": "Do not ask to type the device's name (for scripts; the refusals still apply).",
    "check": "Show the image, the device (model, size, partitions) and the board settings, "
             "refuse what would be refused, write nothing.",
    "max_size": "Refuse devices larger than this (default 256GB): no SD card is bigger.",
    "no_prepare": "Only write and verify the image; leave the boot partition as it is.",
}
CAPTURE_HELP = {
    "device": "The prepared card's whole disk to read, e.g. /dev/sdb.",
    "image": "Output file: .img.xz (default choice), .img.zst or .img (uncompressed).",
    "max_size": "Refuse devices larger than this (default 256GB).",
    "no_shrink": "Keep the root filesystem at its full size (default: shrunk to what it uses).",
}


def _public_key(path: str | None) -> str:
    from runbooks.pi_prep.flash.bootprep import check_public_key

    if path is None:
        home = Path.home() / ".ssh"
        found = next((home / n for n in KEY_NAMES if (home / n).is_file()), None)
        if found is None:
            raise Exit(f"no public key in {home} ({', '.join(KEY_NAMES)}); make one with "
                       "`ssh-keygen -t ed25519` or give --key FILE.pub", code=2)
        path = str(found)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise Exit(f"--key {path}: {exc.strerror}; give your public key file", code=2) \
            from None
    return check_public_key(text, path)


def password_hash() -> str:
    """A SHA-512 crypt hash of a password asked twice (or from the environment); the clear
    password goes to openssl on stdin only, never argv, disk or screen."""
    secret = os.environ.get(PASSWORD_ENV)
    if secret is None:
        secret = getpass.getpass("Password for the board's user: ")
        if secret != getpass.getpass("Again: "):
            raise Exit("the passwords differ; nothing was written", code=2)
    if not secret:
        raise Exit("an empty password; leave out --password for key-only login", code=2)
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Exit("openssl is not installed (it hashes the password); install Debian's "
                   "openssl package", code=2)
    # openssl gets the password on stdin only: not in its environment either
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    out = subprocess.run([openssl, "passwd", "-6", "-stdin"], input=secret + "\n",
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise Exit("openssl could not hash the password", code=1)
    return out.stdout.strip()


def run_flash(c: Context, host: str, image: str, device: str, inventory: str | None,
              key: str | None, password: bool, yes: bool, check: bool, max_size: str,
              no_prepare: bool) -> None:
    from runbooks.pi_prep.flash import run
    from runbooks.pi_prep.flash.bootprep import PrepError, board_from_inventory
    from runbooks.pi_prep.flash.device import DeviceError
    from runbooks.pi_prep.flash.image import ImageError
    from runbooks.pi_prep.flash.refusals import Refused, parse_size

    if not host or not image or not device:
        raise Exit("give --host, --image and --device, e.g. inv pi-prep.flash --host rp0 "
                   "--image raspios.img.xz --device /dev/sdb", code=2)
    try:
        limit = parse_size(max_size)
        board = None
        if not no_prepare:
            inv = load_inventory_or_exit(c, inventory)
            try:
                target = inv.host(host)
            except Exception as exc:  # noqa: BLE001 - InventoryError names the known hosts
                raise Exit(str(exc), code=2) from None
            board = board_from_inventory(inv, target, _public_key(key),
                                         password_hash() if password and not check else None)
        run.flash(image, device, board, yes=yes, check=check, max_size=limit,
                  show_progress=sys.stderr.isatty())
    except Refused as exc:
        raise Exit(str(exc), code=2) from None
    except run.NotConfirmed as exc:
        raise Exit(str(exc), code=2) from None
    except (DeviceError, ImageError, PrepError, ValueError) as exc:
        raise Exit(f"pi-prep.flash: {exc}", code=2) from None
    except (OSError, RuntimeError) as exc:
        raise Exit(f"pi-prep.flash failed: {exc}", code=1) from None


def run_capture(c: Context, device: str, image: str, max_size: str, no_shrink: bool) -> None:
    from runbooks.pi_prep.flash import capture
    from runbooks.pi_prep.flash.device import DeviceError
    from runbooks.pi_prep.flash.refusals import Refused, parse_size

    if not device or not image:
        raise Exit("give --device and --image, e.g. inv pi-prep.capture --device /dev/sdb "
                   "--image rp-golden.img.xz", code=2)
    try:
        capture.capture(device, image, max_size=parse_size(max_size), shrink=not no_shrink,
                        show_progress=sys.stderr.isatty())
    except Refused as exc:
        raise Exit(str(exc).replace("refusing to write", "refusing to read"), code=2) from None
    except (DeviceError, capture.CaptureError, ValueError) as exc:
        raise Exit(f"pi-prep.capture: {exc}", code=2) from None
    except (OSError, RuntimeError) as exc:
        raise Exit(f"pi-prep.capture failed: {exc}", code=1) from None
