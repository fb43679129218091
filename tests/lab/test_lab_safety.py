"""Safety: a process inside a lab host (reached over SSH, as a runbook would be) cannot
change the machine's kernel settings, swap, processes or /etc; lab addresses live only on
interfaces the lab created."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("fresh_lab")]

CAP_SYS_ADMIN = 21
CAP_SYS_MODULE = 16
CAP_MKNOD = 27
CAP_SYS_RAWIO = 17
CAP_SYS_TIME = 25


def run(lab, host: str, cmd: str):
    """Run over real SSH (the runbooks' path) and return the Fabric result."""
    with lab.connection(host) as conn:
        return conn.run(cmd, hide=True, warn=True)


def _etc_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path("/etc").glob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                digest.update(path.name.encode() + path.read_bytes())
            except OSError:
                continue
    return digest.hexdigest()


@pytest.mark.parametrize("host", ["rp0", "dell"])
def test_guest_cannot_change_the_machines_vm_swappiness(lab, host):
    before = Path("/proc/sys/vm/swappiness").read_text()
    wanted = "7" if before.strip() != "7" else "8"
    result = run(lab, host, f"sysctl -w vm.swappiness={wanted}")
    assert result.exited != 0
    assert Path("/proc/sys/vm/swappiness").read_text() == before


def test_guest_can_change_its_own_network_sysctls_only(lab):
    """The guest sets the opposite of the machine's value, so a leak would show whatever
    the machine's own setting is."""
    before = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    other = "0" if before == "1" else "1"
    guest_before = run(lab, "dell", "sysctl -n net.ipv4.ip_forward").stdout.strip()
    result = run(lab, "dell", f"sysctl -w net.ipv4.ip_forward={other} && "
                              "sysctl -n net.ipv4.ip_forward")
    try:
        assert result.exited == 0 and result.stdout.strip().endswith(other)
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == before
    finally:
        run(lab, "dell", f"sysctl -w net.ipv4.ip_forward={guest_before or 0}")


@pytest.mark.parametrize("host", ["rp0", "dell"])
def test_guest_lacks_machine_wide_capabilities(lab, host):
    status = run(lab, host, "grep CapEff /proc/self/status").stdout
    caps = int(status.split()[1], 16)
    for bit in (CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_MKNOD, CAP_SYS_RAWIO, CAP_SYS_TIME):
        assert not caps & (1 << bit), f"{host} holds capability bit {bit}"
    printed = run(lab, host, "capsh --print").stdout
    bounding = next(line for line in printed.splitlines() if line.startswith("Bounding set"))
    assert "cap_sys_admin" not in bounding and "cap_sys_module" not in bounding


@pytest.mark.parametrize("host", ["rp0", "dell"])
def test_guest_cannot_turn_off_swap_or_mount(lab, host):
    swapoff = run(lab, host, "swapoff /etc/hostname")
    assert swapoff.exited != 0 and "superuser" in (swapoff.stderr + swapoff.stdout).lower()
    mount = run(lab, host, "mount -t tmpfs lab-probe /mnt")
    assert mount.exited != 0
    assert "lab-probe" not in Path("/proc/mounts").read_text()


def test_guest_cannot_see_the_machines_processes(lab):
    result = run(lab, "rp0", "ps -eo comm=")
    comms = result.stdout.split()
    assert comms and "pytest" not in comms and not any(c.startswith("python") for c in comms)
    assert "systemd-nspawn" not in comms and len(comms) < 40
    with open(f"/proc/{os.getpid()}/comm") as own:
        assert own.read().strip() not in comms
    assert run(lab, "rp0", "cat /proc/1/comm").stdout.strip() == "systemd"


def test_runbook_like_writes_leave_the_machines_etc_untouched(lab):
    before = _etc_digest()
    probe = f"/etc/greenroom-probe-{uuid.uuid4().hex}"
    result = run(lab, "rp0", f"echo probe > {probe} && echo '10.9.9.9 probe' >> /etc/hosts "
                             "&& printf 'net.ipv4.ip_forward=1\\n' > /etc/sysctl.d/99-p.conf")
    assert result.exited == 0
    assert run(lab, "rp0", f"cat {probe}").stdout.strip() == "probe"
    assert not Path(probe).exists()
    assert not Path("/etc/sysctl.d/99-p.conf").exists()
    assert _etc_digest() == before


def test_lab_addresses_only_on_interfaces_the_lab_created(lab):
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True,
                         check=True).stdout
    plan = lab.plan
    lab_nets = [plan.bridge_address.network, plan.upstream_gateway.network,
                lab.inventory.network.subnet]
    from ipaddress import ip_address
    for link in json.loads(out):
        for addr in link.get("addr_info", []):
            if any(ip_address(addr["local"]) in net for net in lab_nets):
                assert link["ifname"] == plan.bridge, link["ifname"]
                assert addr["local"] == str(plan.bridge_address.ip)
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    assert forward == lab.machine_ip_forward


def test_guest_cannot_write_the_lower_rootfs(lab):
    lower = Path(json.loads((lab.state_dir / "lab.json").read_text())["lower"])
    name = f"lower-probe-{uuid.uuid4().hex}"
    assert run(lab, "rp0", f"touch /root/{name}").exited == 0
    assert not (lower / "root" / name).exists()
