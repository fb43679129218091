"""The gateway health judgement, from recorded fact outputs (healthy, and each way it fails)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbooks.core.facts import FactResult
from runbooks.core.inventory import load_inventory
from runbooks.dell_gateway.health import evaluate, format_checks, health_facts, pool_size

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(str(ROOT / "hosts" / "lab.yaml"))
DELL = INV.hosts["dell"]
NOW = datetime(2024, 1, 10, 10, 5, tzinfo=UTC)


def link(addr: str | None = "192.168.10.2", up: bool = True) -> str:
    info = [{"family": "inet", "local": addr, "prefixlen": 25}] if addr else []
    return json.dumps([{"ifname": "eth1.100", "flags": ["UP"] if up else [],
                        "operstate": "UP" if up else "DOWN", "linkinfo": {"info_kind": "veth"},
                        "addr_info": info}])


def leases(count: int) -> str:
    return "".join(
        f"lease 192.168.10.{26 + i} {{\n  starts 3 2024/01/10 10:00:00;\n"
        f"  ends 3 2024/01/10 10:10:00;\n  binding state active;\n}}\n" for i in range(count))


HEALTHY = {
    "link": FactResult(0, link()),
    "dhcpd": FactResult(0, "  508 dhcpd -user dhcpd -group dhcpd -4 -pf /run/dhcpd.pid "
                           "-cf /etc/dhcp/dhcpd.conf eth1.100\n"),
    "udp": FactResult(0, 'UNCONN 0 0 0.0.0.0:67 0.0.0.0:* users:(("dhcpd",pid=508,fd=8))\n'),
    "packet": FactResult(0, 'p_raw 0 0 *:eth1.100 * users:(("dhcpd",pid=508,fd=6))\n'),
    "forward": FactResult(0, "1\n"),
    "firewalld": FactResult(127, ""),
    "fw_rules": FactResult(127, ""),
    "nft": FactResult(0, 'table inet greenroom {\n\tchain postrouting {\n\t\toifname "eth1" '
                         'ip saddr 192.168.10.0/25 masquerade\n\t}\n}\n'),
    "leases": FactResult(0, leases(1)),
    "nat.docker": FactResult(1, "iptables: No chain/target/match by that name.\n"),
}


def verdicts(facts) -> dict[str, bool]:
    return {c.name: c.ok for c in evaluate(DELL, INV, facts, NOW)}


def test_facts_cover_what_evaluate_reads():
    assert set(health_facts(DELL)) == set(HEALTHY)


def test_healthy():
    checks = evaluate(DELL, INV, HEALTHY, NOW)
    assert all(c.ok for c in checks), checks
    assert [c.name for c in checks] == ["interface", "dhcpd running", "dhcpd listening",
                                        "forwarding", "masquerade", "pool"]
    assert "100 of 101 addresses free" in checks[-1].detail
    assert format_checks("dell", checks).endswith("dell: healthy")


@pytest.mark.parametrize(("key", "fact", "failing"), [
    ("link", FactResult(1, ""), "interface"),
    ("link", FactResult(0, link(addr=None)), "interface"),
    ("link", FactResult(0, link(addr="192.168.10.9")), "interface"),
    ("link", FactResult(0, link(up=False)), "interface"),
    ("dhcpd", FactResult(1, ""), "dhcpd running"),
    ("udp", FactResult(0, ""), "dhcpd listening"),
    ("udp", FactResult(0, 'UNCONN 0 0 0.0.0.0:67 0.0.0.0:* users:(("dnsmasq",pid=9,fd=4))\n'),
     "dhcpd listening"),
    ("udp", FactResult(0, 'UNCONN 0 0 0.0.0.0:6767 0.0.0.0:* users:(("dhcpd",pid=5,fd=4))\n'),
     "dhcpd listening"),
    ("packet", FactResult(0, 'p_raw 0 0 *:eth1 * users:(("dhcpd",pid=508,fd=6))\n'),
     "dhcpd listening"),
    ("forward", FactResult(0, "0\n"), "forwarding"),
    ("nft", FactResult(1, "Error: No such file or directory"), "masquerade"),
    ("nft", FactResult(0, HEALTHY["nft"].out.replace('"eth1"', '"eth9"')), "masquerade"),
    ("leases", FactResult(0, leases(101)), "pool"),
], ids=["no-interface", "no-address", "other-address", "down", "no-dhcpd", "udp-not-bound",
        "udp-67-bound-by-another-server", "dhcpd-on-another-port",
        "listening-elsewhere", "forwarding-off", "no-table", "masquerade-other-interface",
        "pool-exhausted"])
def test_each_failure_is_reported(key, fact, failing):
    result = verdicts(HEALTHY | {key: fact})
    assert [name for name, ok in result.items() if not ok] == [failing]


def test_expired_leases_free_the_pool():
    later = datetime(2024, 1, 10, 11, 0, tzinfo=UTC)
    checks = evaluate(DELL, INV, HEALTHY | {"leases": FactResult(0, leases(101))}, later)
    assert checks[-1].ok and "101 of 101" in checks[-1].detail


def test_firewalld_masquerade():
    fw = {"firewalld": FactResult(0, "running\n"), "nft": FactResult(1, ""),
          "fw_rules": FactResult(0, "ipv4 nat POSTROUTING 0 -s 192.168.10.0/25 -o eth1 "
                                    "-m comment --comment greenroom -j MASQUERADE\n")}
    assert verdicts(HEALTHY | fw)["masquerade"]
    assert not verdicts(HEALTHY | fw | {"fw_rules": FactResult(0, "")})["masquerade"]


def test_pool_size():
    assert pool_size(INV.network.dhcp.start, INV.network.dhcp.end) == 101



def test_docker_forwarding_is_checked_only_where_docker_runs():
    from runbooks.dell_gateway.docker import docker_rules

    chain = "-N DOCKER-USER\n" + "\n".join(docker_rules("eth1.100", "eth1")) + \
        "\n-A DOCKER-USER -j RETURN\n"
    assert verdicts({**HEALTHY, "nat.docker": FactResult(0, chain)})["docker forward"] is True
    bare = verdicts({**HEALTHY, "nat.docker": FactResult(0, "-N DOCKER-USER\n")})
    assert bare["docker forward"] is False
    assert "docker forward" not in verdicts(HEALTHY)
