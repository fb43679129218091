"""Lab seed ``frr-caps``: let Debian's FRR daemons start in a guest without CAP_SYS_ADMIN.

FRR's zebra and bgpd ask for CAP_SYS_ADMIN at start; lab guests never hold it (see
``guest.DROP_CAPS``). The seed builds ``frr_caps.c`` (a small preload that removes from FRR's
capability requests whatever lies outside the bounding set; it grants nothing) once per
machine with the machine's C compiler, copies it into the guest and loads it into
``frr.service`` with a systemd drop-in. The guest's bounding set stays as it is: FRR runs
with CAP_NET_ADMIN and CAP_NET_RAW, the router guest still cannot touch the machine.
Nothing of this exists on a real router.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from runbooks.lab.rootfs import cache_root

SOURCE = Path(__file__).with_name("frr_caps.c")
GUEST_LIBRARY = "usr/local/lib/greenroom-lab/frr-caps.so"
DROP_IN = "etc/systemd/system/frr.service.d/greenroom-lab-caps.conf"
DROP_IN_TEXT = (
    "# greenroom virtual lab only: FRR asks for CAP_SYS_ADMIN, which lab guests lack;\n"
    "# this preload drops it from FRR's request (it grants nothing). See runbooks/lab/frrcaps.py\n"
    "[Service]\n"
    f"Environment=LD_PRELOAD=/{GUEST_LIBRARY}\n"
)


class FrrCapsError(RuntimeError):
    """The preload could not be built."""


def build_library() -> Path:
    """The compiled preload, built once per machine (keyed by the source's hash)."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source).hexdigest()[:16]
    target = cache_root() / "lab" / f"frr-caps-{key}.so"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise FrrCapsError("lab seed frr-caps needs a C compiler on this machine to build "
                           f"{SOURCE.name}: apt-get install gcc libc6-dev")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial),
                           str(SOURCE)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise FrrCapsError(f"building {SOURCE.name} failed: {proc.stderr.strip()}")
    partial.replace(target)
    return target


def seed_frr_caps(root: Path) -> None:
    """Put the preload and frr.service's drop-in into a guest's overlay ``root``."""
    library = build_library()
    dest = root / GUEST_LIBRARY
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(library, dest)
    os.chmod(dest, 0o644)
    drop_in = root / DROP_IN
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(DROP_IN_TEXT)
