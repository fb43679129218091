"""dhcpd.conf rendering from the inventory, and the DHCP steps (validation, handler, leases)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from runbooks.core.facts import FactResult
from runbooks.core.inventory import load_inventory
from runbooks.dell_gateway import dhcp

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(str(ROOT / "hosts" / "lab.yaml"))
DEMO = load_inventory(str(ROOT / "hosts" / "demo.yaml"))


def conf(inv=INV) -> str:
    host = inv.gateway
    return dhcp.render_dhcpd_conf(dhcp.dhcpd_values(host, inv))


@pytest.mark.parametrize(("inv", "line"), [
    (INV, "subnet 192.168.10.0 netmask 255.255.255.128 {"),
    (INV, "  range 192.168.10.26 192.168.10.126;"),
    (INV, "  option routers 192.168.10.2;"),
    (INV, "  option domain-name-servers 192.168.10.2;"),
    (INV, "default-lease-time 600;"),
    (INV, "max-lease-time 7200;"),
    (INV, "authoritative;"),
    (INV, "  option broadcast-address 192.168.10.127;"),
    (DEMO, "  option domain-name-servers 8.8.8.8, 8.8.4.4;"),
    (DEMO, "# VLAN 100 on enx.100"),
], ids=["subnet", "range", "routers", "dns-lab", "default-lease", "max-lease",
        "authoritative", "broadcast", "dns-demo-two-servers", "interface-comment"])
def test_dhcpd_conf_lines(inv, line):
    assert line in conf(inv).splitlines()


def test_no_dns_means_no_dns_option():
    net = dataclasses.replace(INV.network, dhcp=dataclasses.replace(INV.network.dhcp, dns=()))
    text = conf(dataclasses.replace(INV, network=net))
    assert "domain-name-servers" not in text and "range 192.168.10.26" in text


@pytest.mark.parametrize("inv", [INV, DEMO], ids=["lab", "demo"])
def test_vip_is_outside_the_rendered_range(inv):
    """Read the range back from the rendered dhcpd.conf: the VIP must not be handed out."""
    ranges = [line.split()[1:3] for line in conf(inv).splitlines()
              if line.strip().startswith("range ")]
    assert len(ranges) == 1, conf(inv)
    start, end = (IPv4Address(a.rstrip(";")) for a in ranges[0])
    assert (start, end) == (inv.network.dhcp.start, inv.network.dhcp.end)
    assert inv.network.vip is not None and not start <= inv.network.vip <= end


@pytest.mark.skipif(shutil.which("dhcpd") is None, reason="dhcpd (isc-dhcp-server) not here")
@pytest.mark.parametrize("inv", [INV, DEMO], ids=["lab", "demo"])
def test_rendered_conf_passes_the_real_validator(inv, tmp_path):
    path = tmp_path / "dhcpd.conf"
    path.write_text(conf(inv))
    done = subprocess.run(["dhcpd", "-t", "-cf", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("dhcpd") is None, reason="dhcpd (isc-dhcp-server) not here")
def test_real_validator_rejects_a_broken_value(tmp_path):
    values = dhcp.dhcpd_values(INV.gateway, INV) | {"router": "192.168.10.2 bogus"}
    path = tmp_path / "dhcpd.conf"
    path.write_text(dhcp.render_dhcpd_conf(values))
    done = subprocess.run(["dhcpd", "-t", "-cf", str(path)], capture_output=True, text=True)
    assert done.returncode != 0 and "line 11" in done.stderr


def test_steps_validate_notify_and_keep_leases():
    steps = dhcp.dhcp_steps(INV.gateway, INV)
    names = [s.name for s in steps]
    assert names == [
        "Ensure packages installed: isc-dhcp-server",
        "Ensure the lease database /var/lib/dhcp/dhcpd.leases exists",
        "Ensure /etc/dhcp/dhcpd.conf",
        "Ensure 'INTERFACESv4=\"eth1.100\"' in /etc/default/isc-dhcp-server",
        "Ensure isc-dhcp-server enabled and running",
    ]
    config = steps[2]
    assert config.validate == "dhcpd -t -cf {}"
    assert config.notify == ("restart isc-dhcp-server",) == steps[3].notify
    # the lease database is only created when missing, never rewritten
    leases = steps[1]
    assert leases.plan({"guard": FactResult(0, "")}) == []
    (change,) = leases.plan({"guard": FactResult(1, "")})
    assert change.actions[0].command == "mkdir -p /var/lib/dhcp && touch /var/lib/dhcp/dhcpd.leases"
    # nothing in the runbook writes the lease file
    assert not any(getattr(s, "path", "") == dhcp.LEASES for s in steps)


def test_a_file_change_writes_through_the_validator():
    config = dhcp.dhcp_steps(INV.gateway, INV)[2]
    (change,) = config.plan({"file": FactResult(1, "")})
    script = change.actions[0].command
    assert 'dhcpd -t -cf "$tmp"' in script
    assert script.index("dhcpd -t") < script.index("mv -f")


@pytest.mark.parametrize(("current", "wanted"), [
    ('INTERFACESv4=""\nINTERFACESv6=""\n', 'INTERFACESv4="eth1.100"\nINTERFACESv6=""\n'),
    ('INTERFACESv4="eth0"\n', 'INTERFACESv4="eth1.100"\n'),
], ids=["debian-default", "other-interface"])
def test_interfaces_line(current, wanted):
    step = dhcp.dhcp_steps(INV.gateway, INV)[3]
    assert step.transform(current) == wanted


def test_rendered_files_do_not_depend_on_where_the_inventory_was_loaded_from(monkeypatch):
    from pathlib import Path

    from runbooks.core.inventory import load_inventory
    from runbooks.dell_gateway.dhcp import dhcpd_values, render_dhcpd_conf

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    relative = load_inventory("hosts/lab.yaml")
    absolute = load_inventory(str(repo / "hosts" / "lab.yaml"))
    texts = [render_dhcpd_conf(dhcpd_values(inv.hosts["dell"], inv))
             for inv in (relative, absolute)]
    assert texts[0] == texts[1] and "site lab (lab.yaml)" in texts[0]
