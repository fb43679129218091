"""What a runbook's plan and handlers see of one host's run: `HostContext`.

It sits below both the step model and the converger, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbooks.core.facts import FactResult, gather

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory
    from runbooks.core.session import Connector, Session


@dataclass
class HostContext:
    """Everything a runbook's plan and handlers may use for one host."""

    host: Host
    inventory: Inventory
    session: Session
    connector: Connector
    check: bool
    options: Mapping[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print
    rebooted: bool = False

    def run(self, command: str, stdin: str | None = None) -> Any:
        return self.session.run(command, stdin)

    def gather(self, commands: Mapping[str, str]) -> dict[str, FactResult]:
        """Read facts a plan needs before it can choose its steps (one round trip)."""
        return gather(self.session, commands)
