"""What pi-prep contributes to demo.check (see runbooks/demo/order.py): the boards' kernel
prerequisites for Kubernetes, live: the memory cgroup enabled in the running kernel, and
swap off by pi-prep's own rule (runbooks/pi_prep/swap.py `swap_providers`: no active swap,
no swap line in fstab, no swap package installed, no swap service enabled or running).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runbooks.core.facts import FactResult
from runbooks.core.readonly import Check
from runbooks.pi_prep.facts import CGROUP_CONTROLLERS, PROC_CGROUPS, memory_cgroup_enabled
from runbooks.pi_prep.swap import swap_facts, swap_providers

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

FIX = "inv demo.reset (runs pi-prep)"
SWAP = "pi.swap."  # the swap rule's facts, among the other runbooks' ones


class _Check:
    roles = ("pi",)

    def facts(self, host: Host, inventory: Inventory) -> dict[str, str]:
        return {"pi.cgroups": PROC_CGROUPS.command,
                "pi.controllers": CGROUP_CONTROLLERS.command,
                **swap_facts(SWAP)}

    def evaluate(self, host: Host, inventory: Inventory,
                 facts: Mapping[str, FactResult]) -> list[Check]:
        memory = memory_cgroup_enabled(PROC_CGROUPS.read(facts, "pi.cgroups"),
                                       CGROUP_CONTROLLERS.read(facts, "pi.controllers"))
        sources = swap_providers(facts, SWAP)
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
