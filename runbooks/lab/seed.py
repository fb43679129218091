"""Seed a fresh guest overlay: identity, SSH, apt proxy, board boot files, seeds.

Runs once per fresh upper dir (first start, or after ``reset``); a marker file
(/var/lib/greenroom-lab/seeded) keeps later starts from overwriting what runbooks changed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from runbooks.lab.frrcaps import seed_frr_caps
from runbooks.lab.plan import GuestPlan, LabPlan

MARKER = "var/lib/greenroom-lab/seeded"

PI_CONFIG_TXT = """\
# For more options and information see the Raspberry Pi config.txt documentation
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Automatically load initramfs files, if found
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2

# Don't have the firmware create an initial video= setting in cmdline.txt.
# Use the kernel's default instead.
disable_fw_kms_setup=1

# Run in 64-bit mode
arm_64bit=1

# Disable compensation for displays with overscan
disable_overscan=1

# Run as fast as firmware / board allows
arm_boost=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
otg_mode=1

[all]
"""

GRUB_DEFAULT = """\
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
"""

DPHYS_CONF = """\
# /etc/dphys-swapfile - user settings for dphys-swapfile package
# set size to absolute value, leaving empty (default) then uses computed value
CONF_SWAPSIZE=512
"""

# a test double: the real dphys-swapfile would create and enable swap on the machine
DPHYS_SCRIPT = """\
#!/bin/sh
# greenroom lab DOUBLE of dphys-swapfile: records each call, never touches real swap.
echo "dphys-swapfile $*" >> /var/log/dphys-swapfile.calls
case "$1" in
  setup) touch /var/swap ;;
  uninstall) rm -f /var/swap ;;
esac
exit 0
"""

DPHYS_UNIT = """\
[Unit]
Description=dphys-swapfile - set up, mount/unmount, and delete a swap file (lab double)
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/dphys-swapfile setup
ExecStart=/sbin/dphys-swapfile swapon
ExecStop=/sbin/dphys-swapfile swapoff

