"""What pi-prep contributes to demo.check (see runbooks/demo/order.py): the boards' kernel
prerequisites for Kubernetes, live: the memory cgroup enabled in the running kernel, no
swap active and nothing that brings it back (dphys-swapfile running, a swap line in fstab).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runbooks.core.facts import FactResult
from runbooks.core.readonly import Check
from runbooks.core.steps.system import unit_active
from runbooks.pi_prep.facts import CGROUP_CONTROLLERS, PROC_CGROUPS, SWAPS, memory_cgroup_enabled
from runbooks.pi_prep.fstab import swap_entries

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

FIX = "inv demo.reset (runs pi-prep)"
DPHYS_ACTIVE = unit_active("dphys-swapfile")


class _Check:
    roles = ("pi",)

    def facts(self, host: Host, inventory: Inventory) -> dict[str, str]:
        return {"pi.cgroups": PROC_CGROUPS.command,
                "pi.controllers": CGROUP_CONTROLLERS.command,
                "pi.swaps": SWAPS.command,
                "pi.dphys": DPHYS_ACTIVE.command,
                "pi.fstab": "cat /etc/fstab"}

    def evaluate(self, host: Host, inventory: Inventory,
                 facts: Mapping[str, FactResult]) -> list[Check]:
        memory = memory_cgroup_enabled(PROC_CGROUPS.read(facts, "pi.cgroups"),
                                       CGROUP_CONTROLLERS.read(facts, "pi.controllers"))
        active = SWAPS.read(facts, "pi.swaps") or ()
        sources = [f"active: {', '.join(s.name for s in active)}"] if active else []
        if DPHYS_ACTIVE.read(facts, "pi.dphys") == "active":
            sources.append("dphys-swapfile running")
        lines = swap_entries(facts["pi.fstab"].out if facts["pi.fstab"].ok else "")
        if lines:
            sources.append(f"fstab: {lines[0].split()[0]}")
        return [
            Check("memory cgroup", memory,
                         "enabled in the running kernel" if memory
                         else "disabled in the running kernel (cmdline cgroup arguments)",
                         "" if memory else FIX),
            Check("swap off", not sources,
                         "; ".join(sources) if sources else "no swap, none configured",
                         FIX if sources else ""),
        ]


CHECK = _Check()
