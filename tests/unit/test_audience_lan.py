"""The audience's LAN behind the router, from hosts/lab.yaml (no host): the lab's topology
plan (runbooks/lab/plan.py: a LAN segment beside the VLAN, the router on it, the client's
default route the router's LAN address) and the gateway's way back (runbooks/dell_gateway/
routes.py: the LAN routed via the router's VLAN address, live and at boot)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from runbooks.core.facts import FILE_STAT_SEPARATOR, FactResult
from runbooks.core.inventory import load_inventory, parse_inventory
from runbooks.core.steps import StepFailed
from runbooks.dell_gateway.routes import (
    UNIT_PATH,
    DroppedRoutes,
    UnitRemoved,
    lan_routes,
    live_routes,
    recorded_routes,
    route_steps,
)
from runbooks.lab.plan import PlanError, make_plan

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "hosts" / "lab.yaml"
LAN = IPv4Network("192.168.30.0/24")


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(str(LAB))


def variant(old: str, new: str):
    """hosts/lab.yaml with one text replaced (it must occur once)."""
    text = LAB.read_text()
    assert text.count(old) == 1, old
    return parse_inventory(text.replace(old, new), "hosts/site.yaml")


def test_the_lan_is_a_segment_of_its_own_with_the_router_on_it(inventory):
    plan = make_plan(inventory)
    assert plan.lan_bridges == {LAN: "lan0"}
    edge, audience, laptop = (plan.guest(n) for n in ("edge", "audience", "laptop"))
    assert [(i, a, b) for i, a, _p, b in edge.lans] == [
        ("eth1", IPv4Interface("192.168.30.1/24"), "lan0")]
    assert edge.default_route == IPv4Address("192.168.10.2")  # the router's own: the gateway
    # the audience: on the LAN only, its default route the router's LAN address
    assert audience.vlan_if is None and audience.upstream_if is None
    assert [(i, a, b) for i, a, _p, b in audience.lans] == [
        ("eth0", IPv4Interface("192.168.30.10/24"), "lan0")]
    assert (audience.default_route, audience.default_dev) == (IPv4Address("192.168.30.1"),
                                                              "eth0")
    assert audience.accept_redirects is False
    # the laptop on the VLAN is as before
    assert (laptop.default_route, laptop.default_dev, laptop.lans) == (
        IPv4Address("192.168.10.6"), None, [])
    ports = [p for g in plan.guests for _i, _a, p, _b in g.lans]
    assert len(set(ports)) == len(ports) and all(len(p) <= 15 for p in ports)


@pytest.mark.parametrize("old, new, says", [
    pytest.param("lab: {kind: systemd, seed: [frr-caps], lan: {eth1: 192.168.30.1/24}}",
                 "lab: {kind: systemd, seed: [frr-caps]}",
                 "hosts.audience.lab.lan.eth0: no host with role router is on 192.168.30.0/24",
                 id="no-router-on-the-lan"),
    pytest.param("lan: {eth0: 192.168.30.10/24}", "lan: {eth0: 10.231.1.10/24}",
                 "overlaps 10.231.1.0/24", id="lan-overlaps-upstream"),
    pytest.param("lan: {eth1: 192.168.30.1/24}", "lan: {eth0: 192.168.30.1/24}",
                 "hosts.edge.lab.lan.eth0: eth0 is already this host's VLAN, parent",
                 id="lan-on-the-vlan-parent"),
])
def test_a_lan_the_lab_cannot_make_is_refused_with_the_fix(old, new, says):
    with pytest.raises(PlanError) as raised:
        make_plan(variant(old, new))
    assert says in str(raised.value)


def test_the_gateway_routes_the_lan_via_the_routers_vlan_address(inventory):
    dell = inventory.hosts["dell"]
    [route] = lan_routes(dell, inventory)
    assert (route.subnet, route.via, route.dev, route.router) == (
        LAN, IPv4Address("192.168.10.6"), "eth1.100", "edge")
    assert route.replace() == "ip route replace 192.168.30.0/24 via 192.168.10.6 dev eth1.100"
    assert route.present() == ('[ -n "$(ip -4 route show to exact 192.168.30.0/24 via '
                               '192.168.10.6 dev eth1.100)" ]')
    steps = route_steps(dell, inventory)
    assert [s.name for s in steps] == [
        "Ensure no route to a LAN the inventory dropped",
        "Ensure the route to 192.168.30.0/24 via edge (192.168.10.6)",
        "Ensure /etc/systemd/system/greenroom-routes.service",
        "Ensure systemd has read greenroom-routes.service",
        "Ensure greenroom-routes.service enabled"]
    unit = steps[2].content
    assert "ExecStart=/sbin/ip route replace 192.168.30.0/24 via 192.168.10.6 dev eth1.100" \
        in unit
    assert "WantedBy=multi-user.target" in unit


def test_without_lans_the_gateway_removes_what_it_routed_and_the_unit():
    site = variant("lans: {edge: [192.168.30.0/24]}\n", "")
    # the lab's audience then has no router on its LAN: only the gateway's part is asked here
    steps = route_steps(site.hosts["dell"], site)
    assert [s.name for s in steps] == [
        "Ensure no route to a LAN the inventory dropped",
        "Ensure greenroom-routes.service disabled and stopped",
        f"Ensure no {UNIT_PATH} (no LAN left in the inventory's lans:)"]


UNIT_OF_TWO = """[Service]
ExecStart=/bin/sh -c 'for i in $(seq 150); do ip -4 -o addr show dev eth1.100; done'
ExecStart=/sbin/ip route replace 192.168.30.0/24 via 192.168.10.6 dev eth1.100
ExecStart=/sbin/ip route replace 192.168.31.0/24 via 192.168.10.6 dev eth1.100
"""
TABLE = """default via 10.231.0.1 dev mgmt0 onlink
10.231.0.0/24 dev mgmt0 proto kernel scope link src 10.231.0.2
192.168.10.0/25 dev eth1.100 proto kernel scope link src 192.168.10.2
192.168.30.0/24 via 192.168.10.6 dev eth1.100
192.168.31.0/24 via 192.168.10.6 dev eth1.100
"""


def unit_fact(content: str | None) -> FactResult:
    if content is None:
        return FactResult(1, "")
    return FactResult(0, f"644 root root\n{FILE_STAT_SEPARATOR}\n{content}")


def test_the_unit_records_the_routes_it_makes_and_the_table_is_read():
    assert recorded_routes(UNIT_OF_TWO) == [("192.168.30.0/24", "192.168.10.6", "eth1.100"),
                                            ("192.168.31.0/24", "192.168.10.6", "eth1.100")]
    assert recorded_routes(None) == []
    assert live_routes(TABLE) == {("default", "10.231.0.1", "mgmt0"),
                                  ("192.168.30.0/24", "192.168.10.6", "eth1.100"),
                                  ("192.168.31.0/24", "192.168.10.6", "eth1.100")}


@pytest.mark.parametrize("unit, table, removed", [
    pytest.param(UNIT_OF_TWO, TABLE, ["ip route del 192.168.31.0/24 via 192.168.10.6 dev eth1.100"],
                 id="dropped-lan-live-is-deleted"),
    pytest.param(UNIT_OF_TWO, TABLE.replace("192.168.31.0/24 via 192.168.10.6 dev eth1.100\n",
                                            ""), [], id="dropped-lan-already-gone"),
    pytest.param(UNIT_OF_TWO, TABLE.replace("192.168.31.0/24 via 192.168.10.6",
                                            "192.168.31.0/24 via 192.168.10.9"),
                 [], id="route-pointed-elsewhere-by-someone-is-left"),
    pytest.param(None, TABLE, [], id="no-unit-nothing-is-ours"),
    pytest.param(UNIT_OF_TWO.replace(
        "ExecStart=/sbin/ip route replace 192.168.31.0/24 via 192.168.10.6 dev eth1.100\n", ""),
        TABLE, [], id="only-wanted-lans-recorded"),
])
def test_a_dropped_lan_s_route_is_deleted_as_it_was_made(inventory, unit, table, removed):
    wanted = lan_routes(inventory.hosts["dell"], inventory)  # 192.168.30.0/24 only
    changes = DroppedRoutes(wanted).plan({"unit": unit_fact(unit), "table": FactResult(0, table)})
    assert [a.command for c in changes for a in c.actions] == removed
    assert all("no longer in the inventory's lans:" in c.summary for c in changes)


def test_with_no_lan_left_every_recorded_route_goes():
    changes = DroppedRoutes([]).plan({"unit": unit_fact(UNIT_OF_TWO),
                                      "table": FactResult(0, TABLE)})
    assert [a.command for c in changes for a in c.actions] == [
        "ip route del 192.168.30.0/24 via 192.168.10.6 dev eth1.100",
        "ip route del 192.168.31.0/24 via 192.168.10.6 dev eth1.100"]


def test_an_unreadable_routing_table_fails_the_step_with_what_to_do():
    with pytest.raises(StepFailed, match="is iproute2 installed"):
        DroppedRoutes([]).plan({"unit": unit_fact(UNIT_OF_TWO),
                                "table": FactResult(127, "sh: ip: not found")})


def test_the_unit_is_removed_with_a_backup_and_a_diff_to_nothing():
    [change] = UnitRemoved().plan({"file": unit_fact(UNIT_OF_TWO)})
    [action] = change.actions
    assert "cp -p /etc/systemd/system/greenroom-routes.service " \
           "/var/backups/greenroom/etc/systemd/system/greenroom-routes.service." in action.command
    assert action.command.endswith(f"rm -f {UNIT_PATH} && systemctl daemon-reload")
    assert f"--- {UNIT_PATH}\n+++ /dev/null" in change.diff
    assert "-ExecStart=/sbin/ip route replace 192.168.31.0/24" in change.diff
    assert UnitRemoved().plan({"file": unit_fact(None)}) == []


def test_a_router_off_the_vlan_cannot_take_the_way_back():
    site = variant("vlan: {parent: eth0, address: 192.168.10.6/25}\n    vars: {kind: frr",
                   "vars: {kind: frr")
    with pytest.raises(StepFailed, match="is not on the VLAN 192.168.10.0/25"):
        lan_routes(site.hosts["dell"], site)
