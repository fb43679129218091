"""xen-dom0's vars are checked when the inventory loads: every problem with file, line, key."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.core.inventory import InventoryError, parse_inventory

BASE = (Path(__file__).resolve().parents[2] / "hosts" / "lab-xen.yaml").read_text()
RANGE = "dhcp_range: [192.168.100.100, 192.168.100.199]"
DOMU1 = "{name: domu1, ip: 192.168.100.10}"
MASTER_MAC = 'mac: "00:16:3e:ee:ee:01"'
FORWARD = "- {port: 8080, to: 192.168.100.10, to_port: 80}"


def test_the_lab_inventory_is_valid():
    host = parse_inventory(BASE, "lab-xen.yaml").hosts["xen0"]
    assert host.vars["private_bridges"][0]["name"] == "virbr1"


@pytest.mark.parametrize(("old", "new", "message"), [
    pytest.param(RANGE, "dhcp_range: [192.168.100.100, 192.168.101.199]",
                 "dhcp_range address 192.168.101.199 is outside the bridge's subnet",
                 id="range-outside-subnet"),
    pytest.param(RANGE, "dhcp_range: [192.168.100.199, 192.168.100.100]",
                 "starts at 192.168.100.199, after its end", id="range-reversed"),
    pytest.param(RANGE, "dhcp_range: [192.168.100.1, 192.168.100.99]",
                 "contains the bridge's own address", id="range-holds-dom0"),
    pytest.param(DOMU1, "{name: domu1, ip: 192.168.100.150}",
                 "192.168.100.150 is inside the dynamic range", id="reservation-in-range"),
    pytest.param(DOMU1, "{name: domu1, ip: 10.0.0.5}", "10.0.0.5 is outside the bridge's",
                 id="reservation-outside-subnet"),
    pytest.param(DOMU1, "{name: domu1, ip: 192.168.100.1}", "is the bridge's own address",
                 id="reservation-is-dom0"),
    pytest.param(DOMU1, "{name: domu1, ip: 192.168.100.11}",
                 "ip 192.168.100.11 is also the ip of reservation domu1", id="duplicate-ip"),
    pytest.param(DOMU1, "{name: k8s-master, ip: 192.168.100.12}",
                 "name k8s-master is also the name", id="duplicate-name"),
    pytest.param(DOMU1, '{name: domu1, ip: 192.168.100.12, mac: "00:16:3e:ee:ee:01"}',
                 "mac 00:16:3e:ee:ee:01 is also the mac", id="duplicate-mac"),
    pytest.param(MASTER_MAC, 'mac: "52:54:00:ee:ee:01"', "not a MAC in Xen's range",
                 id="mac-outside-xen-range"),
    pytest.param("name: virbr1", "name: virbr1-guests-lan", "at most 15", id="long-bridge"),
    pytest.param("nic: eth1", "nic: eth1/x", "is not an interface name", id="bad-nic"),
    pytest.param("address: 192.168.100.1/24", "address: 192.168.100.1",
                 "needs its prefix length", id="bridge-without-prefix"),
    pytest.param(FORWARD, FORWARD + "\n        - {port: 8080, to: 192.168.100.11}",
                 "tcp port 8080 is already forwarded", id="forward-clash"),
    pytest.param(FORWARD, "- {port: 70000, to: 192.168.100.10}", "out of range",
                 id="forward-port"),
    pytest.param(FORWARD, "- {port: 53, to: 192.168.100.10, protocol: sctp}",
                 "use one of: tcp, udp", id="forward-protocol"),
    pytest.param("memory: 1024M", "memory: lots", "dom0's memory", id="dom0-memory"),
    pytest.param("masquerade: true", "masquerad: true", "did you mean 'masquerade'",
                 id="typo"),
])
def test_bad_vars_are_refused_with_file_line_and_key(old: str, new: str, message: str):
    assert old in BASE
    with pytest.raises(InventoryError) as caught:
        parse_inventory(BASE.replace(old, new, 1), "hosts/lab-xen.yaml")
    text = str(caught.value)
    assert message in text
    assert "hosts/lab-xen.yaml:" in text and "hosts.xen0.vars." in text


def test_two_distinct_udp_and_tcp_forwards_of_one_port_are_fine():
    text = BASE.replace(FORWARD, FORWARD + "\n        - {port: 8080, to: 192.168.100.11, "
                                           "protocol: udp}")
    assert len(parse_inventory(text, "x.yaml").hosts["xen0"].vars["port_forwards"]) == 2
