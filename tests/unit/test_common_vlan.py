"""VLAN interfaces (runbooks.common.vlan, the gateway's and the boards'): (host facts) ->
chosen backend, steps and planned commands."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from runbooks.common.links import LinkState, parse_link
from runbooks.common.vlan import (
    BACKEND_FACTS,
    IFUPDOWN,
    NETPLAN,
    NETPLAN_FILE_MARK,
    NETWORK_MANAGER,
    SYSTEMD,
    NmConnection,
    choose_backend,
    ensure_interfaces_d,
    netplan_defines,
    netplan_files,
    nm_connection,
    vlan_facts,
    vlan_steps,
)
from runbooks.core.facts import FILE_STAT_SEPARATOR, FactResult
from runbooks.core.inventory import load_inventory
from runbooks.core.steps import StepFailed

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(str(ROOT / "hosts" / "lab.yaml"))
DELL = INV.hosts["dell"]
ADDR = IPv4Interface("192.168.10.2/25")
OK, FAIL = FactResult(0, ""), FactResult(1, "")


def link_json(kind: str | None = "vlan", vlan_id: int = 100, parent: str = "eth1",
              addresses: tuple[str, ...] = (), up: bool = True, name: str = "eth1.100") -> str:
    entry: dict = {"ifname": name, "flags": ["BROADCAST", "MULTICAST"] + (["UP"] if up else []),
                   "operstate": "UP" if up else "DOWN", "addr_info": []}
    if kind == "vlan":
        entry["link"] = parent
        entry["linkinfo"] = {"info_kind": "vlan", "info_data": {"protocol": "802.1Q",
                                                                 "id": vlan_id}}
    elif kind:
        entry["linkinfo"] = {"info_kind": kind}
    for a in addresses:
        ip, prefix = a.split("/")
        entry["addr_info"].append({"family": "inet", "local": ip, "prefixlen": int(prefix)})
    entry["addr_info"].append({"family": "inet6", "local": "fe80::1", "prefixlen": 64})
    return json.dumps([entry])


def link(**kw) -> FactResult:
    return FactResult(0, link_json(**kw))


NETPLAN_ETH1 = (f"{NETPLAN_FILE_MARK}/etc/netplan/50-cloud-init.yaml\n"
                "network:\n  version: 2\n  ethernets:\n    eth1:\n      dhcp4: true\n")


def facts(link_fact: FactResult = FAIL, nm=FAIL, netplan=FAIL, ifupdown=FAIL, systemd=OK):
    return {"vlan.link": link_fact, "vlan.nm": nm, "vlan.netplan": netplan,
            "vlan.ifupdown": ifupdown, "vlan.systemd": systemd}


@pytest.mark.parametrize(("given", "backend"), [
    (facts(nm=OK, netplan=FactResult(0, NETPLAN_ETH1), ifupdown=OK), "nmcli"),
    (facts(netplan=FactResult(0, NETPLAN_ETH1), ifupdown=OK), "netplan"),
    (facts(netplan=FactResult(0, ""), ifupdown=OK), "ifupdown"),  # netplan without files
    (facts(ifupdown=OK), "ifupdown"),
    (facts(), "iproute2"),
], ids=["networkmanager-wins", "netplan", "netplan-no-files", "ifupdown", "plain-iproute2"])
def test_choose_backend(given, backend):
    assert choose_backend(given) == backend


def step_types(steps) -> list[str]:
    return [type(s).__name__ for s in steps]


@pytest.mark.parametrize(("given", "types"), [
    (facts(nm=OK), ["NmConnection", "LinkState"]),
    (facts(netplan=FactResult(0, NETPLAN_ETH1)), ["File", "LinkState"]),
    (facts(ifupdown=OK), ["Edit", "File", "LinkState"]),
    (facts(), ["KernelModule", "File", "Command", "LinkState", "Service"]),
    # the lab: eth1.100 is a veth the lab provides; even with NetworkManager running,
    # greenroom converges only its address, with iproute2 (no 8021q, no creation)
    (facts(link(kind="veth"), nm=OK), ["File", "Command", "LinkState", "Service"]),
    (facts(link(kind=None)), ["File", "Command", "LinkState", "Service"]),
], ids=["nmcli", "netplan", "ifupdown", "iproute2", "provided-veth", "provided-physical"])
def test_steps_per_backend(given, types):
    assert step_types(vlan_steps(DELL, INV, given)) == types


def test_provided_link_unit_only_sets_address():
    steps = vlan_steps(DELL, INV, facts(link(kind="veth")))
    unit = steps[0].content
    assert "type vlan" not in unit
    assert "ExecStart=/sbin/ip addr replace 192.168.10.2/25 dev eth1.100" in unit
    assert "/sys/class/net/eth1.100" in unit  # waits for the provided interface
    assert steps[0].path == "/etc/systemd/system/greenroom-vlan-eth1.100.service"


def test_created_link_unit_creates_the_vlan_on_its_parent():
    unit = vlan_steps(DELL, INV, facts())[1].content
    assert ("ip link add link eth1 name eth1.100 type vlan id 100" in unit
            and "/sys/class/net/eth1 ]" in unit)


def test_unmanaged_vlan_is_only_checked():
    host = dataclasses.replace(DELL, vlan=dataclasses.replace(DELL.vlan, managed=False))
    (step,) = vlan_steps(host, INV, facts(nm=OK))
    assert isinstance(step, LinkState) and not step.manage
    assert step.plan({"link": link(kind="veth", addresses=("192.168.10.2/25",))}) == []
    with pytest.raises(StepFailed, match="vlan.managed is false"):
        step.plan({"link": link(kind="veth")})


def test_too_long_name_refused_with_suggestion():
    vlan = dataclasses.replace(DELL.vlan, name="enxf8e43b5d5048.100")
    with pytest.raises(StepFailed, match=r"19 characters.*allows 15.*e\.g\."):
        vlan_steps(dataclasses.replace(DELL, vlan=vlan), INV, facts())


def test_no_systemd_and_no_network_tool_is_an_error():
    with pytest.raises(StepFailed, match="persistent"):
        vlan_steps(DELL, INV, facts(systemd=FAIL))


# -- LinkState: live state -> ip commands (or the backend's activation) --------------------

def plan_link(step: LinkState, fact: FactResult) -> list[tuple[str, list[str]]]:
    return [(c.summary, [a.command for a in c.actions]) for c in step.plan({"link": fact})]


@pytest.mark.parametrize(("fact", "expected"), [
    (FAIL, [("create VLAN 100 on eth1 eth1.100 with 192.168.10.2/25",
             ["ip link add link eth1 name eth1.100 type vlan id 100 && "
              "ip addr replace 192.168.10.2/25 dev eth1.100 && ip link set dev eth1.100 up"])]),
    (link(addresses=("192.168.10.2/25",)), []),
    (link(), [("add 192.168.10.2/25 to eth1.100 (has no IPv4 address)",
               ["ip addr replace 192.168.10.2/25 dev eth1.100"])]),
    (link(addresses=("192.168.10.2/25",), up=False),
     [("bring eth1.100 up", ["ip link set dev eth1.100 up"])]),
    (link(addresses=("192.168.10.2/24",)),
     [("add 192.168.10.2/25 to eth1.100 (has 192.168.10.2/24)",
       ["ip addr replace 192.168.10.2/25 dev eth1.100"])]),
], ids=["absent-created", "converged", "no-address", "down", "wrong-prefix"])
def test_link_state_with_ip(fact, expected):
    assert plan_link(LinkState("eth1.100", "eth1", 100, ADDR), fact) == expected


def test_link_state_with_backend_activation_is_one_change():
    step = LinkState("eth1.100", "eth1", 100, ADDR, apply="nmcli connection up eth1.100")
    assert plan_link(step, link(up=False)) == [
        ("add 192.168.10.2/25 to eth1.100 (has no IPv4 address); bring eth1.100 up",
         ["nmcli connection up eth1.100"])]


@pytest.mark.parametrize("fact", [link(vlan_id=200), link(parent="eth0")],
                         ids=["other-vlan-id", "other-parent"])
def test_link_state_refuses_a_different_vlan(fact):
    with pytest.raises(StepFailed, match="ip link delete eth1.100"):
        LinkState("eth1.100", "eth1", 100, ADDR).plan({"link": fact})


def test_parse_link_reads_kind_id_parent_and_ipv4_only():
    info = parse_link("eth1.100", link(addresses=("192.168.10.2/25",)))
    assert (info.kind, info.vlan_id, info.parent, info.up, info.addresses) == (
        "vlan", 100, "eth1", True, (ADDR,))
    assert not parse_link("eth1.100", FactResult(1, 'Device "eth1.100" does not exist.')).exists


# -- nmcli ------------------------------------------------------------------------------------

NM_GOOD = "vlan\neth1.100\neth1\n100\nmanual\n192.168.10.2/25\nyes\n"


@pytest.mark.parametrize(("fact", "expected"), [
    (FactResult(10, "Error: eth1.100 - no such connection profile."),
     ["nmcli connection add type vlan con-name eth1.100 ifname eth1.100 vlan.parent eth1 "
      "vlan.id 100 ipv4.method manual ipv4.addresses 192.168.10.2/25 "
      "connection.autoconnect yes"]),
    (FactResult(0, NM_GOOD), []),
    (FactResult(0, NM_GOOD.replace("192.168.10.2/25", "192.168.10.9/25")),
     ["nmcli connection modify eth1.100 ipv4.addresses 192.168.10.2/25"]),
    (FactResult(0, NM_GOOD.replace("manual", "auto").replace("\nyes", "\nno")),
     ["nmcli connection modify eth1.100 ipv4.method manual connection.autoconnect yes"]),
], ids=["absent-added", "converged", "address-modified", "method-and-autoconnect"])
def test_nmcli_connection(fact, expected):
    step = NmConnection("eth1.100", "eth1", 100, "192.168.10.2/25")
    assert [a.command for c in step.plan({"con": fact}) for a in c.actions] == expected


@pytest.mark.parametrize(("result", "wanted"), [
    (FactResult(0, NM_GOOD), {"connection.type": "vlan", "connection.interface-name": "eth1.100",
                              "vlan.parent": "eth1", "vlan.id": "100", "ipv4.method": "manual",
                              "ipv4.addresses": "192.168.10.2/25",
                              "connection.autoconnect": "yes"}),
    (FactResult(0, "vlan\neth1.100\n"), {"connection.type": "vlan",
                                          "connection.interface-name": "eth1.100"}),
    (FactResult(10, "Error: eth1.100 - no such connection profile."), None),
], ids=["all-fields", "fewer-lines", "no-profile"])
def test_nm_connection_parser(result, wanted):
    fact = nm_connection("eth1.100")
    assert fact.command.endswith(" connection show eth1.100")
    assert fact.parse(result) == wanted


def test_nmcli_refuses_a_profile_of_another_type():
    with pytest.raises(StepFailed, match="type 802-3-ethernet, not vlan"):
        NmConnection("eth1.100", "eth1", 100, "192.168.10.2/25").plan(
            {"con": FactResult(0, NM_GOOD.replace("vlan\n", "802-3-ethernet\n", 1))})


# -- netplan / ifupdown -------------------------------------------------------------------------

def test_netplan_file_is_a_vlans_section():
    steps = vlan_steps(DELL, INV, facts(netplan=FactResult(0, NETPLAN_ETH1)))
    assert steps[0].path == "/etc/netplan/60-greenroom-eth1.100.yaml"
    assert steps[0].mode == "600"
    import yaml
    assert yaml.safe_load(steps[0].content) == {"network": {"version": 2, "vlans": {
        "eth1.100": {"id": 100, "link": "eth1", "addresses": ["192.168.10.2/25"]}}}}
    assert steps[1].apply == "netplan generate && netplan apply"


def test_netplan_needs_the_parent_declared():
    other = NETPLAN_ETH1.replace("eth1:", "eth0:")
    with pytest.raises(StepFailed, match="does not declare eth1"):
        vlan_steps(DELL, INV, facts(netplan=FactResult(0, other)))


def test_netplan_files_and_defines():
    files = netplan_files(NETPLAN_ETH1 + f"{NETPLAN_FILE_MARK}/etc/netplan/x.yaml\n: bad: [\n")
    assert list(files) == ["/etc/netplan/50-cloud-init.yaml", "/etc/netplan/x.yaml"]
    assert netplan_defines(files, "eth1") and not netplan_defines(files, "eth2")


TWO_FILES = (f"{NETPLAN_FILE_MARK}/etc/netplan/01-a.yaml\nnetwork:\n  version: 2\n"
             f"{NETPLAN_FILE_MARK}/etc/netplan/02-b.yaml\n")


@pytest.mark.parametrize(("fact", "result", "wanted"), [
    (NETWORK_MANAGER, OK, True),
    (NETWORK_MANAGER, FAIL, False),
    (IFUPDOWN, OK, True),
    (IFUPDOWN, FactResult(1, "/usr/sbin/ifup\n"), False),  # ifup without interfaces
    (SYSTEMD, OK, True),
    (SYSTEMD, FAIL, False),
    (NETPLAN, FactResult(0, TWO_FILES),
     {"/etc/netplan/01-a.yaml": "network:\n  version: 2\n", "/etc/netplan/02-b.yaml": ""}),
    (NETPLAN, FactResult(0, ""), {}),                 # netplan installed, no file
    (NETPLAN, FactResult(1, ""), {}),                 # no netplan
    (NETPLAN, FactResult(1, TWO_FILES), {}),          # cat failed: nothing trusted
    (NETPLAN, FactResult(0, "stray line\n"), {}),     # text before any file mark
], ids=["nm-running", "nm-absent", "ifupdown", "ifup-without-interfaces", "systemd",
        "no-systemd", "netplan-two-files", "netplan-no-file", "no-netplan",
        "netplan-listing-failed", "netplan-stray-text"])
def test_backend_fact_parsers(fact, result, wanted):
    assert fact.parse(result) == wanted


def test_netplan_listing_on_a_real_shell(tmp_path):
    """The listing's loop, run by sh over a folder whose last *.yaml is a directory: the
    files before it are listed and the command succeeds."""
    import subprocess

    (tmp_path / "01-a.yaml").write_text("network: {version: 2}\n")
    (tmp_path / "99-z.yaml").mkdir()
    script = NETPLAN.command.replace("command -v netplan >/dev/null && ", "").replace(
        "/etc/netplan", str(tmp_path))
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert NETPLAN.parse(FactResult(done.returncode, done.stdout)) == {
        f"{tmp_path}/01-a.yaml": "network: {version: 2}\n"}


def test_backend_facts_are_gathered_under_their_names():
    commands = vlan_facts(DELL)
    assert commands["vlan.link"] == "ip -d -j addr show dev eth1.100"
    assert {f.name: f.command for f in BACKEND_FACTS}.items() <= commands.items()
    assert len(commands) == 1 + len(BACKEND_FACTS)


@pytest.mark.parametrize(("content", "wanted"), [
    (None, "source /etc/network/interfaces.d/*\n"),
    ("auto lo\niface lo inet loopback\n",
     "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n"),
    ("source /etc/network/interfaces.d/*\n", "source /etc/network/interfaces.d/*\n"),
    ("source-directory /etc/network/interfaces.d\n",
     "source-directory /etc/network/interfaces.d\n"),
], ids=["missing-file", "appended", "already-sourced", "source-directory-kept"])
def test_ensure_interfaces_d(content, wanted):
    assert ensure_interfaces_d(content) == wanted


def test_ifupdown_stanza():
    steps = vlan_steps(DELL, INV, facts(ifupdown=OK))
    stanza = steps[1]
    assert stanza.path == "/etc/network/interfaces.d/greenroom-eth1_100"  # no dots
    assert "iface eth1.100 inet static\n    address 192.168.10.2/25\n" in stanza.content
    assert "ip link add link eth1 name eth1.100 type vlan id 100" in stanza.content
    existing = FactResult(0, f"644 root root\n{FILE_STAT_SEPARATOR}\n{stanza.content}")
    assert stanza.plan({"file": existing}) == []
