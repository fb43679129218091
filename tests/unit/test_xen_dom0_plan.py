"""xen-dom0's plan for one host, from canned facts: which steps, in which order."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from runbooks.core.facts import FactResult
from runbooks.core.inventory import load_inventory
from runbooks.core.steps import StepFailed
from runbooks.xen_dom0.plan import xen_plan

INVENTORY = Path(__file__).resolve().parents[2] / "hosts" / "lab-xen.yaml"
ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
         "2: mgmt0    inet 10.232.0.2/24 brd 10.232.0.255 scope global mgmt0\n"
         "3: eth1    inet 10.232.1.2/24 brd 10.232.1.255 scope global eth1\n")


def facts(**over: FactResult) -> dict[str, FactResult]:
    base = {"xen.arch": FactResult(0, "amd64\n"), "xen.dummy": FactResult(1, ""),
            "xen.addrs": FactResult(0, ADDRS), "xen.firewalld": FactResult(1, "")}
    base.update(over)
    return base


@dataclass
class Ctx:
    host: Any
    inventory: Any
    options: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, FactResult] = field(default_factory=facts)

    def gather(self, commands: dict[str, str]) -> dict[str, FactResult]:
        return {key: self.answers[key] for key in commands}


@pytest.fixture
def ctx() -> Ctx:
    inv = load_inventory(str(INVENTORY))
    return Ctx(inv.hosts["xen0"], inv)


def names(ctx: Ctx) -> list[str]:
    return [step.name for step in xen_plan(ctx).steps]  # type: ignore[arg-type]


def test_the_lab_dom0s_plan_in_order(ctx: Ctx):
    steps = names(ctx)
    order = ["Ensure packages installed: xen-system-amd64 ifupdown bridge-utils dnsmasq",
             "Ensure no old dpkg-divert of /etc/grub.d/20_linux_xen",
             "Ensure /etc/default/grub.d/xen.cfg",
             "Ensure /etc/network/interfaces.d/greenroom-xen",
             "Ensure bridge xenbr0 is up with 10.232.1.2/24",
             "Ensure bridge virbr1 is up with 192.168.100.1/24",
             "Ensure /var/lib/dnsmasq/virbr1/dnsmasq.conf",
             "Ensure dnsmasq@virbr1.service enabled and running",
             "Ensure the host runs Xen with GRUB_CMDLINE_XEN_DEFAULT"]
    assert [s for s in steps if s in order] == order
    assert any("inet greenroom_xen_virbr1" in s for s in steps)
    handlers = [h.name for h in xen_plan(ctx).handlers]  # type: ignore[arg-type]
    assert handlers.index("update-grub") < handlers.index("reboot")


def test_the_bridge_on_the_ssh_nic_is_marked(ctx: Ctx):
    ctx.host = replace(ctx.host, address="10.232.1.2")
    bridge = next(s for s in xen_plan(ctx).steps  # type: ignore[arg-type]
                  if s.name.startswith("Ensure bridge xenbr0"))
    assert bridge.ssh_port  # type: ignore[attr-defined]


def test_firewalld_hosts_get_direct_rules(ctx: Ctx):
    ctx.answers = facts(**{"xen.firewalld": FactResult(0, "running")})
    steps = names(ctx)
    assert any("firewalld direct rules" in s for s in steps)
    assert not any("nftables table" in s for s in steps)


def test_xen_not_the_default_entry_never_asks_for_a_reboot(ctx: Ctx):
    vars_ = dict(ctx.host.vars, xen_default=False)
    ctx.host = replace(ctx.host, vars=vars_)
    assert "Ensure the host runs Xen with GRUB_CMDLINE_XEN_DEFAULT" not in names(ctx)


def test_reboot_option_forces_one(ctx: Ctx):
    ctx.options = {"reboot": True}
    assert "Reboot requested with --reboot" in names(ctx)


@pytest.mark.parametrize(("change", "message"), [
    pytest.param({"port_forwards": [{"port": 22, "to": "192.168.100.10"}]},
                 "is the port greenroom's SSH uses", id="forward-of-ssh-port"),
    pytest.param({"port_forwards": [{"port": 80, "to": "10.9.9.9"}]},
                 "is on no private bridge", id="forward-elsewhere"),
    pytest.param({"public_bridge": {"name": "virbr1", "nic": "eth1"}},
                 "both the public and a private bridge", id="bridge-name-twice"),
])
def test_what_the_schema_cannot_see_is_refused_before_any_change(ctx: Ctx,
                                                                 change: dict[str, Any],
                                                                 message: str):
    ctx.host = replace(ctx.host, vars=dict(ctx.host.vars, **change))
    with pytest.raises(StepFailed, match=message):
        xen_plan(ctx)  # type: ignore[arg-type]


def test_an_unsupported_architecture_is_refused(ctx: Ctx):
    ctx.answers = facts(**{"xen.arch": FactResult(0, "armhf\n")})
    with pytest.raises(StepFailed, match="amd64, arm64 only"):
        xen_plan(ctx)  # type: ignore[arg-type]


@pytest.mark.parametrize("masquerade", [True, False], ids=["masquerade", "no-masquerade"])
def test_masquerade_off_keeps_the_port_forwards(masquerade: bool):
    from ipaddress import IPv4Network

    from runbooks.common.nat import Nat, PortForward, firewalld_rules, nft_table

    nat = Nat("virbr1", "xenbr0", IPv4Network("192.168.100.0/24"),
              (PortForward("tcp", 8080, "192.168.100.10", 80),), "greenroom_xen_virbr1",
              masquerade=masquerade)
    table, rules = nft_table(nat), " ".join(firewalld_rules(nat))
    assert ("masquerade" in table, "MASQUERADE" in rules) == (masquerade, masquerade)
    assert 'iifname "xenbr0" tcp dport 8080 dnat ip to 192.168.100.10:80' in table
    assert "--dport 8080" in rules


def test_the_demo_probe_reads_the_checks_in_the_demos_round_trip(ctx: Ctx):
    from runbooks.demo.order import ORDER, load
    from runbooks.xen_dom0.demo_hooks import PREFIX

    entry = next(e for e in ORDER if e.name == "xen-dom0")
    probe = load(entry.check or "")
    commands = probe.facts(ctx.host, ctx.inventory)
    assert commands and all(key.startswith(PREFIX) for key in commands)
    answers = {key: FactResult(1, "") for key in commands}
    checks = probe.evaluate(ctx.host, ctx.inventory, answers)
    bad = {c.name for c in checks if not c.ok}
    assert {"hypervisor", "bridge virbr1", "bridge xenbr0", "dnsmasq@virbr1"} <= bad


@pytest.mark.parametrize(("dummy", "port"), [
    pytest.param(FactResult(0, ""), True, id="dummy-module-available"),
    pytest.param(FactResult(1, ""), False, id="no-dummy-module"),
])
def test_private_bridges_get_a_dummy_port_only_where_the_module_is(ctx: Ctx, dummy, port):
    ctx.answers = facts(**{"xen.dummy": dummy})
    stanzas = next(s for s in xen_plan(ctx).steps  # type: ignore[arg-type]
                   if s.name == "Ensure /etc/network/interfaces.d/greenroom-xen")
    assert ("bridge_ports virbr1-dummy" in stanzas.content) == port  # type: ignore[attr-defined]


class _Done:
    def __init__(self, ok: bool, stdout: str) -> None:
        self.ok, self.stdout = ok, stdout


class _Ctx:
    """Answers the one command the post-reboot check runs."""

    def __init__(self, ok: bool, stdout: str) -> None:
        self.done, self.asked = _Done(ok, stdout), []

    def run(self, command: str) -> _Done:
        self.asked.append(command)
        return self.done


@pytest.mark.parametrize(("ok", "stdout", "error"), [
    (True, "host : xen0\nxen_commandline : {wanted} console=vga\n", None),
    (False, "xl: command not found\n", "does not answer"),
    (True, "host : xen0\nxen_commandline : dom0_mem=2G,max:2G\n", "not 'dom0_mem=4G"),
], ids=["xen-with-our-cmdline", "xen-not-running", "other-cmdline"])
def test_post_reboot_check_reads_xl_info(ok: bool, stdout: str, error: str | None) -> None:
    from runbooks.core.steps import StepFailed
    from runbooks.xen_dom0 import render
    from runbooks.xen_dom0.plan import xen_checked
    from runbooks.xen_dom0.settings import read_settings
    from runbooks.xen_dom0.steps import XL_INFO

    settings = read_settings("lab", "xen0", {"dom0": {"memory": "4G", "vcpus": 2}})
    assert settings.xen_default
    ctx = _Ctx(ok, stdout.format(wanted=render.xen_cmdline(settings)))
    if error is None:
        xen_checked(settings)(ctx)
    else:
        with pytest.raises(StepFailed, match=error):
            xen_checked(settings)(ctx)
    assert ctx.asked == [XL_INFO.command]
