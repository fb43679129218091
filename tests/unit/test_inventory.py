"""Tests for the inventory model and its validation (runbooks.core.inventory).

Bad inputs are built by mutating one good inventory text, so every expected line number is
the real line of the offending key in the mutated file.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from runbooks.core.inventory import (
    InventoryError,
    Problem,
    load_inventory,
    parse_inventory,
)
from runbooks.lab.schema import HostLab, host_lab, lab_of

ROOT = Path(__file__).resolve().parents[2]
FILE = "hosts/test.yaml"

GOOD = """\
site: test
defaults: {user: root, port: 22}
network:
  vlan: {id: 100}
  subnet: 192.168.10.0/25
  gateway: 192.168.10.2
  dhcp:
    range: [192.168.10.26, 192.168.10.126]
    dns: [192.168.10.2, 8.8.8.8]
    default_lease: 600
    max_lease: 7200
  vip: 192.168.10.25
registry: {host: dell, port: 5001, runtime: package}
lab:
  management: 10.231.0.0/24
  upstream: 10.231.1.0/24
  clients: [microvm]
hosts:
  dell:
    address: 10.231.0.2
    roles: [gateway, registry]
    vlan: {parent: eth1, name: eth1.100}
    upstream: eth1
    lab: {kind: systemd}
  rp0:
    address: 10.231.0.3
    roles: [pi]
    board: raspberrypi
    vlan: {parent: eth0, address: 192.168.10.3/25}
    lab: {kind: chroot, boot: firmware, seed: [dphys-swapfile]}
  rp1:
    address: 10.231.0.4
    port: 2222
    user: ubuntu
    via: dell
    roles: [pi, microk8s]
    board: lepotato
    vlan:
      parent: eth0
      address: 192.168.10.4/25
    vars: {rng_tools: false}
