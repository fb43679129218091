"""xen-dom0's pure parts: settings, rendered files, step planning from facts, health."""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Address, IPv4Interface

import pytest

from runbooks.core.facts import FILE_STAT_SEPARATOR, FactResult, file_command
from runbooks.xen_dom0 import render
from runbooks.xen_dom0.health import evaluate, parse_leases
from runbooks.xen_dom0.settings import XenSettings, read_settings, stable_mac
from runbooks.xen_dom0.steps import (
    PACKAGE_SHIPS_TEMPLATE,
    TOOLSTACK_READ,
    BridgeUp,
    DnsmasqTemplate,
    Toolstack,
    XenBooted,
)

VARS = {
    "dom0": {"memory": "4G", "vcpus": 2, "pin": True},
    "public_bridge": {"name": "xenbr0", "nic": "eno1", "address": "dhcp"},
    "private_bridges": [{
        "name": "virbr1", "address": "192.168.100.1/24",
        "dhcp_range": ["192.168.100.100", "192.168.100.199"],
        "reservations": [{"name": "master", "ip": "192.168.100.10",
                          "mac": "00:16:3E:EE:EE:01"},
                         {"name": "node1", "ip": "192.168.100.11"}],
        "dnsmasq_options": ["dhcp-option=option:ntp-server,192.168.100.1"],
    }],
    "port_forwards": [{"port": 6443, "to": "192.168.100.10"},
                      {"port": 2222, "to": "192.168.100.11", "to_port": 22,
                       "protocol": "tcp"}],
}


def ok(out: str = "") -> FactResult:
    return FactResult(0, out)


def failed(out: str = "") -> FactResult:
    return FactResult(1, out)


@pytest.fixture
def settings() -> XenSettings:
    return read_settings("lab", "xen0", VARS)


def test_a_generated_mac_is_xens_stable_and_differs_per_guest(settings: XenSettings):
    generated = settings.private[0].reservations[1]
    assert generated.generated and generated.mac.startswith("00:16:3e:")
    assert generated.mac == read_settings("lab", "xen0", VARS).private[0].reservations[1].mac
    assert generated.mac == stable_mac("lab", "xen0", "virbr1", "node1")
    assert stable_mac("lab", "xen0", "virbr1", "node2") != generated.mac
    assert settings.private[0].reservations[0].mac == "00:16:3e:ee:ee:01"   # lower-cased


def test_defaults_of_an_almost_empty_vars():
    bare = read_settings("lab", "xen0", {})
    assert (bare.xen_default, bare.masquerade, bare.public, bare.private) == (True, True, None,
                                                                            ())
    assert render.xen_cmdline(bare) == ""
    assert bare.default_bridge is None


@pytest.mark.parametrize(("dom0", "wanted"), [
    pytest.param({"memory": "4G", "vcpus": 2, "pin": True},
                 "dom0_mem=4G,max:4G dom0_max_vcpus=2 dom0_vcpus_pin", id="seed-like"),
    pytest.param({"memory": "1024M", "max_memory": "2G"}, "dom0_mem=1024M,max:2G",
                 id="ceiling"),
    pytest.param({"vcpus": 1}, "dom0_max_vcpus=1", id="vcpus-only"),
    pytest.param({}, "", id="nothing"),
])
def test_xen_command_line(dom0: dict[str, object], wanted: str):
    assert render.xen_cmdline(read_settings("s", "h", {"dom0": dom0})) == wanted


def _sourced(text: str) -> str:
    script = ('gettext() { printf %s "$1"; }; GRUB_DISTRIBUTOR=Debian\n' + text +
              '\nprintf "%s|%s|%s" "$GRUB_CMDLINE_XEN_DEFAULT" "$XEN_OVERRIDE_GRUB_DEFAULT" '
              '"${GRUB_DEFAULT:-unset}"')
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    return done.stdout


@pytest.mark.parametrize(("xen_default", "wanted"), [
    pytest.param(True, "dom0_mem=4G,max:4G dom0_max_vcpus=2 dom0_vcpus_pin|1|"
                       "Debian GNU/Linux, with Xen hypervisor", id="xen-default"),
    pytest.param(False, "dom0_mem=4G,max:4G dom0_max_vcpus=2 dom0_vcpus_pin|0|unset",
                 id="linux-stays-default"),
])
def test_grub_drop_in_sourced_as_update_grub_does(xen_default: bool, wanted: str):
    cfg = render.grub_xen_cfg(read_settings("s", "h", {**VARS, "xen_default": xen_default}),
                              "site s (s.yaml)")
    assert _sourced(cfg) == wanted