[Install]
WantedBy=multi-user.target
"""


def _write(root: Path, rel: str, content: str | bytes, mode: int = 0o644) -> Path:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    os.chmod(path, mode)
    return path


def cmdline_txt(guest: GuestPlan) -> str:
    """A Raspberry Pi OS style kernel command line with a per-host PARTUUID."""
    partuuid = hashlib.sha1(guest.name.encode()).hexdigest()[:8]
    return (f"console=serial0,115200 console=tty1 root=PARTUUID={partuuid}-02 "
            "rootfstype=ext4 fsck.repair=yes rootwait\n")


def seed_boot(root: Path, guest: GuestPlan) -> None:
    """Boot files by ``lab.boot``: firmware, legacy (/boot) or grub."""
    if guest.boot == "firmware":
        _write(root, "boot/firmware/cmdline.txt", cmdline_txt(guest))
        _write(root, "boot/firmware/config.txt", PI_CONFIG_TXT)
    elif guest.boot == "legacy":
        _write(root, "boot/cmdline.txt", cmdline_txt(guest))
        _write(root, "boot/config.txt", PI_CONFIG_TXT)
    elif guest.boot == "grub":
        _write(root, "etc/default/grub", GRUB_DEFAULT)


def seed_dphys_swapfile(root: Path) -> None:
    """An installed-looking dphys-swapfile (a double) with its service enabled."""
    _write(root, "etc/dphys-swapfile", DPHYS_CONF)
    _write(root, "sbin/dphys-swapfile", DPHYS_SCRIPT, 0o755)
    _write(root, "lib/systemd/system/dphys-swapfile.service", DPHYS_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "dphys-swapfile.service"
    if not link.is_symlink():
        link.symlink_to("/lib/systemd/system/dphys-swapfile.service")
    md5 = hashlib.md5(DPHYS_CONF.encode()).hexdigest()
    status = root / "var/lib/dpkg/status"
    status.write_text(status.read_text().rstrip("\n") + "\n\n" + (
        "Package: dphys-swapfile\nStatus: install ok installed\nPriority: optional\n"
        "Section: admin\nInstalled-Size: 20\n"
        "Maintainer: greenroom lab double <lab@greenroom.invalid>\nArchitecture: all\n"
        "Version: 20100506-7.1+rpt3\n"
        f"Conffiles:\n /etc/dphys-swapfile {md5}\n"
        "Description: greenroom lab double of dphys-swapfile (never touches real swap)\n"))
    _write(root, "var/lib/dpkg/info/dphys-swapfile.list",
           "/.\n/etc\n/etc/dphys-swapfile\n/sbin\n/sbin/dphys-swapfile\n/lib\n"
           "/lib/systemd\n/lib/systemd/system\n/lib/systemd/system/dphys-swapfile.service\n")


# Every systemd guest shares the machine's fs.inotify.max_user_instances (128 for root);
# these units each hold an inotify instance and are not needed over SSH.
MASKED_UNITS = ("systemd-logind.service", "console-getty.service", "container-getty@.service",
                "getty@.service")


def mask_inotify_hungry_units(root: Path) -> None:
    """Mask units a headless guest does not need (saves the machine's inotify instances)."""
    folder = root / "etc/systemd/system"
    folder.mkdir(parents=True, exist_ok=True)
    for unit in MASKED_UNITS:
        link = folder / unit
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")


def seed_guest(root: Path, plan: LabPlan, guest: GuestPlan, lab_pubkey: str,
               hostkey: Path) -> None:
    """Write everything a fresh guest needs into its mounted overlay ``root``."""
    _write(root, "etc/hostname", guest.name + "\n")
    _write(root, "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{guest.name}\n"
                              "::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root, "etc/machine-id", hashlib.md5(guest.netns.encode()).hexdigest() + "\n")
    proxy = f"http://{plan.bridge_address.ip}:{plan.proxy_port}"
    _write(root, "etc/apt/apt.conf.d/01greenroom-lab-proxy",
           f'Acquire::http::Proxy "{proxy}";\nAcquire::https::Proxy "{proxy}";\n')
    if guest.kind != "client":
        (root / "root/.ssh").mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(root, "root/.ssh/authorized_keys", lab_pubkey, 0o600)
        _write(root, "etc/ssh/ssh_host_ed25519_key", hostkey.read_bytes(), 0o600)
        _write(root, "etc/ssh/ssh_host_ed25519_key.pub",
               Path(f"{hostkey}.pub").read_bytes())
        _write(root, "etc/ssh/sshd_config.d/greenroom-lab.conf",
               "# virtual lab: one host key per host, no DNS lookups\n"
               "HostKey /etc/ssh/ssh_host_ed25519_key\nUseDNS no\n"
               "PermitRootLogin prohibit-password\n")
    seed_boot(root, guest)
    mask_inotify_hungry_units(root)
    if "dphys-swapfile" in guest.seed:
        seed_dphys_swapfile(root)
    if "xen" in guest.seed:  # doubles of xl, the hypervisor's boot and update-grub
        from runbooks.lab.doubles.xl import install

        install(root)
    if "microk8s" in guest.seed:  # doubles of snap (the microk8s snap) and microk8s
        from runbooks.lab.doubles.microk8s import install as install_microk8s

        install_microk8s(root)
    if "fstab-swap" in guest.seed:
        fstab = root / "etc/fstab"
        text = fstab.read_text() if fstab.exists() else ""
        fstab.write_text(text.rstrip("\n") + "\n/swapfile none swap sw 0 0\n")
    if "frr-caps" in guest.seed:
        seed_frr_caps(root)
    _write(root, MARKER, "seeded by greenroom lab\n")


def write_firmware_dir(folder: Path, model: str) -> None:
    """The directory bound over /sys/firmware: devicetree/base/model (NUL-terminated)."""
    base = folder / "devicetree/base"
    base.mkdir(parents=True, exist_ok=True)
    (base / "model").write_bytes(model.encode() + b"\0")
    compatible = b"raspberrypi,4-model-b\0brcm,bcm2711\0" if "Raspberry" in model else \
        b"libretech,aml-s905x-cc\0amlogic,s905x\0"
    (base / "compatible").write_bytes(compatible)
