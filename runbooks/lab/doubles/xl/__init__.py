"""The lab's Xen doubles (`xl`, the hypervisor's boot, `update-grub`): see xl.py."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIB = "usr/local/lib/greenroom-double/xl.py"
UNIT = """\
[Unit]
Description=greenroom lab DOUBLE: boot the hypervisor grub.cfg names
After=local-fs.target
Before=network-pre.target ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/python3 /usr/local/lib/greenroom-double/xl.py boot

[Install]
WantedBy=multi-user.target
"""


def install(root: Path) -> None:
    """Put the doubles into a guest's root: xl and update-grub in /usr/local/sbin (ahead of
    the packages' own in PATH) and the boot unit, enabled."""
    lib = root / LIB
    lib.parent.mkdir(parents=True, exist_ok=True)
    lib.write_text((HERE / "xl.py").read_text())
    sbin = root / "usr/local/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    for name, role in (("xl", "xl"), ("update-grub", "update-grub")):
        path = sbin / name
        path.write_text(f'#!/bin/sh\n# greenroom lab DOUBLE\nexec /usr/bin/python3 /{LIB} '
                        f'{role} "$@"\n')
        os.chmod(path, 0o755)
    unit = root / "etc/systemd/system/greenroom-double-xen-boot.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "greenroom-double-xen-boot.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/greenroom-double-xen-boot.service")
