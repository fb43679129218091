"""The metallb section's validation (runbooks.common.bgp.read_metallb) and the site plan.

Each bad case changes one line of a good site; the expected problem names the key and the
line it is on.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from runbooks.common.bgp import Node, Pool, pool_networks, site_plan
from runbooks.core.inventory import InventoryError
from tests.unit.bgp_site import SITE, load_site


def test_good_site_reads_pools_peers_and_nodes() -> None:
    inventory, metallb = load_site()
    assert metallb.asn == 64513 and metallb.peers == ("edge",)
    assert metallb.pools == (Pool("default", ("192.168.20.0/28",)),
                             Pool("extra", ("192.168.10.8-192.168.10.11",)))
    plan = site_plan(inventory)
    assert plan.nodes == (Node("rp0", IPv4Address("192.168.10.3")),
                          Node("rp1", IPv4Address("192.168.10.4")))
    assert [(r.name, r.kind, r.asn, str(r.address)) for r in plan.routers] == [
        ("edge", "frr", 64512, "192.168.10.6")]


BAD = [
    ("asn-reserved", "  asn: 64513", "  asn: 23456", "metallb.asn", "reserved"),
    ("asn-not-number", "  asn: 64513", "  asn: sixty", "metallb.asn", "AS number"),
    ("asn-too-big", "  asn: 64513", "  asn: 4294967296", "metallb.asn", "out of range"),
    ("same-asn-no-ibgp", "vars: {kind: frr, asn: 64512}", "vars: {kind: frr, asn: 64513}",
     "metallb.peers[0]", "iBGP"),
    ("ibgp-but-different", "  peers: [edge]", "  peers: [edge]\n  ibgp: true",
     "metallb.peers[0]", "one AS on both sides"),
    ("peer-unknown", "  peers: [edge]", "  peers: [egde]", "metallb.peers[0]",
     "did you mean 'edge'"),
    ("peer-not-router", "  peers: [edge]", "  peers: [rp0]", "metallb.peers[0]",
     "lacks role router"),
    ("pool-in-dhcp", "    default: [192.168.20.0/28]", "    default: [192.168.10.96/28]",
     "metallb.pools.default[0]", "DHCP range"),
    ("pool-has-vip", "    extra: [192.168.10.8-192.168.10.11]",
     "    extra: [192.168.10.20-192.168.10.25]", "metallb.pools.extra[0]", "network.vip"),
    ("pool-has-static", "    extra: [192.168.10.8-192.168.10.11]",
     "    extra: [192.168.10.3-192.168.10.5]", "metallb.pools.extra[0]", "host rp0"),
    ("pool-has-gateway", "    extra: [192.168.10.8-192.168.10.11]",
     "    extra: [192.168.10.2/32]", "metallb.pools.extra[0]", "network.gateway"),
    ("pools-overlap", "    extra: [192.168.10.8-192.168.10.11]", "    extra: [192.168.20.8/29]",
     "metallb.pools.extra[0]", "overlaps metallb.pools.default"),
    ("pool-not-cidr", "    extra: [192.168.10.8-192.168.10.11]", "    extra: [192.168.10.8/24]",
     "metallb.pools.extra[0]", "not a pool"),
    ("l2-outside-subnet", "  mode: bgp", "  mode: l2", "metallb.pools.default[0]",
     "outside the VLAN subnet"),
    ("old-version", "  version: v0.14.9", "  version: v0.12.1", "metallb.version",
     "PodSecurityPolicy"),
    ("bad-mode", "  mode: bgp", "  mode: bpg", "metallb.mode", "bgp"),
    ("router-kind-unknown", "vars: {kind: frr, asn: 64512}", "vars: {kind: cisco, asn: 64512}",
     "hosts.edge.vars.kind", "not allowed"),
    ("router-asn-reserved", "vars: {kind: frr, asn: 64512}", "vars: {kind: frr, asn: 23456}",
     "hosts.edge.vars.asn", "reserved"),
    ("router-without-asn", "vars: {kind: frr, asn: 64512}", "vars: {kind: frr}",
     "hosts.edge.vars.asn", "missing"),
    ("password-inline", "  peers: [edge]", "  peers: [edge]\n  password: hunter2",
     "metallb.password", "env"),
]


@pytest.mark.parametrize(("old", "new", "key", "words"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_section_names_key_and_line(old: str, new: str, key: str, words: str) -> None:
    assert old in SITE
    text = SITE.replace(old, new, 1)
    with pytest.raises(InventoryError) as caught:
        load_site(text)
    problems = caught.value.problems
    hits = [p for p in problems if p.key == key and words in p.message]
    assert hits, [f"{p.key}: {p.message}" for p in problems]
    # the problem points at the line of its key (a peer's line for an ASN clash)
    lines = text.splitlines()
    wanted = {"metallb.peers[0]": "  peers: [", "metallb.pools.default[0]": "    default:",
              "metallb.pools.extra[0]": "    extra:", "metallb.password": "  password:",
              "hosts.edge.vars.kind": "    vars:", "hosts.edge.vars.asn": "    vars:",
              }.get(key, "  " + key.split(".")[-1] + ":")
    wanted_line = next(i for i, line in enumerate(lines, 1) if line.startswith(wanted))
    assert hits[0].line == wanted_line


@pytest.mark.parametrize(("spec", "nets"), [
    ("192.168.20.0/28", ["192.168.20.0/28"]),
    ("192.168.10.8-192.168.10.11", ["192.168.10.8/30"]),
    ("192.168.10.8-192.168.10.12", ["192.168.10.8/30", "192.168.10.12/32"]),
], ids=["cidr", "aligned-range", "odd-range"])
def test_pool_networks(spec: str, nets: list[str]) -> None:
    assert [str(n) for n in pool_networks(spec)] == nets


def test_password_comes_from_the_environment_and_is_masked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from runbooks.core import secrets

    _, metallb = load_site(SITE.replace("  peers: [edge]",
                                        "  peers: [edge]\n  password: {env: GR_TEST_BGP_PW}"))
    monkeypatch.setenv("GR_TEST_BGP_PW", "s3cret-pw")
    assert metallb.password() == "s3cret-pw"
    assert secrets.mask("neighbor x password s3cret-pw") == "neighbor x password ********"
