"""How the engine reaches hosts, and the one plug-in point for anything that changes it.

By default the engine uses the user's own SSH setup (`~/.ssh/config`, keys, agents,
`~/.ssh/known_hosts`). A plug-in may supply a private key and an extra known_hosts file for
an inventory: the virtual lab plugs itself in from the CLI layer (`tasks.py`) with
`plug_in(provider)`, so the engine never imports the lab. A provider returns None for
inventories that are not its own, or raises a `UsageError` (such as "the lab is not
running") before any packet is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbooks.core.errors import UsageError

if TYPE_CHECKING:
    from runbooks.core.inventory import Inventory


@dataclass(frozen=True)
class Access:
    """Extra credentials for reaching an inventory's hosts (None: the user's defaults)."""

    key_filename: str | None = None
    known_hosts: str | None = None


Provider = Callable[["Inventory"], "Access | None"]
_providers: list[Provider] = []


def plug_in(provider: Provider) -> None:
    """Register `provider` (once; registering it again changes nothing)."""
    if provider not in _providers:
        _providers.append(provider)


def unplug(provider: Provider) -> None:
    """Remove `provider` (tests use this to leave no global state behind)."""
    if provider in _providers:
        _providers.remove(provider)


def access_for(inventory: Inventory) -> Access:
    """How to reach `inventory`'s hosts: the first provider's answer, else the defaults.

    An inventory with a section that only a plug-in can reach (its value has a
    `needs_access` text, like the virtual lab's `lab:`) but that no provider answers for is
    refused with that text: its addresses only exist where the plug-in knows."""
    for provider in _providers:
        found = provider(inventory)
        if found is not None:
            return found
    for value in getattr(inventory, "sections", {}).values():
        needs = getattr(value, "needs_access", None)
        if needs:
            raise UsageError(f"{inventory.path} {needs}")
    return Access()
