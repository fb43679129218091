"""Clocks: each host within a tolerance of this machine's clock and synchronised to the gateway.

The gateway serves time to the VLAN (chrony with a local stratum, so it still serves offline)
and the boards follow it. demo.check compares each host's clock with this machine's (the
moment the answer that read it arrived: the clock is read last in its batch, `LAST`) and asks
chrony what it follows; demo.reset steps a
drifted clock to this machine's time first of all (certificates look "not yet valid" on a
board whose clock went back).

On the virtual lab (an inventory with `lab:`) the clock reading, chrony's answer and the
clock step are the lab's DOUBLE (runbooks/lab/doubles/clock.py): guests cannot set clocks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbooks.common.demo_section import section_of
from runbooks.core.facts import FactResult
from runbooks.core.readonly import Check
from runbooks.core.runner import Runbook
from runbooks.core.steps.base import Action, Change, Plan, Step

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext
    from runbooks.core.inventory import Host, Inventory

ALL_ROLES = ("gateway", "registry", "pi", "k3s-server", "k3s-agent", "microk8s", "xen-dom0",
             "router", "client")
LOCAL_REFERENCES = ("127.127.1.1", "LOCAL", "7F7F0101")
# the hosts whose time greenroom manages (chrony from dell-gateway or pi-prep); routers and
# clients keep their own
SYNCED_ROLES = ("gateway", "pi", "k3s-server", "k3s-agent", "microk8s", "xen-dom0")


@dataclass(frozen=True)
class ClockCommands:
    """How to read a host's clock and chrony's state, and how to step the clock."""

    read: str
    sync: str
    double: bool = False

    def set(self, epoch: float) -> str:
        if self.double:
            from runbooks.demo.order import load

            return str(load("runbooks.lab.doubles.clock:set_command")(epoch))
        return f"date -u -s @{epoch:.3f} >/dev/null"


REAL = ClockCommands(read="date +%s.%N", sync="chronyc -n -c tracking")


def commands_for(inventory: Inventory) -> ClockCommands:
    """The real commands, or the lab's double on a lab inventory."""
    if "lab" not in inventory.sections:
        return REAL
    from runbooks.demo.order import load

    double = load("runbooks.lab.doubles.clock")
    return ClockCommands(read=double.READ, sync=double.SYNC, double=True)


def gateway_address(inventory: Inventory) -> str:
    return str(inventory.network.gateway)


def parse_offset(result: FactResult, local: float) -> float | None:
    """The host's clock minus this machine's, in seconds (None when unreadable)."""
    try:
        return float(result.out.split()[0]) - local if result.ok else None
    except (ValueError, IndexError):
        return None


def parse_tracking(text: str) -> tuple[str, str] | None:
    """`chronyc -n -c tracking` -> (reference address, leap status), None when empty."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    fields = line.split(",")
    if len(fields) < 3:
        return None
    return fields[1], fields[-1]


def judge(host: Host, inventory: Inventory, offset: float | None, sync: FactResult,
          tolerance: float) -> list[Check]:
    """The clock checks of one host: offset within tolerance, chrony on the gateway's time."""
    checks = []
    if offset is None:
        checks.append(Check("clock", False, "cannot read the clock", "inv demo.reset"))
    else:
        ok = abs(offset) <= tolerance
        checks.append(Check(
            "clock", ok, f"{offset:+.1f} s from this machine (tolerance {tolerance:g} s)",
            "" if ok else "inv demo.reset (steps the clock)"))
    if not set(host.roles) & set(SYNCED_ROLES):
        return checks
    tracking = parse_tracking(sync.out) if sync.ok else None
    gateway = gateway_address(inventory)
    serves = "gateway" in host.roles
    if tracking is None:
        checks.append(Check("time sync", False, "chrony does not answer (chronyc "
                                 "tracking)", "inv demo.reset (installs chrony)"))
        return checks
    reference, leap = tracking
    if serves:
        ok = leap == "Normal"
        source = ("its local clock (local stratum)" if reference in LOCAL_REFERENCES
                  else reference)
        detail = f"serves the VLAN; follows {source}; {leap}"
    elif reference != gateway:
        ok = False
        detail = f"follows {reference}, not the gateway {gateway}"
    else:
        ok = leap == "Normal"
        detail = f"follows the gateway {gateway}" + ("" if ok else f" but says: {leap}")
    checks.append(Check("time sync", ok, detail,
                             "" if ok else "inv demo.reset (points chrony at the gateway)"))
    return checks


class ClockStep(Step):
    """Ensure the host's clock is within the tolerance of this machine's clock."""

    def __init__(self, commands: ClockCommands, tolerance: float) -> None:
        self.commands, self.tolerance = commands, tolerance
        self.name = f"Ensure the clock is within {tolerance:g} s of this machine's"

    def facts(self) -> Mapping[str, str]:
        return {"now": self.commands.read}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        now = time.time()
        offset = parse_offset(facts["now"], now)
        if offset is not None and abs(offset) <= self.tolerance:
            return []
        was = "unreadable" if offset is None else f"{offset:+.1f} s off"
        return [Change(f"step the clock to this machine's time (was {was})",
                       (Action(self.commands.set(time.time())),))]


def clock_plan(ctx: HostContext) -> Plan:
    return Plan().add(ClockStep(commands_for(ctx.inventory),
                                section_of(ctx.inventory).clock_tolerance))


CLOCKS = Runbook("clocks", ALL_ROLES, clock_plan)


# the probe fact read last in its batch, so the answer's arrival is its reference moment (the
# middle of the round trip would put a long batch's length into the offset)
LAST = "demo.clock"


def probe_facts(inventory: Inventory) -> dict[str, str]:
    commands = commands_for(inventory)
    return {LAST: commands.read, "demo.sync": commands.sync}


def probe_judge(host: Host, inventory: Inventory, facts: Mapping[str, FactResult],
                local: float) -> tuple[float | None, list[Any]]:
    offset = parse_offset(facts[LAST], local)
    checks = judge(host, inventory, offset, facts["demo.sync"],
                   section_of(inventory).clock_tolerance)
    return offset, checks