def test_interfaces_without_a_dummy_driver(settings: XenSettings):
    text = render.interfaces(settings, "site lab (lab.yaml)", has_dummy=False)
    assert "iface eno1 inet manual" in text
    assert "auto xenbr0\niface xenbr0 inet dhcp\n    bridge_ports eno1\n" in text
    assert ("auto virbr1\niface virbr1 inet static\n    address 192.168.100.1/24\n"
            "    bridge_ports none\n") in text
    assert "dummy" not in text


def test_interfaces_with_a_dummy_port_as_the_seed_has(settings: XenSettings):
    text = render.interfaces(settings, "x", has_dummy=True,
                             dummy_macs={"virbr1": "00:16:3e:d1:0b:e7"})
    assert "pre-up ip link add virbr1-dummy type dummy" in text
    assert "up ip link set virbr1-dummy address 00:16:3e:d1:0b:e7" in text
    assert "bridge_ports virbr1-dummy" in text


def test_a_static_public_bridge_has_its_gateway():
    raw = {"public_bridge": {"name": "xenbr0", "nic": "eth1", "address": "10.0.0.2/24",
                             "gateway": "10.0.0.1"}}
    text = render.interfaces(read_settings("s", "h", raw), "x", has_dummy=False)
    assert "iface xenbr0 inet static\n    address 10.0.0.2/24\n    gateway 10.0.0.1\n" in text


@pytest.mark.parametrize(("bridge", "wanted"), [
    pytest.param("virbr1", "virbr1-dummy", id="seed-name"),
    pytest.param("vbr-guests-lan", "vbr-guests-la-d", id="shortened-to-15"),
])
def test_dummy_port_names_fit_linux(bridge: str, wanted: str):
    assert render.dummy_name(bridge) == wanted
    assert len(render.dummy_name(bridge)) <= 15


def test_dnsmasq_conf_and_hostsfile(settings: XenSettings):
    bridge = settings.private[0]
    conf = render.dnsmasq_conf(bridge, "x")
    for line in ("interface=virbr1", "bind-dynamic", "except-interface=lo",
                 "dhcp-range=192.168.100.100,192.168.100.199,255.255.255.0,12h",
                 "dhcp-leasefile=/var/lib/dnsmasq/virbr1/leases",
                 "dhcp-hostsfile=/var/lib/dnsmasq/virbr1/hostsfile",
                 "dhcp-option=option:router,192.168.100.1",
                 "dhcp-option=option:ntp-server,192.168.100.1"):
        assert line in conf.splitlines()
    node1 = stable_mac("lab", "xen0", "virbr1", "node1")
    assert render.hostsfile(bridge) == (f"00:16:3e:ee:ee:01,192.168.100.10,master\n"
                                        f"{node1},192.168.100.11,node1\n")


def test_only_reserved_guests_get_addresses_without_a_range():
    raw = {"private_bridges": [{"name": "virbr2", "address": "10.9.0.1/24"}]}
    conf = render.dnsmasq_conf(read_settings("s", "h", raw).private[0], "x")
    assert "dhcp-range=10.9.0.0,static,255.255.255.0,12h" in conf.splitlines()


def _link(name: str, kind: str | None = "bridge", up: bool = True,
          addrs: tuple[str, ...] = (), master: str | None = None) -> FactResult:
    entry: dict[str, object] = {"ifname": name, "flags": ["BROADCAST", "UP"] if up else [],
                                "addr_info": [{"family": "inet", "local": a.split("/")[0],
                                               "prefixlen": int(a.split("/")[1])}
                                              for a in addrs]}
    if kind:
        entry["linkinfo"] = {"info_kind": kind}
    if master:
        entry["master"] = master
    return ok(json.dumps([entry]))


ADDR = IPv4Interface("192.168.100.1/24")


