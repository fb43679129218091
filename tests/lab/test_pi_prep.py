"""pi-prep on the virtual lab: real boards of each boot kind over real SSH (hosts/lab.yaml).

rp0 boots from /boot/firmware/cmdline.txt, rp1 from /boot/cmdline.txt, lp0 with GRUB. The
lab kernel is the machine's own, so /proc/cmdline never shows the guests' arguments: the
post-reboot verification then warns (the memory cgroup is on) instead of failing.
"""

from __future__ import annotations

import io

import pytest

from runbooks.core.runner import run_runbook
from runbooks.lab.seed import seed_dphys_swapfile
from runbooks.pi_prep.plan import RUNBOOK

pytestmark = pytest.mark.lab

BOARDS = ("rp0", "rp1", "lp0")
CG = "cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1"
WATCHED = ("/boot/firmware/cmdline.txt /boot/cmdline.txt /etc/default/grub /etc/fstab "
           "/etc/containerd/config.toml /etc/sysctl.d/k8s.conf /etc/modules-load.d/k8s.conf")


def sh(lab, host: str, command: str) -> str:
    done = lab.exec(host, command)
    assert done.returncode == 0, f"{host}: {command}: {done.stderr}"
    return done.stdout


def snapshot(lab, host: str) -> str:
    """Checksums of every file pi-prep may touch, the package list and live settings."""
    return sh(lab, host, f"for f in {WATCHED}; do [ -e $f ] && sha256sum $f || echo no $f; "
                         "done; dpkg -l | sha256sum; sysctl -n net.ipv4.ip_forward; "
                         "ls /etc/containerd 2>&1 || true")


def run(lab, hosts, check=False, **options):
    out = io.StringIO()
    targets = [lab.inventory.hosts[h] for h in hosts]
    result = run_runbook(RUNBOOK, lab.inventory, targets, check=check, options=options,
                         out=out)
    return result, out.getvalue()


def boot_identity(lab, host: str) -> str:
    return sh(lab, host, "cat /proc/sys/kernel/random/boot_id; awk '{print $22}' /proc/1/stat")


def test_check_on_a_fresh_board_shows_diffs_and_changes_nothing(lab):
    lab.reset("rp0")
    before = snapshot(lab, "rp0")
    result, output = run(lab, ["rp0"], check=True)
    assert result.hosts["rp0"].status == "changed", output
    assert result.hosts["rp0"].changed >= 8
    assert "+console=serial0,115200 console=tty1" in output and CG in output  # cmdline diff
    assert "+net.ipv4.ip_forward = 1" in output and "would run handler: reboot" in output
    assert snapshot(lab, "rp0") == before


def test_prepares_every_boot_kind_reboots_and_second_run_changes_nothing(lab):
    for board in BOARDS:
        lab.reset(board)
    # rp0: misspelt and duplicated cgroup arguments already there
    sh(lab, "rp0", "f=/boot/firmware/cmdline.txt; read -r line < $f; printf '%s\\n' "
                   "\"cgroup_enable=memory $line cgroup_memory=0 cgroup_enable=memory\" > $f")
    rp0_cmdline = sh(lab, "rp0", "cat /boot/firmware/cmdline.txt").split()
    # rp1: a dphys-swapfile setup (the lab's double) and a swap line in fstab
    seed_dphys_swapfile(lab.state_dir / "hosts" / "rp1" / "root")
    sh(lab, "rp1", "systemctl daemon-reload && systemctl start dphys-swapfile && "
                   "printf '/swapfile\\tnone\\tswap\\tsw\\t0\\t0\\n' >> /etc/fstab")
    assert sh(lab, "rp1", "systemctl is-enabled dphys-swapfile").strip() == "enabled"
    booted = {board: boot_identity(lab, board) for board in BOARDS}

    result, output = run(lab, BOARDS, timeout=120)
    for board in BOARDS:
        assert result.hosts[board].status == "changed", output

    # kernel arguments: other arguments kept in order, each cgroup argument once
    rp0 = sh(lab, "rp0", "cat /boot/firmware/cmdline.txt").split()
    assert rp0 == ["cgroup_enable=memory"] + rp0_cmdline[1:-2] + [
        "cgroup_memory=1", "cgroup_enable=cpuset"], output
    rp1 = sh(lab, "rp1", "cat /boot/cmdline.txt")
    assert rp1.startswith("console=serial0,115200 console=tty1 root=PARTUUID=")
    assert rp1.rstrip().endswith(f"rootwait {CG}") and rp1.count("\n") == 1
    assert f'GRUB_CMDLINE_LINUX="{CG}"' in sh(lab, "lp0", "cat /etc/default/grub")
    assert "WARNING: update-grub is not installed" in output

    # swap: dphys-swapfile stopped, its file removed, purged; fstab line commented
    assert "#/swapfile\tnone\tswap" in sh(lab, "rp1", "cat /etc/fstab")
    assert "un" in sh(lab, "rp1", "dpkg-query -W -f '${db:Status-Abbrev}' dphys-swapfile "
                                  "2>/dev/null || echo un")
    assert lab.exec("rp1", "test -e /var/swap").returncode != 0
    assert "dphys-swapfile uninstall" in sh(lab, "rp1", "cat /var/log/dphys-swapfile.calls")

    for board in BOARDS:
        # runtime, modules, sysctls, containerd config merged into Debian's packaged one
        assert sh(lab, board, "systemctl is-active containerd").strip() == "active"
        config = sh(lab, board, "cat /etc/containerd/config.toml")
        assert "SystemdCgroup = true" in config and 'bin_dir = "/usr/lib/cni"' in config
        assert 'config_path = "/etc/containerd/certs.d"' in config
        assert 'sandbox_image = "192.168.10.2:5001/pause:3.9"' in config
        assert sh(lab, board, "cat /etc/modules-load.d/k8s.conf") == "overlay\nbr_netfilter\n"
        assert sh(lab, board, "sysctl -n net.ipv4.ip_forward "
                              "net.bridge.bridge-nf-call-iptables").split() == ["1", "1"]
        assert sh(lab, board, "dpkg-query -W -f '${db:Status-Abbrev}\\n' chrony "
                              "containernetworking-plugins").split() == ["ii", "ii"]
        # the kernel arguments changed, so each board rebooted for real and was verified
        assert boot_identity(lab, board) != booted[board]
    assert output.count("rebooted: the memory cgroup is enabled") == 3
    assert "/proc/cmdline lacks" in output  # the lab kernel is the machine's own

    again, output = run(lab, BOARDS)
    assert again.changed == 0, output
    assert all(r.status == "ok" for r in again.hosts.values()), output


def test_board_that_does_not_come_back_is_reported_while_others_go_on(lab):
    # rp1 keeps booting but never answers SSH again: its sshd is masked before the reboot
    sh(lab, "rp1", "systemctl mask ssh.service >/dev/null 2>&1")
    try:
        result, output = run(lab, ["rp0", "rp1"], reboot=True, timeout=15)
        assert result.hosts["rp0"].status == "changed", output
        assert "back after" in output
        assert result.hosts["rp1"].status == "unreachable", output
        assert "rp1 did not come back within 15s after the reboot" in result.hosts["rp1"].error
        assert not result.ok
    finally:
        lab.reset("rp1")


def test_no_reboot_reports_reboot_needed(lab):
    # rp0 was prepared above: the only change is the requested reboot, refused
    result, output = run(lab, ["rp0"], no_reboot=True, reboot=True)
    assert result.hosts["rp0"].status == "failed"
    assert "REBOOT NEEDED, not done because of --no-reboot" in result.hosts["rp0"].error
