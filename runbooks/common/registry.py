"""The site's image registry endpoint, computed in one place for every runbook and task.

Boards reach the registry at its host's VLAN address (the gateway's is network.gateway when
its vlan has no explicit address), else at the host's management address, on the port the
inventory's `registry:` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbooks.core.steps import StepFailed


@dataclass(frozen=True)
class Endpoint:
    """Where the registry listens: `host` (inventory name), `address` and `port`."""

    host: str
    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self}"


def registry_endpoint(inventory: Any) -> Endpoint | None:
    """The inventory's registry endpoint, or None when it has no `registry:` section."""
    registry = getattr(inventory, "registry", None)
    if registry is None:
        return None
    host = inventory.hosts.get(registry.host)
    if host is None:  # the inventory check refuses this; kept for hand-built inventories
        return Endpoint(registry.host, registry.host, registry.port)
    if host.vlan is not None and host.vlan.address is not None:
        address = str(host.vlan.address.ip)
    elif "gateway" in host.roles:
        address = str(inventory.network.gateway)
    else:
        address = host.address
    return Endpoint(host.name, address, registry.port)


def required_endpoint(inventory: Any) -> Endpoint:
    """The registry endpoint; StepFailed naming the section to add when there is none."""
    endpoint = registry_endpoint(inventory)
    if endpoint is None:
        raise StepFailed(f"{inventory.path}: no `registry:` section; add `registry: {{host: "
                         "<gateway name>, port: 5001}}`, then run again")
    return endpoint