@pytest.mark.parametrize(("facts", "changes"), [
    pytest.param({"link": _link("virbr1", addrs=("192.168.100.1/24",))}, 0, id="converged"),
    pytest.param({"link": failed("Device does not exist")}, 1, id="missing"),
    pytest.param({"link": _link("virbr1", up=False, addrs=("192.168.100.1/24",))}, 1,
                 id="down"),
    pytest.param({"link": _link("virbr1", addrs=("192.168.100.2/24",))}, 1,
                 id="other-address"),
    pytest.param({"link": _link("virbr1", kind="veth", addrs=("192.168.100.1/24",))}, 1,
                 id="not-a-bridge"),
])
def test_private_bridge_is_brought_up_only_when_needed(facts: dict[str, FactResult],
                                                       changes: int):
    planned = BridgeUp("virbr1", ADDR).plan(facts)
    assert len(planned) == changes
    if planned:
        assert planned[0].actions[-1].command == \
            "ifdown --force virbr1 >/dev/null 2>&1; ifup virbr1"


def test_public_bridge_moves_the_nics_address_first():
    step = BridgeUp("xenbr0", None, port="eth1")
    facts = {"link": failed(), "port": _link("eth1", kind="veth", addrs=("10.0.0.2/24",))}
    commands = [a.command for a in step.plan(facts)[0].actions]
    assert commands[0] == "ip -4 addr flush dev eth1"
    converged = {"link": _link("xenbr0", addrs=("10.0.0.2/24",)),
                 "port": _link("eth1", kind="veth", master="xenbr0")}
    assert step.plan(converged) == []


def test_a_public_bridge_on_the_ssh_nic_is_refused_with_the_console_way():
    from runbooks.core.steps import StepFailed

    step = BridgeUp("xenbr0", None, port="eno1", ssh_port=True)
    with pytest.raises(StepFailed, match="from the console run `ip addr flush dev eno1 && "
                                         "ifup xenbr0`"):
        step.plan({"link": failed(), "port": _link("eno1", kind=None, addrs=("1.2.3.4/24",))})


XL_INFO = ("host                   : xen0\nxen_version            : 4.17\n"
           "xen_commandline        : placeholder dom0_mem=4G,max:4G dom0_max_vcpus=2 "
           "dom0_vcpus_pin\n")


@pytest.mark.parametrize(("info", "reboot"), [
    pytest.param(ok(XL_INFO), False, id="running-as-wanted"),
    pytest.param(failed("cannot init xl context"), True, id="xen-not-running"),
    pytest.param(ok(XL_INFO.replace("dom0_mem=4G,max:4G", "dom0_mem=2G,max:2G")), True,
                 id="other-memory"),
])
def test_a_reboot_only_when_xen_does_not_run_as_wanted(info: FactResult, reboot: bool):
    changes = XenBooted("dom0_mem=4G,max:4G dom0_max_vcpus=2 dom0_vcpus_pin").plan(
        {"info": info})
    assert bool(changes) == reboot
    assert all(c.reboot and not c.actions for c in changes)


def a_file(content: str) -> FactResult:
    """A file fact's result: the file exists with `content`."""
    return ok(f"644 root root\n{FILE_STAT_SEPARATOR}\n{content}")


OURS = "# Managed by greenroom (xen-dom0) from seed: this release's dnsmasq ships no template.\n"
MISSING = failed()


@pytest.mark.parametrize(("package", "own", "wanted"), [
    pytest.param(MISSING, MISSING, "write", id="no-template-at-all"),
    pytest.param(MISSING, a_file(OURS), "nothing", id="ours-only"),
    pytest.param(a_file("[Unit]\n"), MISSING, "nothing", id="package-only"),
    pytest.param(a_file("[Unit]\n"), a_file(OURS), "remove", id="package-and-ours"),
    pytest.param(a_file("[Unit]\n"), a_file("[Unit]\n# a user's own\n"), "nothing",
                 id="package-and-a-users-own"),
])
def test_dnsmasq_template_is_ours_only_where_the_package_has_none(package, own, wanted):
    step = DnsmasqTemplate(OURS)
    facts = step.facts()
    assert facts["file"] == file_command("/etc/systemd/system/dnsmasq@.service")
    assert PACKAGE_SHIPS_TEMPLATE.command == file_command("/lib/systemd/system/dnsmasq@.service")
    changes = step.plan({PACKAGE_SHIPS_TEMPLATE.name: package, "file": own})
    commands = [a.command for c in changes for a in c.actions]
    removes = any("rm -f /etc/systemd/system/dnsmasq@.service" in c for c in commands)
    assert ("nothing" if not changes else "remove" if removes else "write") == wanted


