"""NAT planning: the nftables table and firewalld rules (runbooks.common.nat), port
forwards, and the gateway's use of them with Docker's DOCKER-USER chain."""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from runbooks.common import nat
from runbooks.common.nat import Nat, PortForward
from runbooks.core.facts import FactResult
from runbooks.core.inventory import load_inventory
from runbooks.core.steps import StepFailed
from runbooks.dell_gateway import docker
from runbooks.dell_gateway import nat as gateway_nat

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(str(ROOT / "hosts" / "lab.yaml"))
SUBNET = IPv4Network("192.168.10.0/25")
NAT = Nat("eth1.100", "eth1", SUBNET)
TABLE = nat.nft_table(NAT)
FORWARDS = (PortForward("tcp", 8080, "192.168.10.3", 80),
            PortForward("udp", 53, "192.168.10.4", interface="eth2"))
NAT_FORWARDS = Nat("eth1.100", "eth1", SUBNET, FORWARDS)
NO_DOCKER = {"nat.docker": FactResult(1, "iptables: No chain/target/match by that name.\n")}
FIREWALLD = {"nat.firewalld": FactResult(0, "running\n"), **NO_DOCKER}
NO_FIREWALLD = {"nat.firewalld": FactResult(1, ""), **NO_DOCKER}


def test_table_rules():
    rules = nat.table_lines(TABLE)
    assert 'iifname "eth1.100" oifname "eth1" ip saddr 192.168.10.0/25 accept' in rules
    assert 'iifname "eth1" oifname "eth1.100" ct state established,related accept' in rules
    assert 'oifname "eth1" ip saddr 192.168.10.0/25 masquerade' in rules


def test_ruleset_replaces_only_our_table():
    text = nat.nft_ruleset(NAT, "hosts/lab.yaml", "dell-gateway", "NAT for VLAN 100")
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines[:3] == ["table inet greenroom", "delete table inet greenroom",
                         "table inet greenroom {"]
    assert "flush ruleset" not in text


@pytest.mark.parametrize(("live", "expected"), [
    (FactResult(0, TABLE), []),
    (FactResult(0, TABLE.replace("\n\n", "\n").replace(
        "masquerade", "masquerade # handle 7")), []),
    (FactResult(1, "Error: No such file or directory"),
     ["load inet greenroom with nft -f /etc/nftables.d/greenroom.nft"]),
    (FactResult(0, TABLE.replace('oifname "eth1" ip saddr', 'oifname "eth9" ip saddr')),
     ["reload (live rules differ) inet greenroom with nft -f /etc/nftables.d/greenroom.nft"]),
], ids=["converged", "handles-and-blank-lines-ignored", "absent", "differs"])
def test_nft_table_plan(live, expected):
    assert [c.summary for c in nat.NftTable(NAT).plan({"live": live})] == expected


def test_port_forwards_are_dnat_rules_in_a_prerouting_chain():
    rules = nat.table_lines(nat.nft_table(NAT_FORWARDS))
    assert rules[rules.index("chain prerouting {") + 1:] == [
        "type nat hook prerouting priority dstnat; policy accept;",
        'iifname "eth1" tcp dport 8080 dnat ip to 192.168.10.3:80',
        'iifname "eth2" udp dport 53 dnat ip to 192.168.10.4',
        "}", "}"]
    assert "prerouting" not in TABLE  # no forwards, no chain: the gateway's table as before


def test_a_forward_added_reloads_the_table():
    changes = nat.NftTable(NAT_FORWARDS).plan({"live": FactResult(0, TABLE)})
    assert [c.summary for c in changes] == [
        "reload (live rules differ) inet greenroom with nft -f /etc/nftables.d/greenroom.nft"]


@pytest.mark.parametrize(("args", "message"), [
    (("sctp", 80, "192.168.10.3"), "use tcp or udp"),
    (("tcp", 0, "192.168.10.3"), "use 1-65535"),
    (("tcp", 80, "192.168.10.3", 70000), "use 1-65535"),
    (("tcp", 80, "rp0"), "IPv4"),
], ids=["protocol", "port-zero", "to-port-too-big", "not-an-address"])
def test_bad_port_forwards_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        PortForward(*args)


def test_a_second_table_name_keeps_its_own_file_unit_and_comment():
    other = Nat("xenbr0", "eth0", IPv4Network("10.0.0.0/24"), name="greenroom_xen")
    assert (other.ruleset, other.unit) == ("/etc/nftables.d/greenroom_xen.nft",
                                           "greenroom-xen-nftables.service")
    assert nat.nft_table(other).startswith("table inet greenroom_xen {")
    assert all("--comment greenroom_xen " in r for r in nat.firewalld_rules(other))


def _can_unshare_net() -> bool:
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare_net(), reason="needs root, nft and unshare -n")
def test_ruleset_loads_twice_and_lists_as_rendered(tmp_path):
    """In a private network namespace of our own: nft -c, nft -f (twice: replaceable), list."""
    path = tmp_path / "greenroom.nft"
    path.write_text(nat.nft_ruleset(NAT_FORWARDS, "t", "test", "NAT with port forwards"))
    script = (f"nft add table ip other && nft -c -f {path} && nft -f {path} && nft -f {path} "
              "&& nft list table inet greenroom && nft list tables")
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    listed = nat.table_lines(done.stdout.split("table ip other")[0])
    assert listed == nat.table_lines(nat.nft_table(NAT_FORWARDS))
    assert "table ip other" in done.stdout  # somebody else's table survived


def fw(permanent: list[str], runtime: list[str] | None = None) -> dict[str, FactResult]:
    return {"permanent": FactResult(0, "\n".join(permanent)),
            "runtime": FactResult(0, "\n".join(permanent if runtime is None else runtime))}


