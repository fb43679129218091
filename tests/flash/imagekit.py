"""Build small but real board images (MBR, FAT boot, ext4 root) and loop devices for them.

Images are made with Debian's sfdisk, mkfs.vfat/mtools and mkfs.ext4 -d, exactly laid out
as Raspberry Pi OS and Ubuntu images are (boot at 4 MiB, root after it). Loop devices are
created with `losetup --find --show` and detached by the path we got, always.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MiB = 1024 * 1024
BOOT_START = 4 * MiB
BOOT_SIZE = 32 * MiB
RASPIOS_CMDLINE = ("console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 "
                   "rootfstype=ext4 fsck.repair=yes rootwait quiet "
                   "init=/usr/lib/raspberrypi-sys-mods/firstboot\n")
UBUNTU_CMDLINE = ("console=serial0,115200 dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable "
                  "rootfstype=ext4 rootwait fixrtc quiet splash\n")
OS_RELEASE = {
    "raspios": 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nNAME="Raspbian GNU/Linux"\n'
               'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=raspbian\nID_LIKE=debian\n',
    "ubuntu": 'PRETTY_NAME="Ubuntu 22.04.3 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
              'ID=ubuntu\nID_LIKE=debian\n',
    "bullseye": 'PRETTY_NAME="Raspbian GNU/Linux 11 (bullseye)"\nVERSION_ID="11"\n'
                'ID=raspbian\n',
}
BOOT_FILES = {
    "raspios": {"cmdline.txt": RASPIOS_CMDLINE, "config.txt": "arm_64bit=1\n",
                "issue.txt": "Raspberry Pi reference 2023-12-05\n"},
    "ubuntu": {"cmdline.txt": UBUNTU_CMDLINE, "config.txt": "[all]\nkernel=vmlinuz\n",
               "user-data": "#cloud-config\nchpasswd: {expire: true}\n",
               "meta-data": "instance-id: ubuntu\n", "network-config": "version: 2\n"},
}
BOOT_FILES["bullseye"] = BOOT_FILES["raspios"]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True, **kw)


def make_root_tree(root: Path, kind: str, payload: int = 2 * MiB) -> None:
    """A small root filesystem tree with a board's identity files."""
    for folder in ("etc/ssh", "var/lib/dbus", "home/pi", "usr/lib", "opt/data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(OS_RELEASE[kind])
    (root / "etc/hostname").write_text("raspberrypi\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/dbus/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    for key in ("ssh_host_ed25519_key", "ssh_host_rsa_key"):
        (root / "etc/ssh" / key).write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
        (root / "etc/ssh" / f"{key}.pub").write_text("ssh-ed25519 AAAAC3Nz host\n")
    (root / "etc/ssh/sshd_config").write_text("PermitRootLogin no\n")
    (root / "opt/data/payload.bin").write_bytes(os.urandom(payload))


def build_image(path: Path, kind: str = "raspios", size: int = 96 * MiB,
                payload: int = 2 * MiB) -> Path:
    """A board image at `path`: MBR, FAT boot partition, ext4 root with os-release."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    boot_sectors = BOOT_SIZE // 512
    root_start = (BOOT_START + BOOT_SIZE) // 512
    table = (f"label: dos\nlabel-id: 0x4e639091\nstart={BOOT_START // 512}, "
             f"size={boot_sectors}, type=c\nstart={root_start}, type=83\n")
    run("sfdisk", "-q", str(path), input=table.encode())
    run("mkfs.vfat", "-n", "bootfs", "--offset", str(BOOT_START // 512), str(path),
        str(BOOT_SIZE // 1024))
    tree = path.with_suffix(".tree")
    run("rm", "-rf", str(tree))
    make_root_tree(tree, kind, payload)
    root_bytes = size - BOOT_START - BOOT_SIZE
    run("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(tree), "-E",
        f"offset={BOOT_START + BOOT_SIZE}", str(path), f"{root_bytes // 1024}k")
    run("rm", "-rf", str(tree))
    image = f"{path}@@{BOOT_START}"
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    for name, text in BOOT_FILES[kind].items():
        src = path.with_name(f".{name}")
        src.write_text(text)
        run("mcopy", "-o", "-i", image, str(src), f"::/{name}", env=env)
        src.unlink()
    return path


@contextmanager
def loop_device(backing: Path, partscan: bool = False) -> Iterator[str]:
    """A loop device over `backing`, detached afterwards whatever happens."""
    args = ["losetup", "--find", "--show"] + (["--partscan"] if partscan else []) + [str(backing)]
    device = run(*args).stdout.decode().strip()
    try:
        yield device
    finally:
        subprocess.run(["umount", "-q", *[f"{device}p{n}" for n in (1, 2)]],
                       capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)


def fat_read(path: str, name: str, offset: int = BOOT_START) -> str | None:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    out = subprocess.run(["mcopy", "-n", "-i", f"{path}@@{offset}", f"::/{name}", "-"],
                         capture_output=True, env=env)
    return out.stdout.decode() if out.returncode == 0 else None


def ext4_read(path: str, name: str, offset: int) -> str | None:
    out = subprocess.run(["debugfs", "-R", f"cat {name}", f"{path}?offset={offset}"],
                         capture_output=True)
    if out.returncode != 0 or b"not found" in out.stderr:
        return None
    return out.stdout.decode()