@pytest.mark.parametrize(("reads", "line", "changes"), [
    pytest.param(ok(), MISSING, 1, id="read-and-missing"),
    pytest.param(ok(), a_file("TOOLSTACK=xl\n"), 0, id="read-and-set"),
    pytest.param(failed(), MISSING, 0, id="not-read-by-this-release"),
])
def test_toolstack_only_where_the_release_reads_it(reads, line, changes):
    step = Toolstack()
    assert step.facts()[TOOLSTACK_READ.name].startswith("grep -qs TOOLSTACK ")
    assert len(step.plan({TOOLSTACK_READ.name: reads, "file": line})) == changes


def test_leases_parse_dnsmasqs_lease_file():
    text = ("1764400000 00:16:3e:aa:bb:cc 192.168.100.10 domu1 01:00:16:3e:aa:bb:cc\n"
            "0 02:11:22:33:44:55 192.168.100.150 * *\nduid 00:01:00:01\n")
    leases = parse_leases("virbr1", text)
    assert [(x.ip, x.mac, x.hostname) for x in leases] == [
        ("192.168.100.10", "00:16:3e:aa:bb:cc", "domu1"),
        ("192.168.100.150", "02:11:22:33:44:55", None)]
    assert leases[1].expires is None and leases[0].expires.startswith("2025-11-29")


def _health_facts(**over: FactResult) -> dict[str, FactResult]:
    facts = {
        "xl": ok(XL_INFO), "forward": ok("1\n"),
        "udp": ok("UNCONN 0 0 0.0.0.0:67 0.0.0.0:*\nUNCONN 0 0 192.168.100.1:53 0.0.0.0:*\n"),
        "nft": ok("table inet greenroom_xen_virbr1 {\n oifname \"xenbr0\" ip saddr "
                  "192.168.100.0/24 masquerade\n iifname \"xenbr0\" tcp dport 6443 dnat ip to "
                  "192.168.100.10:6443\n iifname \"xenbr0\" tcp dport 2222 dnat ip to "
                  "192.168.100.11:22\n}\n"),
        "firewalld": failed(), "leases/virbr1": ok(""),
        "link/virbr1": _link("virbr1", addrs=("192.168.100.1/24",)),
        "link/xenbr0": _link("xenbr0", addrs=("10.0.0.5/24",)),
        "unit/virbr1": ok("active\n"),
    }
    facts.update(over)
    return facts


def test_a_healthy_dom0(settings: XenSettings):
    checks = evaluate(settings, _health_facts())
    assert [(c.name, c.ok) for c in checks if not c.ok] == []
    assert {c.name for c in checks} >= {"hypervisor", "bridge virbr1", "bridge xenbr0",
                                        "dnsmasq@virbr1", "masquerade", "forward tcp/6443",
                                        "forward tcp/2222", "forwarding"}


@pytest.mark.parametrize(("over", "bad"), [
    pytest.param({"xl": failed()}, "hypervisor", id="no-xen"),
    pytest.param({"unit/virbr1": failed("inactive")}, "dnsmasq@virbr1", id="dnsmasq-stopped"),
    pytest.param({"udp": ok("UNCONN 0 0 0.0.0.0:67 0.0.0.0:*\n")}, "dnsmasq@virbr1",
                 id="no-dns"),
    pytest.param({"link/virbr1": failed()}, "bridge virbr1", id="bridge-missing"),
    pytest.param({"nft": ok("")}, "masquerade", id="no-nat"),
    pytest.param({"forward": ok("0")}, "forwarding", id="forwarding-off"),
])
def test_unhealthy_dom0s_say_what(settings: XenSettings, over: dict[str, FactResult],
                                  bad: str):
    assert bad in [c.name for c in evaluate(settings, _health_facts(**over)) if not c.ok]


def test_reservations_are_listed_with_their_macs(settings: XenSettings):
    leases = next(c for c in evaluate(settings, _health_facts()) if c.name == "leases virbr1")
    assert "master 00:16:3e:ee:ee:01->192.168.100.10" in leases.detail
    assert IPv4Address("192.168.100.11") == settings.private[0].reservations[1].ip
