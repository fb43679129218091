"""Read facts from the gateway hosts without changing anything (for `leases` and `check`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from invoke import Exit

from runbooks.core.facts import FactResult, gather
from runbooks.core.runner import UsageError, select_hosts

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory
    from runbooks.core.runner import Runbook


def gateway_facts(
    inv: Inventory, runbook: Runbook, host_spec: str | None,
    commands: Callable[[Host], Mapping[str, str]],
) -> list[tuple[Host, dict[str, FactResult] | str]]:
    """(host, facts) per selected gateway, or (host, error text) when it was unreachable."""
    from runbooks.core.inventory import InventoryError
    from runbooks.core.session import Connector, HostUnreachable, SessionError

    try:
        hosts = select_hosts(inv, runbook, host_spec)
    except (UsageError, InventoryError) as exc:
        raise Exit(f"{inv.path}: {exc}", code=2) from None
    if not hosts:
        raise Exit(f"{inv.path}: no host has role gateway", code=2)
    try:
        connector = Connector(inv)
    except Exception as exc:  # noqa: BLE001 - LabNotRunning and kin: say it, exit 2
        raise Exit(str(exc), code=2) from None
    results: list[tuple[Host, Any]] = []
    try:
        for host in hosts:
            try:
                results.append((host, gather(connector.session(host), commands(host))))
            except (HostUnreachable, SessionError) as exc:
                results.append((host, f"unreachable: {exc}"))
    finally:
        connector.close_all()
    return results
