"""The named facts several runbooks read: their pure parsers, and one command per batch
however many steps and health checks ask for it."""

from __future__ import annotations

from ipaddress import IPv4Interface

import pytest

from runbooks.common.bgp_state import BGP_ROUTES, BGP_SESSIONS, node_states
from runbooks.common.facts import (
    ARCHITECTURE,
    CONTAINERD_INSTALLED,
    CONTAINERD_VERSION,
    NO_CONTAINERD,
    UDP_LISTENERS,
    Listener,
    parse_udp_listeners,
)
from runbooks.common.kernel import IP_FORWARD
from runbooks.common.links import IPV4_ADDRESSES
from runbooks.common.nat import NFT_RULESET
from runbooks.core.facts import FactResult, prepare


@pytest.mark.parametrize(("line", "wanted"), [
    ('UNCONN 0 0 0.0.0.0%eth0.100:67 0.0.0.0:* users:(("dhcpd",pid=7,fd=9))',
     Listener("0.0.0.0", 67, "eth0.100", ("dhcpd",))),
    ("UNCONN 0 0 192.168.100.1:53 0.0.0.0:*", Listener("192.168.100.1", 53)),
    ("UNCONN 0      0         [::]:53     [::]:*", Listener("::", 53)),
    ('UNCONN 0 0 *:67 *:* users:(("dnsmasq",pid=3,fd=4),("dnsmasq",pid=4,fd=4))',
     Listener("*", 67, None, ("dnsmasq", "dnsmasq"))),
], ids=["bound-to-device-with-process", "address-no-process", "ipv6-any", "two-owners"])
def test_udp_listeners_parse_ss_lines(line, wanted):
    assert parse_udp_listeners(line + "\n") == [wanted]


@pytest.mark.parametrize("text", ["", "garbage\n", "UNCONN 0 0 nonsense 0.0.0.0:*\n",
                                  "UNCONN 0 0 1.2.3.4:domain 0.0.0.0:*\n"],
                         ids=["empty", "one-word", "no-port", "port-by-name"])
def test_udp_listeners_skip_what_they_cannot_read(text):
    assert parse_udp_listeners(text) == []


def test_udp_listeners_none_when_ss_fails():
    assert UDP_LISTENERS.parse(FactResult(127, "UNCONN 0 0 1.2.3.4:53 0.0.0.0:*\n")) == []


def test_nft_ruleset_lines_without_handles_and_empty_when_nft_fails():
    out = 'table inet t { # handle 4\n\tchain c {\n\t\tmasquerade # handle 7\n\t}\n}\n'
    assert NFT_RULESET.parse(FactResult(0, out)) == ["table inet t {", "chain c {",
                                                     "masquerade", "}", "}"]
    assert NFT_RULESET.parse(FactResult(1, out)) == []


def test_bgp_sessions_by_kind():
    frr = '{"ipv4Unicast": {"peers": {"10.0.0.2": {"state": "Established"}}}}'
    assert BGP_SESSIONS["frr"].parse(FactResult(0, frr)) == {"10.0.0.2": "Established"}
    assert BGP_SESSIONS["frr"].parse(FactResult(0, "not json")) == {}
    bird = ("Name       Proto      Table      State  Since         Info\n"
            "rp_0       BGP        ---        up     12:00:00.000  Established\n"
            "rp_1       BGP        ---        start  12:00:00.000  Active\n")
    sessions = BGP_SESSIONS["bird"].parse(FactResult(0, bird))
    assert sessions == {"rp_0": "Established", "rp_1": "start"}
    nodes = [("rp-0", "10.0.0.2"), ("rp-1", "10.0.0.3"), ("rp-2", "10.0.0.4")]
    assert node_states("bird", sessions, nodes) == {"rp-0": "Established", "rp-1": "start",
                                                   "rp-2": "missing"}
    assert node_states("frr", {"10.0.0.3": "Active"}, nodes) == {
        "rp-0": "missing", "rp-1": "Active", "rp-2": "missing"}


def test_bgp_routes_by_kind():
    assert BGP_ROUTES["frr"].command == "ip -j route show proto bgp"
    assert BGP_ROUTES["bird"].command == "ip -j route show proto bird"
    out = '[{"dst": "10.0.9.1", "protocol": "bgp"}, {"dst": "10.0.8.0/24"}]'
    assert BGP_ROUTES["frr"].parse(FactResult(0, out)) == {"10.0.9.1", "10.0.8.0/24"}