"""

NO_LAB = ("lab:\n  management: 10.231.0.0/24\n  upstream: 10.231.1.0/24\n  clients: [microvm]\n",
          "")
NO_HOST_LAB = [NO_LAB, ("    lab: {kind: systemd}\n", ""),
               ("    lab: {kind: chroot, boot: firmware, seed: [dphys-swapfile]}\n", "")]
ALL_HOSTS = (GOOD[GOOD.index("  dell:\n"):], "")


def mutate(*edits: tuple[str, str]) -> str:
    """GOOD with each (old, new) applied; `old` must occur exactly once."""
    text = GOOD
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of `text` containing `needle`."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def problems_of(text: str) -> list[Problem]:
    """The problems parse_inventory reports for `text` (it must fail)."""
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, FILE)
    return caught.value.problems


def case(case_id, edits, key, needle, fragment):
    """One bad-input case: edits to GOOD, expected key, a needle on the expected line, and a
    fragment of the expected message."""
    return pytest.param(edits, key, needle, fragment, id=case_id)


BAD_CASES = [
    # YAML itself
    case("yaml-tab-indent", [("  subnet:", "\tsubnet:")], "", "\tsubnet", "column 1"),
    case("yaml-unclosed-flow", [("roles: [pi]\n", "roles: [pi\n")], "", "    board: raspberrypi",
         "YAML syntax error"),
    case("yaml-duplicate-key", [("  gateway: 192.168.10.2\n",
                                 "  gateway: 192.168.10.2\n  subnet: 192.168.10.0/24\n")],
         "network.subnet", "192.168.10.0/24", "appears twice (first at line 5)"),
    # unknown / misspelt / missing keys
    case("top-misspelt", [("defaults:", "default:")], "default", "default:",
         "did you mean 'defaults'?"),
    case("network-misspelt", [("  vip:", "  vips:")], "network.vips", "vips:",
         "did you mean 'vip'?"),
    case("dhcp-misspelt", [("max_lease:", "max_leases:")], "network.dhcp.max_leases",
         "max_leases", "did you mean 'max_lease'?"),
    case("host-misspelt", [("    board: raspberrypi", "    bord: raspberrypi")],
         "hosts.rp0.bord", "bord:", "did you mean 'board'?"),
    case("vlan-misspelt", [("{parent: eth0, address:", "{parent: eth0, adress:")],
         "hosts.rp0.vlan.adress", "adress", "did you mean 'address'?"),
    case("registry-misspelt", [("runtime: package", "runtme: package")], "registry.runtme",
         "runtme", "did you mean 'runtime'?"),
    case("unknown-key-no-match", [("  upstream: 10.231.1.0/24", "  zzz: 1")], "lab.zzz",
         "zzz", "allowed keys: management, upstream, clients"),
    case("site-missing", [("site: test\n", "")], "site", "defaults:",
         "missing required key 'site'"),
    case("site-empty", [("site: test", "site:")], "site", "site:", "'site' is empty"),
    case("subnet-missing", [("  subnet: 192.168.10.0/25\n", "")], "network.subnet",
         "network:", "missing required key 'subnet'"),
    case("host-address-missing", [("    address: 10.231.0.3\n", "")], "hosts.rp0.address",
         "  rp0:", "missing required key 'address'"),
    case("hosts-empty", [ALL_HOSTS, ("hosts:\n", "hosts: {}\n")], "hosts", "hosts:",
         "no hosts defined"),
    case("hosts-not-mapping", [ALL_HOSTS, ("hosts:\n", "hosts: [dell, rp0]\n")], "hosts",
         "hosts:", "must be a mapping"),
    # types and ranges
    case("port-not-int", [("port: 2222", "port: twenty")], "hosts.rp1.port", "twenty",
         "must be an integer"),
    case("port-out-of-range", [("port: 2222", "port: 65536")], "hosts.rp1.port", "65536",
         "between 1 and 65535"),
    case("defaults-port-zero", [("port: 22}", "port: 0}")], "defaults.port", "defaults:",
         "0 is out of range"),
    case("roles-not-list", [("    roles: [pi]\n", "    roles: pi\n")], "hosts.rp0.roles",
         "roles: pi", "must be a list of role names"),
    case("managed-not-bool", [("      parent: eth0\n", "      parent: eth0\n      managed: 3\n")],
         "hosts.rp1.vlan.managed", "managed: 3", "must be true or false"),
    case("vars-not-mapping", [("vars: {rng_tools: false}", "vars: [rng_tools]")],
         "hosts.rp1.vars", "vars:", "must be a mapping"),
    case("vars-misspelt", [("vars: {rng_tools: false}", "vars: {rngtools: false}")],
         "hosts.rp1.vars.rngtools", "vars:", "unknown key 'rngtools'; did you mean 'rng_tools'?"),
    case("vars-wrong-type", [("vars: {rng_tools: false}", "vars: {rng_tools: 1}")],
         "hosts.rp1.vars.rng_tools", "vars:", "must be true or false"),
    case("no-user-anywhere", [("{user: root, port: 22}", "{port: 22}")], "hosts.dell.user",
         "  dell:", "set defaults.user or hosts.dell.user"),
    case("vlan-id-zero", [("{id: 100}", "{id: 0}")], "network.vlan.id", "id: 0",
         "between 1 and 4094"),
    case("vlan-id-4095", [("{id: 100}", "{id: 4095}")], "network.vlan.id", "id: 4095",
         "between 1 and 4094"),
    case("vlan-id-text", [("{id: 100}", "{id: ten}")], "network.vlan.id", "id: ten",
         "must be an integer"),
    # interface names
    case("vlan-name-too-long", [("name: eth1.100", "name: enxf8e43b5d5048.100")],
         "hosts.dell.vlan.name", "enxf8e43b5d5048.100", "e.g. 'enx.100' or 'enxf8e43b5d.100'"),
    case("vlan-default-name-too-long",
         [("{parent: eth1, name: eth1.100}", "{parent: enxf8e43b5d5048}")],
         "hosts.dell.vlan.name", "enxf8e43b5d5048", "default name 'enxf8e43b5d5048.100'"),
    case("vlan-name-bad-chars", [("name: eth1.100", "name: eth1/100")], "hosts.dell.vlan.name",
         "eth1/100", "characters Linux refuses"),
    case("parent-too-long", [("{parent: eth0, address", "{parent: averyverylongparent0, address")],
         "hosts.rp0.vlan.parent", "averyverylongparent0", "is 20 characters"),
    case("upstream-space", [("    upstream: eth1", "    upstream: eth 1")], "hosts.dell.upstream",
         "eth 1", "characters Linux refuses"),
    case("vlan-no-parent-no-name", [("{parent: eth0, address: 192.168.10.3/25}",
                                     "{address: 192.168.10.3/25}")],
         "hosts.rp0.vlan.name", "{address: 192.168.10.3/25}", "needs 'parent'"),
    # subnet, gateway
    case("subnet-host-bits", [("subnet: 192.168.10.0/25", "subnet: 192.168.10.1/25")],
         "network.subnet", "192.168.10.1/25", "did you mean 192.168.10.0/25?"),
    case("subnet-bad-prefix", [("subnet: 192.168.10.0/25", "subnet: 192.168.10.0/33")],
         "network.subnet", "/33", "not a valid network"),
    case("subnet-no-prefix", [("subnet: 192.168.10.0/25", "subnet: 192.168.10.0")],
         "network.subnet", "subnet:", "CIDR"),
    case("gateway-outside", [("gateway: 192.168.10.2", "gateway: 192.168.11.2")],
         "network.gateway", "192.168.11.2", "outside the subnet"),
    case("gateway-network-address", [("gateway: 192.168.10.2", "gateway: 192.168.10.0")],
         "network.gateway", "gateway: 192.168.10.0", "is the network address"),
    case("gateway-broadcast", [("gateway: 192.168.10.2", "gateway: 192.168.10.127")],
         "network.gateway", "192.168.10.127", "is the broadcast address"),
    case("gateway-not-ip", [("gateway: 192.168.10.2", "gateway: router")], "network.gateway",
         "gateway: router", "not an IPv4 address"),
    # DHCP
    case("dhcp-range-reversed", [("[192.168.10.26, 192.168.10.126]",
                                  "[192.168.10.126, 192.168.10.26]")],
         "network.dhcp.range", "range:", "reversed"),
    case("dhcp-range-outside", [("192.168.10.126]", "192.168.10.200]")], "network.dhcp.range",
         "range:", "192.168.10.200 outside the subnet"),
    case("dhcp-range-has-gateway", [("[192.168.10.26,", "[192.168.10.1,")],
         "network.dhcp.range", "range:", "contains the gateway address 192.168.10.2"),
    case("dhcp-range-has-network", [("[192.168.10.26,", "[192.168.10.0,")],
         "network.dhcp.range", "range:", "contains the network address"),
    case("dhcp-range-has-broadcast", [("192.168.10.126]", "192.168.10.127]")],
         "network.dhcp.range", "range:", "contains the broadcast address"),
    case("dhcp-range-one-item", [("[192.168.10.26, 192.168.10.126]", "[192.168.10.26]")],
         "network.dhcp.range", "range:", "two addresses"),
    case("dhcp-range-bad-ip", [("[192.168.10.26,", "[192.168.10.260,")],
         "network.dhcp.range[0]", "range:", "'192.168.10.260' is not an IPv4 address"),
    case("dns-not-ip", [("dns: [192.168.10.2, 8.8.8.8]",
                         "dns:\n      - 192.168.10.2\n      - dns.google")],
         "network.dhcp.dns[1]", "dns.google", "not a DNS server IP address"),
    case("dns-empty", [("dns: [192.168.10.2, 8.8.8.8]", "dns: []")], "network.dhcp.dns",
         "dns: []", "non-empty list"),
    case("lease-zero", [("default_lease: 600", "default_lease: 0")],
         "network.dhcp.default_lease", "default_lease", "at least 1"),
    case("lease-text", [("max_lease: 7200", "max_lease: 2h")], "network.dhcp.max_lease",
         "max_lease", "must be an integer"),
    case("lease-default-above-max", [("default_lease: 600", "default_lease: 9000")],
         "network.dhcp.default_lease", "default_lease", "above max_lease 7200"),
    # VIP
    case("vip-outside", [("vip: 192.168.10.25", "vip: 192.168.10.200")], "network.vip",
         "vip:", "outside the subnet"),
    case("vip-in-pool", [("vip: 192.168.10.25", "vip: 192.168.10.30")], "network.vip",
         "vip:", "inside the DHCP pool 192.168.10.26-192.168.10.126"),
    case("vip-is-gateway", [("vip: 192.168.10.25", "vip: 192.168.10.2")], "network.vip",
         "vip:", "is the gateway address"),
    # host VLAN addresses
    case("host-vlan-in-pool", [("192.168.10.3/25", "192.168.10.30/25")],
         "hosts.rp0.vlan.address", "192.168.10.30/25",
         "192.168.10.30/25 is inside the DHCP pool 192.168.10.26-192.168.10.126; pick an "
         "address outside it"),
    case("host-vlan-outside", [("192.168.10.3/25", "192.168.20.3/25")],
         "hosts.rp0.vlan.address", "192.168.20.3/25", "outside the subnet"),
    case("host-vlan-prefix", [("192.168.10.3/25", "192.168.10.3/24")],
         "hosts.rp0.vlan.address", "192.168.10.3/24", "write 192.168.10.3/25"),
    case("host-vlan-no-prefix", [("192.168.10.3/25", "192.168.10.3")],
         "hosts.rp0.vlan.address", "address: 192.168.10.3}", "address with prefix"),
    case("host-vlan-twice", [("192.168.10.4/25", "192.168.10.3/25")],
         "hosts.rp1.vlan.address", "      address: 192.168.10.3/25",
         "already used by host 'rp0'"),
    case("host-vlan-is-gateway", [("192.168.10.3/25", "192.168.10.2/25")],
         "hosts.rp0.vlan.address", "192.168.10.2/25", "is the gateway address"),
    case("host-vlan-is-vip", [("192.168.10.3/25", "192.168.10.25/25")],
         "hosts.rp0.vlan.address", "192.168.10.25/25", "already used by the VIP"),
    case("gateway-vlan-differs", [("name: eth1.100}", "name: eth1.100, address: 192.168.10.9/25}")],
         "hosts.dell.vlan.address", "192.168.10.9/25", "differs from network.gateway"),
    # management addresses
    case("duplicate-address", [("address: 10.231.0.4", "address: '10.231.0.3'")],
         "hosts.rp1.address", "'10.231.0.3'", "already the address of host 'rp0'"),
    case("address-bad-ip", [("address: 10.231.0.4", "address: 10.231.0.400")],
         "hosts.rp1.address", "10.231.0.400", "not a valid IPv4 address"),
    case("address-bad-name", [("address: 10.231.0.4", "address: rp1_board!")],
         "hosts.rp1.address", "rp1_board!", "neither an IP address nor a DNS name"),
    # registry
    case("registry-host-unknown", [("host: dell,", "host: del,")], "registry.host",
         "registry:", "did you mean 'dell'?"),
    case("registry-port", [("port: 5001", "port: 70000")], "registry.port", "registry:",
         "between 1 and 65535"),
    case("registry-runtime", [("runtime: package", "runtime: podman")], "registry.runtime",
         "registry:", "use one of: package, docker"),
    case("registry-host-lacks-role", [("[gateway, registry]", "[gateway]")], "registry.host",
         "registry:", "add registry to hosts.dell.roles"),
    # roles, boards, names
    case("role-unknown", [("microk8s]", "mikrok8s]")], "hosts.rp1.roles[1]", "mikrok8s",
         "did you mean 'microk8s'?"),
    case("role-twice", [("[pi, microk8s]", "[pi, pi]")], "hosts.rp1.roles[1]", "[pi, pi]",
         "listed twice"),
    case("two-gateways", [("[pi, microk8s]", "[pi, gateway]")], "hosts.rp1.roles",
         "[pi, gateway]", "only one host may have role gateway"),
    case("gateway-without-vlan", [("    vlan: {parent: eth1, name: eth1.100}\n", "")],
         "hosts.dell", "  dell:", "the gateway needs a vlan section"),
    case("board-unknown", [("board: raspberrypi", "board: raspberypi")], "hosts.rp0.board",
         "raspberypi", "did you mean 'raspberrypi'?"),
    case("host-name-invalid", [("  rp0:\n", "  rp_0:\n")], "hosts.rp_0", "rp_0:",
         "not a valid name"),
    case("host-name-is-role", [("  rp0:\n", "  router:\n")], "hosts.router", "router:",
         "also a role name"),
    # via
    case("via-unknown", [("via: dell", "via: del")], "hosts.rp1.via", "via: del",
         "unknown host 'del'; did you mean 'dell'?"),
    case("via-itself", [("via: dell", "via: rp1")], "hosts.rp1.via", "via: rp1",
         "via itself"),
    case("via-loop", [("    address: 10.231.0.2\n", "    address: 10.231.0.2\n    via: rp1\n")],
         "hosts.dell.via", "via: rp1", "loop: dell -> rp1 -> dell"),
    # lab section
    case("lab-management-invalid", [("management: 10.231.0.0/24", "management: 10.231.0.0/33")],
         "lab.management", "management:", "not a valid network"),
    case("lab-networks-overlap", [("upstream: 10.231.1.0/24", "upstream: 10.231.0.0/16")],
         "lab.management", "management:", "overlaps lab.upstream 10.231.0.0/16"),
    case("lab-overlaps-vlan", [("upstream: 10.231.1.0/24", "upstream: 192.168.10.0/24")],
         "lab.upstream", "upstream: 192.168.10.0/24", "overlaps network.subnet"),
    case("lab-address-outside-management", [("address: 10.231.0.3", "address: 10.232.0.3")],
         "hosts.rp0.address", "10.232.0.3", "outside lab.management 10.231.0.0/24"),
    case("lab-address-dns-name", [("address: 10.231.0.3", "address: rp0.local")],
         "hosts.rp0.address", "rp0.local", "must be an IP inside lab.management"),
    case("lab-kind", [("lab: {kind: chroot,", "lab: {kind: docker,")], "hosts.rp0.lab.kind",
         "kind: docker", "use one of: systemd, chroot"),
    case("lab-boot", [("boot: firmware", "boot: uefi")], "hosts.rp0.lab.boot", "boot: uefi",
         "use one of: firmware, legacy, grub"),
    case("lab-seed-name", [("seed: [dphys-swapfile]", "seed: [Bad Seed]")],
         "hosts.rp0.lab.seed[0]", "Bad Seed", "seed name 'Bad Seed'"),
    case("lab-lan-not-an-address", [("seed: [dphys-swapfile]}",
                                     "seed: [dphys-swapfile], lan: {eth1: 192.168.30.0/24}}")],
         "hosts.rp0.lab.lan.eth1", "lan: {eth1:", "not a host address of a LAN"),
    case("lab-client-clashes", [("clients: [microvm]", "clients: [microvm, rp0]")],
         "lab.clients[1]", "clients: [microvm, rp0]", "has the name of a host"),
    case("lab-client-bad-name", [("clients: [microvm]", "clients: [Micro VM]")],
         "lab.clients[0]", "clients: [Micro VM]", "not a valid name"),
    case("lab-address-is-bridge", [("address: 10.231.0.3", "address: 10.231.0.1")],
         "hosts.rp0.address", "10.231.0.1", "start hosts at 10.231.0.2"),
    case("lab-mgmt0-reserved", [("    upstream: eth1", "    upstream: mgmt0")],
         "hosts.dell.upstream", "upstream: mgmt0", "lab's own management interface"),
    case("vlan-name-is-parent", [("name: eth1.100", "name: eth1")], "hosts.dell.vlan.name",
         "name: eth1}", "cannot have its parent's name"),
    case("upstream-is-vlan", [("    upstream: eth1", "    upstream: eth1.100")],
         "hosts.dell.upstream", "upstream: eth1.100", "also the VLAN interface name"),
    case("host-lab-without-lab", [NO_HOST_LAB[0], NO_HOST_LAB[1],
                                  (NO_HOST_LAB[2][0], "    lab: {kind: chroot}\n")],
         "hosts.rp0.lab", "lab: {kind: chroot}", "need a top-level 'lab:' section"),
]


@pytest.mark.parametrize(("edits", "key", "needle", "fragment"), BAD_CASES)
def test_bad_input_names_key_line_and_fix(edits, key, needle, fragment):
    text = mutate(*edits)
    problems = problems_of(text)
    matching = [p for p in problems if p.key == key]
    assert matching, f"no problem for {key!r}; got {[str(p) for p in problems]}"
    expected_line = line_of(text, needle)
    assert any(p.line == expected_line and fragment in p.message for p in matching), (
        f"wanted line {expected_line} and {fragment!r}; got {[str(p) for p in matching]}")
    assert all(p.file == FILE for p in problems)


def test_every_key_the_validator_knows_has_a_bad_input_case():
    """Each top-level, host, vlan and lab key of the schema is exercised by a bad case."""
    from runbooks.core.inventory import TOP_KEYS
    from runbooks.core.inventory_hosts import HOST_KEYS, VLAN_KEYS
    from runbooks.lab.schema import HOST_LAB_KEYS  # the lab's keys, plugged in (conftest)

    tested = set()
    for case in BAD_CASES:
        parts = case.values[1].split("[")[0].split(".")
        tested.add(parts[0])
        if parts[0] == "hosts" and len(parts) >= 3:
            tested.add(f"hosts.*.{parts[2]}")
            if len(parts) >= 4 and parts[2] in ("vlan", "lab"):
                tested.add(f"{parts[2]}.{parts[3]}")
    wanted = ({*TOP_KEYS, "lab"} | {f"hosts.*.{k}" for k in (*HOST_KEYS, "lab")}
              | {f"vlan.{k}" for k in VLAN_KEYS} | {f"lab.{k}" for k in HOST_LAB_KEYS})
    assert sorted(wanted - tested) == []
    assert len({p.id for p in BAD_CASES}) == len(BAD_CASES)


def test_good_text_is_valid():
    inv = parse_inventory(GOOD, FILE)
    assert list(inv.hosts) == ["dell", "rp0", "rp1"]


@pytest.mark.parametrize("text", ["", "# only a comment\n"], ids=["empty", "comment-only"])
def test_empty_file_is_a_problem(text):
    (problem,) = problems_of(text)
    assert "the file is empty" in problem.message


def test_top_level_not_a_mapping():
    problems = problems_of("- dell\n- rp0\n")
    assert problems[0].key == "" and "must be a mapping" in problems[0].message


def test_two_documents_is_a_syntax_problem():
    (problem,) = problems_of(GOOD + "---\nsite: again\n")
    assert problem.line == line_of(GOOD + "---\n", "---")
    assert "expected a single document" in problem.message


def test_several_problems_are_reported_at_once_in_file_order():
    text = mutate(("{id: 100}", "{id: 5000}"), ("192.168.10.3/25", "192.168.10.30/25"),
                  ("via: dell", "via: del"))
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "hosts/demo.yaml")
    error = caught.value
    assert [p.key for p in error.problems] == [
        "network.vlan.id", "hosts.rp0.vlan.address", "hosts.rp1.via"]
    lines = str(error).splitlines()
    assert lines[0] == "hosts/demo.yaml: 3 problems:"
    assert lines[2] == (
        f"  hosts/demo.yaml:{line_of(text, '192.168.10.30/25')}: hosts.rp0.vlan.address: "
        "192.168.10.30/25 is inside the DHCP pool 192.168.10.26-192.168.10.126; pick an "
        "address outside it")
    assert len(lines) == 4


def test_one_problem_report_is_singular():
    text = mutate(("{id: 100}", "{id: 5000}"))
    with pytest.raises(InventoryError, match=r"^hosts/test.yaml: 1 problem:\n  hosts/test"):
        parse_inventory(text, FILE)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert caught.value.problems[0].file == str(path)
    assert "file not found" in str(caught.value)


def test_unreadable_file_is_an_inventory_error(tmp_path):
    with pytest.raises(InventoryError, match="cannot read the file"):
        load_inventory(tmp_path)  # a directory
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"site: \xff\xfe\n")
    with pytest.raises(InventoryError, match="UTF-8"):
        load_inventory(binary)


def test_load_inventory_reads_a_file(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(GOOD)
    inv = load_inventory(path)
    assert inv.path == path and inv.site == "test"


def test_lab_inventory_loads():
    inv = load_inventory(ROOT / "hosts/lab.yaml")
    assert inv.site == "lab"
    assert inv.network.vlan_id == 100
    assert inv.network.subnet == IPv4Network("192.168.10.0/25")
    assert inv.network.gateway == IPv4Address("192.168.10.2")
    assert (inv.network.dhcp.start, inv.network.dhcp.end) == (
        IPv4Address("192.168.10.26"), IPv4Address("192.168.10.126"))
    assert inv.network.vip == IPv4Address("192.168.10.25")
    assert (inv.registry.host, inv.registry.port, inv.registry.runtime) == (
        "dell", 5001, "package")
    assert lab_of(inv).management == IPv4Network("10.231.0.0/24")
    assert lab_of(inv).upstream == IPv4Network("10.231.1.0/24")
    assert lab_of(inv).clients == ("microvm",)
    assert list(inv.hosts) == ["dell", "rp0", "rp1", "lp0", "edge", "laptop", "audience"]
    boots = {name: host_lab(host).boot for name, host in inv.hosts.items()}
    assert boots == {"dell": None, "rp0": "firmware", "rp1": "legacy", "lp0": "grub",
                     "edge": None, "laptop": None, "audience": None}
    kinds = {name: host_lab(host).kind for name, host in inv.hosts.items()}
    assert kinds == {"dell": "systemd", "rp0": "systemd", "rp1": "systemd", "lp0": "systemd",
                     "edge": "systemd", "laptop": "chroot", "audience": "chroot"}
    assert host_lab(inv.hosts["edge"]).seed == ("frr-caps",)
    assert all(IPv4Address(h.address) in lab_of(inv).management for h in inv.hosts.values())
    dell = inv.hosts["dell"]
    assert dell.vlan.name == "eth1.100" and dell.upstream == "eth1"
    assert dell.vlan.address == IPv4Interface("192.168.10.2/25")
    assert inv.hosts["lp0"].vlan.address == IPv4Interface("192.168.10.5/25")


def test_demo_inventory_loads():
    inv = load_inventory(ROOT / "hosts/demo.yaml")
    assert inv.site == "demo" and lab_of(inv) is None
    assert inv.network.dhcp.dns == (IPv4Address("8.8.8.8"), IPv4Address("8.8.4.4"))
    assert (inv.network.dhcp.default_lease, inv.network.dhcp.max_lease) == (600, 7200)
    assert inv.registry.runtime == "docker" and inv.registry.port == 5001
    dell = inv.hosts["dell"]
    assert dell.address == "192.168.1.50"
    assert dell.vlan.parent == "enxf8e43b5d5048" and dell.vlan.name == "enx.100"
    assert dell.vlan.address == IPv4Interface("192.168.10.2/25")
    for name, address in (("rp0", "192.168.10.3"), ("rp1", "192.168.10.4")):
        host = inv.hosts[name]
        assert host.via == "dell" and host.user == "ubuntu" and host.board == "raspberrypi"
        assert host.vlan.address == IPv4Interface(f"{address}/25")
        assert host.vlan.name == "eth0.100" and host_lab(host) is None


def test_defaults_apply():
    inv = parse_inventory(GOOD, FILE)
    dell, rp0, rp1 = inv.hosts.values()
    assert (dell.user, dell.port) == ("root", 22)
    assert (rp1.user, rp1.port) == ("ubuntu", 2222)
    assert dell.vlan.address == IPv4Interface("192.168.10.2/25")  # from network.gateway
    assert rp0.vlan.name == "eth0.100" and rp0.vlan.managed is True
    assert host_lab(dell) == HostLab("systemd", None, ())
    assert host_lab(rp0) == HostLab("chroot", "firmware", ("dphys-swapfile",))
    assert host_lab(rp1) == HostLab("systemd", "grub", ())  # board lepotato -> grub
    assert rp1.vars == {"rng_tools": False} and dell.vars == {}
    assert rp1.roles == ("pi", "microk8s")


def test_defaults_without_optional_sections():
    text = mutate(NO_HOST_LAB[0], *NO_HOST_LAB[1:],
                  ("    default_lease: 600\n    max_lease: 7200\n", ""),
                  ("  vip: 192.168.10.25\n", ""),
                  ("registry: {host: dell, port: 5001, runtime: package}\n",
                   "registry: {host: dell}\n"),
                  ("defaults: {user: root, port: 22}", "defaults: {user: pi}"))
    inv = parse_inventory(text, FILE)
    assert lab_of(inv) is None and all(host_lab(h) is None for h in inv.hosts.values())
    assert (inv.network.dhcp.default_lease, inv.network.dhcp.max_lease) == (600, 7200)
    assert inv.network.vip is None
    assert (inv.registry.port, inv.registry.runtime) == (5000, "package")
    assert inv.hosts["dell"].port == 22 and inv.hosts["dell"].user == "pi"


def test_raspberrypi_boot_defaults_to_firmware_in_lab():
    text = mutate(("lab: {kind: chroot, boot: firmware, seed: [dphys-swapfile]}",
                   "lab: {kind: chroot}"))
    assert host_lab(parse_inventory(text, FILE).hosts["rp0"]).boot == "firmware"


def test_lab_clients_default():
    text = mutate(("  clients: [microvm]\n", ""))
    assert lab_of(parse_inventory(text, FILE)).clients == ("microvm",)


def test_yaml_merge_keys_are_understood():
    text = mutate(("vlan: {parent: eth0, address: 192.168.10.3/25}",
                   "vlan: &pivlan {parent: eth0, address: 192.168.10.3/25}"),
                  ("      parent: eth0\n      address: 192.168.10.4/25\n",
                   "      <<: *pivlan\n      address: 192.168.10.4/25\n"))
    assert parse_inventory(text, FILE).hosts["rp1"].vlan.parent == "eth0"


def test_model_is_frozen():
    inv = parse_inventory(GOOD, FILE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.hosts["rp0"].address = "10.0.0.1"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.network.vlan_id = 7  # type: ignore[misc]


# -- select --------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "names"), [
    pytest.param(None, ["dell", "rp0", "rp1"], id="none-is-all"),
    pytest.param("", ["dell", "rp0", "rp1"], id="empty-is-all"),
    pytest.param(" , ", ["dell", "rp0", "rp1"], id="only-commas-is-all"),
    pytest.param("rp1", ["rp1"], id="one-name"),
    pytest.param("rp1,dell", ["dell", "rp1"], id="file-order"),
    pytest.param("pi", ["rp0", "rp1"], id="role"),
    pytest.param("gateway, rp0", ["dell", "rp0"], id="role-and-name-with-space"),
    pytest.param("pi,rp0,rp0", ["rp0", "rp1"], id="no-duplicates"),
    pytest.param("microk8s", ["rp1"], id="second-role"),
    pytest.param("router", [], id="known-role-unused"),
])
def test_select(spec, names):
    inv = parse_inventory(GOOD, FILE)
    assert [host.name for host in inv.select(spec)] == names


def test_select_unknown_lists_hosts_and_roles():
    inv = parse_inventory(GOOD, FILE)
    with pytest.raises(InventoryError) as caught:
        inv.select("rp0,dellx,piz")
    problems = caught.value.problems
    assert [p.key for p in problems] == ["select", "select"]
    assert "'dellx' is neither a host nor a role" in problems[0].message
    assert "did you mean 'dell'" in problems[0].message
    assert "hosts: dell, rp0, rp1" in problems[0].message
    assert "roles in use: gateway, microk8s, pi, registry" in problems[0].message
    assert "'piz'" in problems[1].message


def test_host_lookup():
    inv = parse_inventory(GOOD, FILE)
    assert inv.host("rp0").address == "10.231.0.3"
    assert inv.gateway.name == "dell"
    with pytest.raises(InventoryError, match="hosts: dell, rp0, rp1"):
        inv.host("nope")


def test_import_is_cheap():
    code = ("import sys, runbooks.core.inventory; heavy = {'fabric', 'invoke', 'paramiko', "
            "'jinja2', 'requests'}; print(sorted(m for m in sys.modules if m in heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pure_python_yaml_loader_reports_the_same(monkeypatch):
    """Without libyaml (CSafeLoader) the same problems come out at the same lines."""
    import yaml

    from runbooks.core import inventory_yaml

    texts = [mutate(*param.values[0]) for param in BAD_CASES]
    fast = [[(p.line, p.key) for p in problems_of(text)] for text in texts]
    monkeypatch.setattr(inventory_yaml, "_Loader", yaml.SafeLoader)
    slow = [[(p.line, p.key) for p in problems_of(text)] for text in texts]
    assert slow == fast
    assert parse_inventory(GOOD, FILE).hosts["rp0"].vlan.address == IPv4Interface(
        "192.168.10.3/25")
