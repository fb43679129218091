"""The lab's hosts are real: SSH with the lab key, own filesystems, boot files, VLAN, apt,
reboot and reset (runs against hosts/lab.yaml through the session `lab` fixture)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import paramiko
import pytest

from runbooks.lab.guest import GuestError
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("fresh_lab")]




def test_fabric_reaches_every_host_with_lab_key_and_known_hosts(lab):
    for name, host in lab.inventory.hosts.items():
        with lab.connection(name) as conn:
            result = conn.run("hostname; id -u", hide=True)
        assert result.stdout.split() == [name, "0"], host


def test_unknown_host_key_is_rejected(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    conn = lab.connection("rp0")
    conn.client = paramiko.SSHClient()
    conn.client.load_host_keys(str(empty))
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        conn.open()
    conn.close()


def test_a_file_written_on_rp0_is_absent_on_rp1_and_on_the_machine(lab):
    name = f"/root/isolation-{uuid.uuid4().hex}"
    with lab.connection("rp0") as conn:
        conn.run(f"echo rp0 > {name}", hide=True)
        assert conn.run(f"cat {name}", hide=True).stdout.strip() == "rp0"
    with lab.connection("rp1") as conn:
        assert conn.run(f"test -e {name}", hide=True, warn=True).exited == 1
    assert not Path(name).exists()


def test_systemd_hosts_run_systemd(lab):
    result = lab.exec("rp0", "systemctl is-system-running --wait; systemctl is-active ssh")
    assert result.stdout.split() == ["running", "active"], result.stderr


@pytest.mark.parametrize("host, files", [
    ("rp0", ["/boot/firmware/cmdline.txt", "/boot/firmware/config.txt"]),
    ("rp1", ["/boot/cmdline.txt", "/boot/config.txt"]),
    ("lp0", ["/etc/default/grub"]),
], ids=["firmware", "legacy", "grub"])
def test_boards_carry_their_boot_files(lab, host, files):
    for path in files:
        result = lab.exec(host, f"cat {path}")
        assert result.returncode == 0, f"{host}: {path}: {result.stderr}"
    if "cmdline.txt" in files[0]:
        cmdline = lab.exec(host, f"cat {files[0]}").stdout
        assert "root=PARTUUID=" in cmdline and "rootwait" in cmdline
        assert "cgroup_enable" not in cmdline  # pi-prep's job


@pytest.mark.parametrize("host, model", [
    ("rp0", "Raspberry Pi"), ("lp0", "Libre Computer"),
])
def test_boards_have_a_device_tree_model(lab, host, model):
    result = lab.exec(host, "tr -d '\\0' < /sys/firmware/devicetree/base/model")
    assert result.stdout.startswith(model), result.stderr


def test_gateway_has_no_device_tree_model(lab):
    assert lab.exec("dell", "test -e /sys/firmware/devicetree/base/model").returncode != 0


@pytest.mark.parametrize("module", ["overlay", "br_netfilter"])
def test_modprobe_of_builtin_modules_succeeds(lab, module):
    result = lab.exec("rp0", f"modprobe {module}")
    assert result.returncode == 0, result.stderr


def test_vlan_interfaces_are_named_and_addressed_as_the_inventory_says(lab):
    lab.reset("dell")  # a fresh gateway: runbook tests may have configured this one
    for name, host in lab.inventory.hosts.items():
        if host.vlan is None:  # the audience: on edge's LAN only (the next test)
            continue
        out = lab.exec(name, f"ip -o -4 addr show dev {host.vlan.name}")
        assert out.returncode == 0, f"{name}: {out.stderr}"
        if "gateway" in host.roles and host.vlan.managed:
            assert "inet " not in out.stdout  # the dell-gateway runbook sets it
        else:
            assert f"inet {host.vlan.address}" in out.stdout
        assert lab.exec(name, f"ip link show dev {host.vlan.parent}").returncode == 0


def test_lan_hosts_sit_on_their_own_segment_behind_the_router(lab):
    """hosts/lab.yaml's audience: on edge's LAN (lab.lan), not on the VLAN, its default route
    edge's LAN address; edge reaches it there."""
    def out(host, cmd):
        done = lab.exec(host, cmd)
        assert done.returncode == 0, f"{host}: {cmd}: {done.stderr}"
        return done.stdout

    assert "default via 192.168.30.1 dev eth0" in out("audience", "ip -4 route show")
    assert "192.168.10." not in out("audience", "ip -4 -o addr show")
    assert "inet 192.168.30.10/24" in out("audience", "ip -4 -o addr show dev eth0")
    assert "inet 192.168.30.1/24" in out("edge", "ip -4 -o addr show dev eth1")
    assert lab.exec("edge", "ping -c 1 -W 2 192.168.30.10").returncode == 0
    # clients ignore ICMP redirects on every link, not only on those made later
    for client, link in (("audience", "eth0"), ("laptop", "eth0.100")):
        setting = out(client, f"cat /proc/sys/net/ipv4/conf/{link}/accept_redirects")
        assert setting.strip() == "0", (client, link)
    # a segment of its own: a board on the VLAN has no link to it (only a route via a gateway)
    assert " via " in out("rp0", "ip -4 route get 192.168.30.10")


