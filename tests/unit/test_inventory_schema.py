"""The inventory's extension point: sections and per-role vars declared outside core are
validated with the rest of the file (file, line, key, did-you-mean, expected type)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.core import inventory_schema
from runbooks.core.inventory import InventoryError, parse_inventory
from runbooks.core.inventory_schema import Field, Table, register_section, register_vars

LAB = (Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml").read_text()


@pytest.fixture
def clean_registry(monkeypatch):
    """Declarations made by a test vanish with it (no global state left behind)."""
    monkeypatch.setattr(inventory_schema, "_sections", dict(inventory_schema._sections))
    monkeypatch.setattr(inventory_schema, "_vars",
                        {k: dict(v) for k, v in inventory_schema._vars.items()})


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "site.yaml")
    return [str(p) for p in caught.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


LBPOOL = Table({"pool": Field(str, "an address range like 192.168.10.200-192.168.10.220",
                               required=True, pattern=r"[\d.]+-[\d.]+"),
                 "bgp": Field(bool, "whether to announce with BGP")})


def test_a_declared_section_is_read_into_the_inventory(clean_registry):
    register_section("lbpool", schema=LBPOOL)
    text = LAB + "lbpool: {pool: 192.168.10.200-192.168.10.220}\n"
    inventory = parse_inventory(text, "site.yaml")
    assert inventory.sections["lbpool"] == {"pool": "192.168.10.200-192.168.10.220"}


def test_an_undeclared_section_is_an_unknown_key_with_a_suggestion():
    text = LAB + "lbpol: {pool: x}\n"
    (found,) = problems(text)
    assert found.startswith(f"site.yaml:{line_of(text, 'lbpol:')}: lbpol: unknown key "
                            "'lbpol'; allowed keys: site, defaults, network, registry, "
                            "hosts, "), found
    assert "lab" in found.split("allowed keys:")[1]  # the lab's section, declared by its layer


@pytest.mark.parametrize("body,message", [
    ("{pool: 192.168.10.200-192.168.10.220, bpg: true}",
     "lbpool.bpg: unknown key 'bpg'; did you mean 'bgp'?"),
    ("{pool: 192.168.10.200-192.168.10.220, bgp: 'yes'}",
     "lbpool.bgp: must be true or false (whether to announce with BGP), got a string 'yes'"),
    ("{bgp: true}", "lbpool.pool: missing required key 'pool'; add it"),
    ("{pool: everything}", "lbpool.pool: 'everything' is not an address range like "
                           "192.168.10.200-192.168.10.220"),
    ("[pool]", "lbpool: must be a mapping, got a list ['pool']"),
], ids=["misspelt", "wrong-type", "missing", "pattern", "not-a-mapping"])
def test_section_problems_name_line_key_and_fix(clean_registry, body, message):
    register_section("lbpool", schema=LBPOOL)
    text = LAB + f"lbpool: {body}\n"
    assert problems(text) == [f"site.yaml:{line_of(text, 'lbpool:')}: {message}"]


def test_a_reader_function_sees_hosts_and_network(clean_registry):
    @register_section("stage")
    def read_stage(c, value, ctx):
        if value is None:
            return None
        server = value.get("server")
        if server not in ctx.hosts:
            c.add(("stage", "server"), f"no host {server!r}")
            return None
        return (server, str(ctx.network.vip))

    assert parse_inventory(LAB + "stage: {server: rp0}\n").sections["stage"] == \
        ("rp0", "192.168.10.25")
    assert problems(LAB + "stage: {server: rp9}\n")[0].endswith(
        "stage.server: no host 'rp9'")
    assert "stage" not in parse_inventory(LAB).sections  # absent: the reader returned None


def test_per_role_vars_are_the_union_of_the_hosts_roles(clean_registry):
    register_vars("microk8s", {"node_labels": Field(list, "labels", items=Field(str))})
    boards = LAB.replace(", k3s-server]", "]").replace(", k3s-agent]", "]")  # no k3s here
    text = boards.replace("    roles: [pi]\n", "    roles: [pi, microk8s]\n", 1).replace(
        "  rp0:\n", "  rp0:\n    vars: {rng_tools: true, node_labels: [a, 3]}\n", 1)
    assert problems(text) == [
        f"site.yaml:{line_of(text, 'node_labels')}: hosts.rp0.vars.node_labels[1]: must be a "
        "string, got an integer 3"]


def test_declaring_a_name_twice_fails_at_once(clean_registry):
    register_section("stage", schema=Table({}))
    with pytest.raises(ValueError, match="already declared"):
        register_section("stage", schema=Table({}))
    with pytest.raises(ValueError, match="already declared"):
        register_section("hosts", schema=Table({}))
    with pytest.raises(ValueError, match="already declared"):
        register_vars("pi", {"rng_tools": Field(bool)})


def test_the_cluster_section_and_node_vars_are_declared_from_common():
    assert "cluster" in inventory_schema.sections()
    assert set(inventory_schema.vars_schema(["k3s-agent"])) == {"arch"}


def test_pi_prep_declares_its_vars_from_common():
    assert set(inventory_schema.vars_schema(["pi"])) == {
        "sandbox_image", "registry_hosts", "rng_tools", "iptables_legacy", "kubernetes",
        "overclock", "hostname"}
