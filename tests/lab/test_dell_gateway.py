"""dell-gateway on the virtual lab: check mode, converge, idempotence, a real DHCP client,
NAT to the upstream HTTP server, leases, health, persistence, and a broken config caught by
`dhcpd -t` before activation. Each test asks for the state it needs (a fresh gateway, or a
converged one) through a fixture, so any one of them runs alone or in any order; in file
order they share one reset and one converge.

What cannot run here: creating a real 802.1Q interface (this kernel has no 802.1q; the lab
provides eth1.100 as a veth on its VLAN bridge, so the runbook converges only its address,
with iproute2 plus a systemd unit), and the nmcli / netplan / ifupdown backends (not in the
lab guests; unit-tested in tests/unit/test_common_vlan.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from runbooks.dell_gateway import dhcp
from runbooks.dell_gateway.plan import RUNBOOK
from tests.support.waiting import wait_until

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "dell"
CLIENT = "microvm"
CAP_NET_ADMIN = 12




def run(lab, check: bool = False, inv=None):
    """Run the runbook on the gateway (with the lab's inventory, or `inv`); return (result,
    printed output)."""
    from runbooks.core.runner import run_runbook

    out = io.StringIO()
    inv = inv or lab.inventory
    result = run_runbook(RUNBOOK, inv, [inv.hosts[GATEWAY]], check=check, out=out)
    return result, out.getvalue()


def sh(lab, host: str, cmd: str) -> str:
    done = lab.exec(host, cmd)
    assert done.returncode == 0, f"{host}: {cmd}: {done.stderr}"
    return done.stdout


def inv_task(lab, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an `inv` task of this repository against the lab's inventory."""
    inventory = str(lab.inventory.path)
    return subprocess.run([sys.executable, "-m", "invoke", *args, "-i", inventory],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def renew_client_lease(lab) -> str:
    """Restart the client's dhclient (by pid, inside the client) and wait for its address.

    The address of the old lease is flushed first (a killed dhclient leaves it on eth0),
    so what this returns is the lease the gateway's dhcpd just gave, never one an earlier
    gateway gave (which the fresh gateway's leases would not list)."""
    pids = " ".join(str(int(pid)) for pid in lab.exec(CLIENT, "pidof dhclient").stdout.split())
    # in one go: the client's loop starts the next dhclient a second after this one ends
    lab.exec(CLIENT, f"kill {pids}; ip -4 addr flush dev eth0")
    pool = lab.inventory.network.dhcp
    found: list[str] = []

    def bound() -> bool:
        out = lab.exec(CLIENT, "ip -4 -o addr show dev eth0").stdout
        found[:] = [w.split("/")[0] for w in out.split() if "/" in w and w[0].isdigit()]
        return any(IPv4Address(a) in pool for a in found)

    log = "tail -5 /var/log/dhclient.log"
    assert wait_until(bound, 45), f"{CLIENT} got no lease: {lab.exec(CLIENT, log).stdout}"
    return found[0]


@pytest.fixture(scope="module")
def gateway(lab):
    """A fresh gateway whose login session may configure networking."""
    lab.reset(GATEWAY)
    with lab.connection(GATEWAY) as conn:
        caps = conn.run("grep CapEff /proc/self/status", hide=True).stdout.split()[-1]
    if not int(caps, 16) >> CAP_NET_ADMIN & 1:
        pytest.fail("lab defect: SSH sessions on the systemd guest have no CAP_NET_ADMIN "
                    f"(CapEff {caps}), so no runbook can set an address, a sysctl under "
                    "net.* or an nftables rule there; systemd-nspawn with "
                    "--network-namespace-path needs --capability=CAP_NET_ADMIN "
                    "(runbooks/lab/guest.py, _nspawn_command)")
    return lab


@pytest.fixture
def fresh(gateway):
    """The gateway as lab.up made it (reset only when a test before changed it)."""
    if gateway.exec(GATEWAY, "test -e /etc/dhcp/dhcpd.conf || "
                             "dpkg-query -W isc-dhcp-server").returncode == 0:
        gateway.reset(GATEWAY)
    return gateway


@pytest.fixture
def converged(gateway):
    """The gateway after dell-gateway converged it (a no-op run when it already is)."""
    result, out = run(gateway)
    assert result.ok, out
    return gateway


def test_check_mode_shows_diffs_and_changes_nothing(fresh):
    lab = fresh
    result, out = run(lab, check=True)
    host = result.hosts[GATEWAY]
    assert host.status == "changed", out
    assert host.changed >= 10
    assert "+++ /etc/dhcp/dhcpd.conf" in out and "+  range 192.168.10.26 192.168.10.126;" in out
    assert "+++ /etc/nftables.d/greenroom.nft" in out
    assert "add 192.168.10.2/25 to eth1.100" in out
    # nothing happened on the host
    assert lab.exec(GATEWAY, "test -e /etc/dhcp/dhcpd.conf").returncode == 1
    assert lab.exec(GATEWAY, "dpkg-query -W isc-dhcp-server").returncode != 0
    assert "inet " not in sh(lab, GATEWAY, "ip -4 addr show dev eth1.100")
    assert sh(lab, GATEWAY, "sysctl -n net.ipv4.ip_forward").strip() == "0"
    assert lab.exec(GATEWAY, "nft list table inet greenroom").returncode != 0


def test_converges(fresh):
    lab = fresh
    result, out = run(lab)
    assert result.ok, out
    assert result.hosts[GATEWAY].status == "changed"
    wanted = dhcp.render_dhcpd_conf(dhcp.dhcpd_values(lab.inventory.hosts[GATEWAY],
                                                       lab.inventory))
    assert sh(lab, GATEWAY, "cat /etc/dhcp/dhcpd.conf") == wanted
    assert 'INTERFACESv4="eth1.100"' in sh(lab, GATEWAY, "cat /etc/default/isc-dhcp-server")
    assert sh(lab, GATEWAY, "systemctl is-active isc-dhcp-server; systemctl is-enabled "
                            "isc-dhcp-server greenroom-nftables greenroom-vlan-eth1.100"
              ).split() == ["active", "enabled", "enabled", "enabled"]
    assert "inet 192.168.10.2/25" in sh(lab, GATEWAY, "ip -4 addr show dev eth1.100")
    assert sh(lab, GATEWAY, "sysctl -n net.ipv4.ip_forward").strip() == "1"
    assert "net.ipv4.ip_forward = 1" in sh(lab, GATEWAY, "cat /etc/sysctl.d/*greenroom*")
    assert 'oifname "eth1" ip saddr 192.168.10.0/25 masquerade' in sh(
        lab, GATEWAY, "nft list table inet greenroom")


def test_second_run_changes_nothing(converged):
    result, out = run(converged)
    assert result.ok and result.changed == 0, out
    assert result.hosts[GATEWAY].status == "ok"


def test_client_gets_a_lease_and_reaches_upstream_through_nat(converged):
    lab = converged
    address = renew_client_lease(lab)
    assert "default via 192.168.10.2 dev eth0" in sh(lab, CLIENT, "ip route")
    upstream = lab.plan.upstream_gateway.ip
    before = len(lab.upstream_log())
    page = sh(lab, CLIENT, f"curl -sS -m 10 http://{upstream}/")
    assert page.strip()
    seen = lab.upstream_log()[before:]
    gateway_upstream = str(lab.plan.guest(GATEWAY).upstream_address.ip)
    assert seen == [gateway_upstream], (address, seen)


def test_leases_lists_the_client(converged):
    lab = converged
    mac = sh(lab, CLIENT, "cat /sys/class/net/eth0/address").strip()
    ip = renew_client_lease(lab)
    done = inv_task(lab, "dell-gateway.leases", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    leases = json.loads(done.stdout)
    assert {"ip": ip, "mac": mac, "state": "active"}.items() <= next(
        lease for lease in leases if lease["ip"] == ip).items()
    table = inv_task(lab, "dell-gateway.leases")
    assert ip in table.stdout and mac in table.stdout


def test_check_task_is_read_only_and_reports_unhealthy(converged):
    lab = converged
    healthy = inv_task(lab, "dell-gateway.check")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "dell: healthy" in healthy.stdout
    sh(lab, GATEWAY, "sysctl -q -w net.ipv4.ip_forward=0")
    broken = inv_task(lab, "dell-gateway.check")
    assert broken.returncode == 1
    assert "FAIL  forwarding" in broken.stdout and "UNHEALTHY: forwarding" in broken.stdout
    assert sh(lab, GATEWAY, "sysctl -n net.ipv4.ip_forward").strip() == "0"  # read-only
    result, out = run(lab)
    assert result.ok and result.changed == 1, out


def test_persisted_config_restores_address_and_nat(converged):
    """What a reboot would redo: the units bring back the address, greenroom's table and
    the route to edge's LAN (hosts/lab.yaml `lans:`), which went with the address."""
    lab = converged
    sh(lab, GATEWAY, "ip addr flush dev eth1.100 && nft delete table inet greenroom")
    assert "192.168.30.0/24" not in sh(lab, GATEWAY, "ip -4 route show")
    sh(lab, GATEWAY, "systemctl restart greenroom-vlan-eth1.100 greenroom-nftables "
                     "greenroom-routes")
    assert "inet 192.168.10.2/25" in sh(lab, GATEWAY, "ip -4 addr show dev eth1.100")
    assert "masquerade" in sh(lab, GATEWAY, "nft list table inet greenroom")
    assert "192.168.30.0/24 via 192.168.10.6 dev eth1.100" in sh(lab, GATEWAY, "ip -4 route")
    result, out = run(lab)
    assert result.changed == 0, out


LANS = "lans: {edge: [192.168.30.0/24]}\n"
UNIT_PATH = "/etc/systemd/system/greenroom-routes.service"


def lans_variant(lab, lans: str):
    """The lab's inventory with its `lans:` line replaced (same site, same path)."""
    from runbooks.core.inventory import parse_inventory

    path = lab.inventory.path
    text = Path(path).read_text()
    assert text.count(LANS) == 1
    return parse_inventory(text.replace(LANS, lans), str(path))


def routes_of(lab) -> list[str]:
    """The gateway's routes to the 192.168.30-31 LANs, as `ip route` shows them."""
    return [" ".join(line.split()) for line in sh(lab, GATEWAY, "ip -4 route show").splitlines()
            if line.startswith(("192.168.30.", "192.168.31."))]


def test_a_lan_the_inventory_drops_is_unrouted_live_and_at_boot(converged):
    """The gateway converges to `lans:`: a LAN dropped from it loses its route (live and in
    greenroom-routes.service), --check shows that first as a diff, and a second run changes
    nothing; with no LAN left the unit goes too; the lab's own LAN is routed again after."""
    lab = converged
    two = lans_variant(lab, "lans: {edge: [192.168.30.0/24, 192.168.31.0/24]}\n")
    result, out = run(lab, inv=two)
    assert result.ok and result.changed >= 1, out
    assert routes_of(lab) == ["192.168.30.0/24 via 192.168.10.6 dev eth1.100",
                              "192.168.31.0/24 via 192.168.10.6 dev eth1.100"]
    # dropping 192.168.31.0/24 again: --check says what will go, and changes nothing
    result, out = run(lab, check=True)
    assert result.hosts[GATEWAY].status == "changed", out
    assert "ip route del 192.168.31.0/24 via 192.168.10.6 dev eth1.100" in out
    assert "-ExecStart=/sbin/ip route replace 192.168.31.0/24 via 192.168.10.6" in out
    assert "192.168.31.0/24 via 192.168.10.6 dev eth1.100" in routes_of(lab)
    result, out = run(lab)
    assert result.ok, out
    assert routes_of(lab) == ["192.168.30.0/24 via 192.168.10.6 dev eth1.100"]
    assert "192.168.31.0/24" not in sh(lab, GATEWAY, f"cat {UNIT_PATH}")
    result, out = run(lab)
    assert result.ok and result.changed == 0, out
    # and what a boot does (the unit run again) brings back only the wanted LAN
    sh(lab, GATEWAY, "ip route del 192.168.30.0/24 && systemctl restart greenroom-routes")
    assert routes_of(lab) == ["192.168.30.0/24 via 192.168.10.6 dev eth1.100"]
    # no LAN left: the route and the unit go (a backup of the unit kept)
    none = lans_variant(lab, "")
    result, out = run(lab, check=True, inv=none)
    assert f"--- {UNIT_PATH}" in out and "+++ /dev/null" in out, out
    assert "-ExecStart=/sbin/ip route replace 192.168.30.0/24 via 192.168.10.6" in out
    result, out = run(lab, inv=none)
    assert result.ok, out
    assert routes_of(lab) == []
    assert lab.exec(GATEWAY, f"test -e {UNIT_PATH}").returncode == 1
    assert "greenroom-routes.service" in sh(lab, GATEWAY,
                                            "ls /var/backups/greenroom/etc/systemd/system")
    assert lab.exec(GATEWAY, "systemctl is-enabled greenroom-routes").stdout.strip() \
        in ("", "not-found")
    result, out = run(lab, inv=none)
    assert result.ok and result.changed == 0, out
    result, out = run(lab)
    assert result.ok, out
    assert routes_of(lab) == ["192.168.30.0/24 via 192.168.10.6 dev eth1.100"]


def test_broken_config_is_caught_before_activation(converged, monkeypatch):
    lab = converged
    before = sh(lab, GATEWAY, "sha256sum /etc/dhcp/dhcpd.conf")
    pid = sh(lab, GATEWAY, "pidof dhcpd").strip()
    good = dhcp.dhcpd_values
    # a value that slips past the inventory check and breaks the rendered file
    monkeypatch.setattr(dhcp, "dhcpd_values",
                        lambda host, inv: good(host, inv) | {"router": "192.168.10.2 bogus"})
    result, out = run(lab)
    host = result.hosts[GATEWAY]
    assert not result.ok and host.status == "failed"
    assert "validation failed (dhcpd -t -cf {})" in host.error
    assert "line 11" in host.error  # dhcpd's own message, with the line number
    assert sh(lab, GATEWAY, "sha256sum /etc/dhcp/dhcpd.conf") == before
    assert sh(lab, GATEWAY, "ls -a /etc/dhcp").count(".greenroom.") == 0
    assert sh(lab, GATEWAY, "pidof dhcpd").strip() == pid
    renew_client_lease(lab)  # the running server still serves
    monkeypatch.undo()
    result, out = run(lab)
    assert result.ok and result.changed == 0, out


DOCKER_DOUBLE = (
    # a double of what Docker does to a host's iptables (no Docker engine can run here):
    # its DOCKER-USER chain first in FORWARD, and FORWARD's policy DROP
    "iptables -w -N DOCKER-USER && iptables -w -A DOCKER-USER -j RETURN && "
    "iptables -w -I FORWARD -j DOCKER-USER && iptables -w -P FORWARD DROP"
)
DOCKER_UNDO = (
    "iptables -w -P FORWARD ACCEPT; iptables -w -D FORWARD -j DOCKER-USER; "
    "iptables -w -F DOCKER-USER; iptables -w -X DOCKER-USER; "
    "systemctl disable --now greenroom-docker-forward.service; "
    "rm -f /etc/systemd/system/greenroom-docker-forward.service; systemctl daemon-reload"
)


def test_gateway_running_docker_still_forwards_the_vlan(converged):
    lab = converged
    assert lab.exec(GATEWAY, DOCKER_DOUBLE).returncode == 0
    try:
        renew_client_lease(lab)
        upstream = lab.plan.upstream_gateway.ip
        # Docker's DROP policy cuts the boards off: the problem this step exists for
        assert lab.exec(CLIENT, f"curl -sS -m 3 http://{upstream}/").returncode != 0
        result, out = run(lab)
        assert result.ok and "DOCKER-USER" in out, out
        rules = sh(lab, GATEWAY, "iptables -w -S DOCKER-USER")
        assert rules.splitlines()[1].endswith("--comment greenroom -j ACCEPT"), rules
        assert sh(lab, CLIENT, f"curl -sS -m 10 http://{upstream}/").strip()
        health = inv_task(lab, "dell-gateway.check")
        assert health.returncode == 0 and "docker forward" in health.stdout, health.stdout
        again, out = run(lab)
        assert again.ok and again.changed == 0, out
        # the unit puts the rules back when they are gone (as after a reboot)
        sh(lab, GATEWAY, "iptables -w -D DOCKER-USER 1 && iptables -w -D DOCKER-USER 1 && "
                         "systemctl restart greenroom-docker-forward.service")
        assert sh(lab, GATEWAY, "iptables -w -S DOCKER-USER").count("greenroom") == 2
    finally:
        lab.exec(GATEWAY, DOCKER_UNDO)