def test_boards_reach_each_other_over_the_vlan(lab):
    rp1 = lab.inventory.hosts["rp1"].vlan.address.ip
    result = lab.exec("rp0", f"ping -c1 -W2 {rp1}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_gateway_reaches_boards_once_its_vlan_address_is_set(lab):
    lab.reset("dell")
    dell = lab.inventory.hosts["dell"]
    gw = f"{lab.inventory.network.gateway}/{lab.inventory.network.subnet.prefixlen}"
    with lab.connection("dell") as conn:  # over SSH, as the dell-gateway runbook does it
        assert conn.run(f"ip addr add {gw} dev {dell.vlan.name}", hide=True).ok
    try:
        for board in ("rp0", "rp1", "lp0"):
            result = lab.exec(board, f"ping -c1 -W2 {lab.inventory.network.gateway}")
            assert result.returncode == 0, f"{board}: {result.stdout}"
    finally:
        lab.exec("dell", f"ip addr del {gw} dev {dell.vlan.name}")


def test_gateway_reaches_the_upstream_http_server_and_it_logs_the_client(lab):
    result = lab.exec("dell", "curl -sS -m 5 http://10.231.1.1/probe")
    assert result.returncode == 0, result.stderr
    assert "10.231.1.2" in lab.upstream_log()


def test_microvm_keeps_asking_for_a_dhcp_lease(lab):
    lab.reset("dell")  # no DHCP server on the VLAN, and a client that has no lease yet
    lab.reset("microvm")
    def discovers() -> int:
        log = lab.exec("microvm", "cat /var/log/dhclient.log").stdout
        return log.count("DHCPDISCOVER on eth0")

    first = discovers()
    assert wait_until(lambda: discovers() > max(first, 1), timeout=30)


def test_apt_proxy_refuses_hosts_outside_the_machines_apt_sources(lab):
    proxy = f"http://{lab.plan.bridge_address.ip}:{lab.plan.proxy_port}"
    result = lab.exec("rp0", f"curl -s -o /dev/null -w '%{{http_code}}' -x {proxy} "
                             "http://not-a-mirror.invalid/")
    assert result.stdout == "403"


def test_apt_get_update_and_install_work_inside_a_host(lab):
    update = lab.exec("lp0", "apt-get update -q", timeout=180)
    assert update.returncode == 0, update.stdout + update.stderr
    install = lab.exec("lp0", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                              "--no-install-recommends hello && hello", timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Hello, world!" in install.stdout


def test_reboot_brings_a_systemd_host_back_with_its_filesystem(lab):
    marker = f"/root/survives-reboot-{uuid.uuid4().hex}"
    assert lab.exec("rp1", f"touch {marker} /run/vanishes-on-reboot").returncode == 0
    with lab.connection("rp1") as conn:
        conn.run("nohup sh -c 'sleep 0.5; systemctl reboot' >/dev/null 2>&1 &", hide=True)

    def booted_again() -> bool:
        try:  # each probe bounded: one into a guest still booting may never answer
            result = lab.exec("rp1", "test ! -e /run/vanishes-on-reboot && "
                                     "systemctl is-system-running", timeout=5)
        except (GuestError, subprocess.TimeoutExpired):  # between two boots
            return False
        return result.stdout.strip() == "running"

    assert wait_until(booted_again, timeout=60)
    with lab.connection("rp1") as conn:
        assert conn.run(f"test -e {marker}", hide=True, warn=True).exited == 0


def test_reset_gives_a_fresh_board_with_the_same_host_key(lab):
    with lab.connection("lp0") as conn:
        conn.run("touch /root/before-reset && ip addr add 192.168.10.99/25 dev eth0.100",
                 hide=True)
    lab.reset("lp0")
    with lab.connection("lp0") as conn:
        assert conn.run("test -e /root/before-reset", hide=True, warn=True).exited == 1
        addrs = conn.run("ip -o -4 addr show dev eth0.100", hide=True).stdout
    assert "192.168.10.99" not in addrs and "192.168.10.5/25" in addrs
