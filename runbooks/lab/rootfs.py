"""Build and cache the Debian bookworm root filesystem every lab guest overlays.

Built once with debootstrap (minbase + the packages below) from the mirror in this
machine's apt sources, then customised (guest apt sources, pre-seeded apt lists, no shared
SSH host keys, modules.builtin for the built-in kernel modules) and kept under
``~/.cache/greenroom/rootfs/``. Progress goes to stderr while it builds.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from runbooks.lab.aptsources import (
    debian_entries,
    debootstrap_mirror,
    machine_sources,
    render_deb822,
)

SUITE = "bookworm"
RECIPE = "3"
PACKAGES = ("openssh-server", "iproute2", "sudo", "python3", "systemd", "systemd-sysv", "dbus",
            "isc-dhcp-client", "iputils-ping", "curl", "ca-certificates", "procps", "kmod",
            "iptables", "nftables", "netbase", "less", "libcap2-bin", "ethtool")
# kernel modules built into this kernel (LAB-NOTES): listed so `modprobe NAME` exits 0
BUILTIN_MODULES = (
    "kernel/fs/overlayfs/overlay.ko", "kernel/net/bridge/bridge.ko",
    "kernel/net/bridge/br_netfilter.ko", "kernel/drivers/net/veth.ko",
    "kernel/drivers/net/macvlan.ko", "kernel/drivers/net/vxlan/vxlan.ko",
    "kernel/drivers/net/tun.ko", "kernel/net/netfilter/nf_tables.ko",
    "kernel/net/netfilter/nf_conntrack.ko", "kernel/net/netfilter/nf_nat.ko",
    "kernel/net/netfilter/nft_masq.ko", "kernel/net/netfilter/nft_nat.ko",
    "kernel/net/netfilter/nft_chain_nat.ko", "kernel/net/netfilter/x_tables.ko",
    "kernel/net/ipv4/netfilter/ip_tables.ko", "kernel/net/ipv4/netfilter/iptable_nat.ko",
    "kernel/net/ipv4/netfilter/iptable_filter.ko", "kernel/net/netfilter/xt_MASQUERADE.ko",
    "kernel/net/netfilter/xt_conntrack.ko", "kernel/net/ipv6/ipv6.ko",
)


class RootfsError(RuntimeError):
    """The root filesystem could not be built."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/greenroom`` (default ~/.cache/greenroom)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greenroom"


def recipe_key(mirror: str) -> str:
    """Cache key: suite, packages, mirror, kernel release and recipe version."""
    text = "|".join([RECIPE, SUITE, mirror, os.uname().release, *PACKAGES])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def rootfs_path() -> Path:
    """Where the cached rootfs for this machine's sources lives (may not exist yet)."""
    mirror = debootstrap_mirror(machine_sources(), SUITE)
    return cache_root() / "rootfs" / f"{SUITE}-{recipe_key(mirror)}"


def _progress(message: str) -> None:
    print(f"[lab rootfs] {message}", file=sys.stderr, flush=True)


def _run_debootstrap(target: Path, mirror: str) -> None:
    """Run debootstrap, echoing a compact progress line per phase."""
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
           str(target), mirror]
    _progress(f"debootstrap {SUITE} (minbase + {len(PACKAGES)} packages), about a minute")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail: list[str] = []
    counts: dict[str, int] = {}
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        if line.startswith("I: "):
            phase = line[3:].split(" ", 1)[0]
            counts[phase] = counts.get(phase, 0) + 1
            if counts[phase] == 1 or counts[phase] % 25 == 0:
                _progress(f"{time.monotonic() - started:5.1f}s {line[3:][:70]}"
                          + (f" (#{counts[phase]})" if counts[phase] > 1 else ""))
    if proc.wait() != 0:
        raise RootfsError("debootstrap failed:\n" + "\n".join(tail))


def _chroot(root: Path, *args: str) -> None:
    proc = subprocess.run(["chroot", str(root), *args], capture_output=True, text=True,
                          check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                            "DEBIAN_FRONTEND": "noninteractive"})
    if proc.returncode != 0:
        raise RootfsError(f"chroot {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")


def customise(root: Path) -> None:
    """Apply the lab's changes to a fresh debootstrap tree."""
    entries = debian_entries(machine_sources(), SUITE)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(render_deb822(entries))
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    _progress("pre-seeding apt lists (apt-get update)")
    _chroot(root, "apt-get", "update", "-q")
    _chroot(root, "apt-get", "clean")
    (root / "etc/resolv.conf").write_text("# the virtual lab has no DNS; apt uses the proxy\n")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    pam = root / "etc/pam.d/sshd"
    pam.write_text(pam.read_text().replace("session    required     pam_loginuid.so",
                                           "session    optional     pam_loginuid.so"))
    masks = root / "etc/systemd/system"
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer", "systemd-timesyncd.service",
                 "e2scrub_reap.service", "getty-static.service"):
        link = masks / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    release = os.uname().release
    moddir = root / "lib/modules" / release
    moddir.mkdir(parents=True, exist_ok=True)
    (moddir / "modules.builtin").write_text("\n".join(BUILTIN_MODULES) + "\n")
    (moddir / "modules.order").write_text("")
    _chroot(root, "depmod", release)
    (root / "etc/greenroom-lab-rootfs").write_text(f"recipe {RECIPE} suite {SUITE}\n")


def ensure_rootfs() -> Path:
    """Return the cached rootfs, building it first when missing (locked against races)."""
    if os.geteuid() != 0:
        raise RootfsError("building the lab rootfs needs root (debootstrap, chroot)")
    mirror = debootstrap_mirror(machine_sources(), SUITE)
    final = cache_root() / "rootfs" / f"{SUITE}-{recipe_key(mirror)}"
    if (final / "etc/greenroom-lab-rootfs").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "etc/greenroom-lab-rootfs").exists():
            return final
        if shutil.which("debootstrap") is None:
            raise RootfsError("debootstrap is missing: apt-get install debootstrap")
        tmp = final.with_name(final.name + ".building")
        shutil.rmtree(tmp, ignore_errors=True)
        started = time.monotonic()
        _run_debootstrap(tmp, mirror)
        customise(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        _progress(f"rootfs ready in {time.monotonic() - started:.0f}s: {final}")
    return final


if __name__ == "__main__":
    print(ensure_rootfs())
