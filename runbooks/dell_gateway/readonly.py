"""Read facts from the gateway hosts without changing anything (for `leases` and `check`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runbooks.core.cli import usage_errors_exit
from runbooks.core.errors import UsageError
from runbooks.core.facts import FactResult, gather
from runbooks.core.runner import select_hosts

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory
    from runbooks.core.runner import Runbook


def gateway_facts(
    inv: Inventory, runbook: Runbook, host_spec: str | None,
    commands: Callable[[Host], Mapping[str, str]],
) -> list[tuple[Host, dict[str, FactResult] | str]]:
    """(host, facts) per selected gateway, or (host, error text) when it was unreachable."""
    from runbooks.core.session import Connector, HostUnreachable, SessionError

    with usage_errors_exit():  # a bad --host, the lab not running: one line, exit 2
        hosts = select_hosts(inv, runbook, host_spec)
        if not hosts:
            raise UsageError(f"{inv.path}: no host has role gateway")
        connector = Connector(inv)
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
