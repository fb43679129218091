"""Lab lifecycle on a small throw-away lab (its own site and ranges, beside the session lab):
up twice, recovery after a killed up, status --json, shell --command, seeds, LabNotRunning
when down, and a teardown that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.lab.access import LabNotRunning, lab_access
from tests.support.waiting import wait_until

from .conftest import REPO, lab_skip_reason

pytestmark = pytest.mark.lab

SMALL = """\
site: lt
defaults: {user: root, port: 22}
network:
  vlan: {id: 200}
  subnet: 192.168.20.0/24
  gateway: 192.168.20.1
  dhcp: {range: [192.168.20.100, 192.168.20.200], dns: [192.168.20.1],
         default_lease: 600, max_lease: 7200}
lab:
  management: 10.231.8.0/24
  upstream: 10.231.9.0/24
  clients: []
hosts:
  s1:
    address: 10.231.8.2
    roles: [pi]
    board: raspberrypi
    vlan: {parent: eth0, address: 192.168.20.3/24}
    lab: {kind: systemd, boot: firmware, seed: [dphys-swapfile, fstab-swap]}
  c1:
    address: 10.231.8.3
    roles: [pi]
    vlan: {parent: eth0, address: 192.168.20.4/24}
    lab: {kind: chroot}
"""


def inv(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``inv`` in the repository like a user would."""
    done = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, text=True,
                          capture_output=True, check=False, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"inv {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def leftovers() -> dict[str, list[str]]:
    """Everything of the small lab (site lt) that exists on the machine right now."""
    procs = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if (b"grlt-" in cmdline or b"/lab/lt/" in cmdline or b"/lab/lt " in cmdline) \
                and ") Z" not in stat:
            procs.append(cmdline.decode(errors="replace")[:80])
    netns = [n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
             if n.startswith("grlt")]
    links = [p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("grlt")]
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if "/lab/lt/" in line.split()[4]]
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob("*/greenroom-lab/grlt-*")]
    return {k: v for k, v in {"processes": procs, "netns": netns, "links": links,
                              "mounts": mounts, "cgroups": cgroups}.items() if v}




@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Path of the small lab's inventory; the lab is taken down afterwards."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    path = tmp_path_factory.mktemp("small-lab") / "small.yaml"
    path.write_text(SMALL)
    yield str(path)
    inv("lab.down", "-i", str(path), check=False)


def load(path: str):
    from runbooks.core.inventory import load_inventory

    return load_inventory(path)


def sshd_count(netns: str) -> int:
    """How many sshd listeners live in that namespace."""
    inode = os.stat(f"/run/netns/{netns}").st_ino
    count = 0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}/ns/net").st_ino == inode and \
                    b"[listener]" in Path(f"/proc/{entry}/cmdline").read_bytes():
                count += 1
        except OSError:
            continue
    return count


def test_lab_access_raises_lab_not_running_when_down(small):
    inv("lab.down", "-i", small)
    with pytest.raises(LabNotRunning, match="the virtual lab is not running: run `inv lab.up`"):
        lab_access(load(small))
    shell = inv("lab.shell", "s1", "-i", small, "--command", "true", check=False)
    assert shell.returncode != 0 and "lab.up" in shell.stderr


def test_up_twice_duplicates_nothing(small):
    inv("lab.up", "-i", small)
    first = json.loads(inv("lab.status", "-i", small, "--json").stdout)
    inv("lab.up", "-i", small)
    second = json.loads(inv("lab.status", "-i", small, "--json").stdout)
    assert first == second
    assert all(h["ssh"] and h["running"] for h in second["hosts"])
    assert sshd_count("grlt-s1") == 1 and sshd_count("grlt-c1") == 1
    links = [p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("grlt")]
    assert sorted(links) == ["grlt-mgmt", "grltm0", "grltm1"]
    access = lab_access(load(small))
    assert Path(access.key_filename).exists() and access.user == "root"


def test_status_json_lists_hosts_addresses_kinds_and_ssh(small):
    inv("lab.up", "-i", small)
    rows = {h["name"]: h for h in json.loads(inv("lab.status", "-i", small,
                                                 "--json").stdout)["hosts"]}
    assert rows["s1"]["kind"] == "systemd" and rows["c1"]["kind"] == "chroot"
    assert rows["s1"]["address"] == "10.231.8.2" and rows["c1"]["address"] == "10.231.8.3"
    assert rows["s1"]["banner"].startswith("SSH-2.0-OpenSSH")


def test_shell_command_returns_the_commands_exit_status(small):
    inv("lab.up", "-i", small)
    assert inv("lab.shell", "c1", "-i", small, "--command", "hostname").stdout.strip() == "c1"
    assert inv("lab.shell", "s1", "-i", small, "--command", "exit 7",
               check=False).returncode == 7


def test_chroot_guest_is_plain_sshd_without_systemd(small):
    inv("lab.up", "-i", small)
    out = inv("lab.shell", "c1", "-i", small, "--command",
              "cat /proc/1/comm; command -v systemctl >/dev/null && systemctl is-system-running"
              " || echo no-systemd", check=False).stdout
    assert out.split()[0] == "sshd" and "running" not in out


def test_seeds_dphys_swapfile_and_fstab_swap(small):
    inv("lab.up", "-i", small)
    out = inv("lab.shell", "s1", "-i", small, "--command",
              "systemctl is-system-running --wait >/dev/null; "
              "systemctl is-enabled dphys-swapfile; systemctl is-active dphys-swapfile; "
              "grep CONF_SWAPSIZE /etc/dphys-swapfile; grep -c '^/swapfile none swap sw 0 0' "
              "/etc/fstab; swapon --show --noheadings | wc -l").stdout.split()
    assert out == ["enabled", "active", "CONF_SWAPSIZE=512", "1", "0"]


def test_up_recovers_after_a_killed_run(small):
    inv("lab.down", "-i", small)
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "lab.up", "-i", small], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(lambda: os.path.exists("/run/netns/grlt-c1"), timeout=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    inv("lab.up", "-i", small)
    rows = json.loads(inv("lab.status", "-i", small, "--json").stdout)["hosts"]
    assert all(h["ssh"] for h in rows), rows
    assert sshd_count("grlt-s1") == 1 and sshd_count("grlt-c1") == 1


def test_up_recovers_when_a_guest_was_killed(small):
    inv("lab.up", "-i", small)
    from runbooks.lab.guest import init_pid
    from runbooks.lab.plan import make_plan

    plan = make_plan(load(small))
    os.kill(init_pid(plan.guest("c1")), signal.SIGKILL)
    assert wait_until(lambda: init_pid(plan.guest("c1")) is None)
    inv("lab.up", "-i", small)
    assert inv("lab.shell", "c1", "-i", small, "--command", "true").returncode == 0


def test_down_leaves_nothing_behind(small):
    inv("lab.up", "-i", small)
    assert leftovers()  # the probe sees a running lab
    inv("lab.down", "-i", small)
    assert wait_until(lambda: not leftovers(), timeout=10), leftovers()
    with pytest.raises(LabNotRunning):
        lab_access(load(small))