def test_a_fact_asked_by_several_checks_runs_once_per_batch():
    commands = {"gateway.udp": UDP_LISTENERS.command, "xen.udp": UDP_LISTENERS.command,
                "gateway.forward": IP_FORWARD.command, "xen.forward": IP_FORWARD.command}
    script, _ = prepare(commands)
    assert script.count(UDP_LISTENERS.command) == 1
    # the sysctl is no process of its own: the batch's one stat and one grep read it
    assert script.count("/proc/sys/net/ipv4/ip_forward") == 2


ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
         "3: eth1.100    inet 192.168.10.2/25 brd 192.168.10.127 scope global eth1.100\\   "
         "valid_lft forever preferred_lft forever\n"
         "3: eth1.100    inet 192.168.10.9/32 scope global eth1.100\n")


@pytest.mark.parametrize(("result", "wanted"), [
    (FactResult(0, ADDRS), (("lo", IPv4Interface("127.0.0.1/8")),
                            ("eth1.100", IPv4Interface("192.168.10.2/25")),
                            ("eth1.100", IPv4Interface("192.168.10.9/32")))),
    (FactResult(0, ""), ()),
    (FactResult(0, "2: eth0    inet6 fe80::1/64 scope link\nnonsense\n"), ()),
    (FactResult(0, "2: eth0    inet 300.1.1.1/24 scope global eth0\n"), ()),
    (FactResult(1, ADDRS), ()),
], ids=["two-interfaces-three-addresses", "none", "not-ipv4", "not-an-address", "failed"])
def test_ipv4_addresses_parse_ip_o_4_addr(result, wanted):
    assert IPV4_ADDRESSES.parse(result) == wanted


@pytest.mark.parametrize(("result", "wanted"), [
    (FactResult(0, "arm64\n"), "arm64"),
    (FactResult(0, "x86_64\n"), "x86_64"),  # no dpkg: uname -m's name
    (FactResult(0, ""), None),
    (FactResult(127, ""), None),
], ids=["dpkg", "uname-fallback", "silent", "failed"])
def test_architecture(result, wanted):
    assert ARCHITECTURE.parse(result) == wanted


@pytest.mark.parametrize(("result", "wanted"), [
    (FactResult(0, '{"kind": "Service", "metadata": {"name": "ingress"}}'),
     {"kind": "Service", "metadata": {"name": "ingress"}}),
    (FactResult(1, 'Error from server (NotFound): services "ingress" not found\n'), None),
    (FactResult(0, "not json"), None),
], ids=["found", "not-found", "unreadable"])
def test_kubectl_object_fact(result, wanted):
    from runbooks.common.kubectl import object_fact

    fact = object_fact("microk8s kubectl", "service", "ingress", "ingress")
    assert fact.command == "microk8s kubectl get service ingress -n ingress -o json"
    assert fact.parse(result) == wanted


# -- containerd: one command for the installed version and the version apt would install --

INSTALLED = "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1\n"


@pytest.mark.parametrize(("out", "installed", "either"), [
    (INSTALLED, (1, 6), (1, 6)),
    (f"{NO_CONTAINERD}\n1.7.24~ds1-1\n", None, (1, 7)),
    (f"{NO_CONTAINERD}\n", None, None),
], ids=["installed", "not-installed-apt-has-it", "not-installed-no-candidate"])
def test_containerd_facts_from_one_answer(out, installed, either):
    result = FactResult(0, out)
    assert CONTAINERD_INSTALLED.parse(result) == installed
    assert CONTAINERD_VERSION.parse(result) == either


def test_containerd_is_started_once_for_pi_prep_and_the_containerd_config():
    """pi-prep's board facts and the containerd config step (both in a node's batch) ask
    one command: the batch starts containerd once (it started it twice)."""
    from runbooks.common.containerd import ContainerdConfig
    from runbooks.pi_prep.facts import FACT_COMMANDS

    asked = {**{f"pi {k}": v for k, v in FACT_COMMANDS.items()},
             **{f"cfg {k}": v for k, v in ContainerdConfig(kubernetes=True).facts().items()}}
    script, parse = prepare(asked)
    assert script.count("containerd --version") == 1, script