RULES = nat.firewalld_rules(NAT)
OTHERS = "ipv4 filter FORWARD 0 -i docker0 -j ACCEPT"
STALE = ("ipv4 nat POSTROUTING 0 -s 192.168.10.0/25 -o eth9 -m comment --comment greenroom "
         "-j MASQUERADE")


@pytest.mark.parametrize(("facts", "expected"), [
    (fw([]), [f"firewall-cmd --permanent --direct --add-rule {r}" for r in RULES]
     + [f"firewall-cmd --direct --add-rule {r}" for r in RULES]),
    (fw(RULES + [OTHERS]), []),
    (fw(RULES, runtime=[]), [f"firewall-cmd --direct --add-rule {r}" for r in RULES]),
    (fw(RULES + [STALE, OTHERS]),
     [f"firewall-cmd --permanent --direct --remove-rule {STALE}",
      f"firewall-cmd --direct --remove-rule {STALE}"]),
], ids=["none-yet", "converged-others-kept", "runtime-lost-after-reload", "stale-ours-removed"])
def test_firewalld_plan(facts, expected):
    step = nat.FirewalldDirect(RULES)
    assert [a.command for c in step.plan(facts) for a in c.actions] == expected


def test_firewalld_rules_match_the_seed_plus_return_traffic():
    assert RULES == [
        "ipv4 filter FORWARD 0 -i eth1.100 -o eth1 -s 192.168.10.0/25 "
        "-m comment --comment greenroom -j ACCEPT",
        "ipv4 filter FORWARD 0 -i eth1 -o eth1.100 -m conntrack --ctstate RELATED,ESTABLISHED "
        "-m comment --comment greenroom -j ACCEPT",
        "ipv4 nat POSTROUTING 0 -s 192.168.10.0/25 -o eth1 -m comment --comment greenroom "
        "-j MASQUERADE",
    ]


def test_firewalld_port_forward_rules():
    assert nat.firewalld_rules(NAT_FORWARDS)[3:] == [
        "ipv4 nat PREROUTING 0 -i eth1 -p tcp --dport 8080 -m comment --comment greenroom "
        "-j DNAT --to-destination 192.168.10.3:80",
        "ipv4 nat PREROUTING 0 -i eth2 -p udp --dport 53 -m comment --comment greenroom "
        "-j DNAT --to-destination 192.168.10.4",
    ]


def test_firewalld_not_answering_is_an_error():
    with pytest.raises(StepFailed, match="is firewalld running"):
        nat.FirewalldDirect(RULES).plan({"permanent": FactResult(252, ""),
                                         "runtime": FactResult(252, "")})


@pytest.mark.parametrize(("facts", "types"), [
    (FIREWALLD, ["Sysctl", "FirewalldDirect"]),
    (NO_FIREWALLD, ["Sysctl", "Packages", "File", "File", "Command", "NftTable", "Service"]),
], ids=["firewalld", "nftables"])
def test_nat_steps_choice(facts, types):
    steps = gateway_nat.nat_steps_for(INV.gateway, INV, facts)
    assert [type(s).__name__ for s in steps] == types
    assert steps[0].key == "net.ipv4.ip_forward" and steps[0].value == "1"


def test_nftables_file_is_validated():
    ruleset = gateway_nat.nat_steps_for(INV.gateway, INV, NO_FIREWALLD)[2]
    assert ruleset.path == "/etc/nftables.d/greenroom.nft"
    assert ruleset.validate == "nft -c -f {}"


# -- a gateway that also runs Docker (FORWARD policy DROP, DOCKER-USER chain) ----------------

DOCKER_CHAIN = "-N DOCKER-USER\n-A DOCKER-USER -j RETURN\n"


def test_docker_gateway_gets_docker_user_rules_and_a_unit():
    facts = {**NO_FIREWALLD, "nat.docker": FactResult(0, DOCKER_CHAIN)}
    steps = gateway_nat.nat_steps_for(INV.hosts["dell"], INV, facts)
    names = [s.name for s in steps]
    assert "Ensure VLAN traffic passes Docker's DOCKER-USER chain" in names
    assert any("greenroom-docker-forward.service" in n for n in names)


def test_no_docker_no_docker_steps():
    names = [s.name for s in gateway_nat.nat_steps_for(INV.hosts["dell"], INV, NO_FIREWALLD)]
    assert not any("DOCKER" in n or "docker" in n for n in names)


@pytest.mark.parametrize(
    ("chain", "wanted"),
    [
        (DOCKER_CHAIN, 2),
        (DOCKER_CHAIN + "\n".join(docker.docker_rules("eth1.100", "eth1")) + "\n", 0),
        (DOCKER_CHAIN + docker.docker_rules("eth1.100", "eth1")[0] + "\n", 1),
    ],
    ids=["fresh", "converged", "one-missing"],
)
def test_docker_user_rules_plan(chain, wanted):
    step = docker.DockerUserRules(docker.docker_rules("eth1.100", "eth1"))
    changes = step.plan({"chain": FactResult(0, chain)})
    assert len(changes) == wanted
    for change in changes:
        command = change.actions[0].command
        assert command.startswith("iptables -w -C DOCKER-USER -i eth1")
        assert "|| iptables -w -I DOCKER-USER" in command


def test_docker_unit_reinserts_rules_idempotently():
    text = docker.unit_text(docker.docker_rules("eth1.100", "eth1"))
    assert "After=docker.service" in text and "WantedBy=docker.service" in text
    assert text.count("ExecStart=") == 2 and "iptables -w -C DOCKER-USER" in text
