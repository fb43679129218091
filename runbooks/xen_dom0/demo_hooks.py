"""What xen-dom0 gives the demo (runbooks/demo/order.py): its read-only health probe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runbooks.xen_dom0.health import Check, evaluate, health_facts
from runbooks.xen_dom0.settings import read_settings

if TYPE_CHECKING:
    from runbooks.core.facts import FactResult
    from runbooks.core.inventory import Host, Inventory

PREFIX = "xen-dom0/"


class Probe:
    """demo.check's probe: the checks of `inv xen-dom0.check`, in the demo's round trip."""

    roles = ("xen-dom0",)

    def facts(self, host: Host, inventory: Inventory) -> dict[str, str]:
        settings = read_settings(inventory.site, host.name, dict(host.vars))
        return {PREFIX + key: cmd for key, cmd in health_facts(settings).items()}

    def evaluate(self, host: Host, inventory: Inventory,
                 facts: Mapping[str, FactResult]) -> list[Check]:
        settings = read_settings(inventory.site, host.name, dict(host.vars))
        mine = {k[len(PREFIX):]: v for k, v in facts.items() if k.startswith(PREFIX)}
        return evaluate(settings, mine)


CHECK = Probe()
