"""Inventory model: the frozen dataclasses an inventory file becomes, and its error type.

Nothing here reads files or validates; see `runbooks.core.inventory` for `load_inventory`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from runbooks.core.errors import UsageError

KNOWN_ROLES: tuple[str, ...] = (
    "gateway", "registry", "pi", "k3s-server", "k3s-agent", "microk8s", "xen-dom0", "router",
    "client",
)
KNOWN_BOARDS: tuple[str, ...] = ("raspberrypi", "lepotato", "x86")
BOARD_BOOT: dict[str, str] = {"raspberrypi": "firmware", "lepotato": "grub", "x86": "grub"}
REGISTRY_RUNTIMES: tuple[str, ...] = ("package", "docker")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an inventory: where it is (file, 1-based line, dotted key) and what."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class InventoryError(UsageError):
    """Raised with every problem found in an inventory (or a selection) at once."""

    def __init__(self, file: str, problems: list[Problem]):
        self.file = file
        self.problems = list(problems)
        super().__init__(self.report())

    def report(self) -> str:
        """A readable multi-line report: a summary line, then one line per problem."""
        count = len(self.problems)
        head = f"{self.file}: {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([head] + [f"  {problem}" for problem in self.problems])

    def __str__(self) -> str:
        return self.report()


@dataclass(frozen=True)
class Dhcp:
    """The DHCP pool served on the VLAN (start..end inclusive) and the options handed out."""

    start: IPv4Address
    end: IPv4Address
    dns: tuple[IPv4Address, ...]
    default_lease: int = 600
    max_lease: int = 7200

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and self.start <= address <= self.end


@dataclass(frozen=True)
class Network:
    """The lab's VLAN network: id, subnet, router address, DHCP pool and cluster VIP."""

    vlan_id: int
    subnet: IPv4Network
    gateway: IPv4Address
    dhcp: Dhcp
    vip: IPv4Address | None = None

    @property
    def gateway_interface(self) -> IPv4Interface:
        """The gateway address with the subnet prefix, e.g. 192.168.10.2/25."""
        return IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")


@dataclass(frozen=True)
class Registry:
    """The local image registry: which host runs it, on which port, and how."""

    host: str
    port: int = 5000
    runtime: str = "package"


@dataclass(frozen=True)
class Vlan:
    """A host's VLAN interface: its name, parent link, address and whether we create it."""

    name: str
    parent: str | None = None
    address: IPv4Interface | None = None
    managed: bool = True


@dataclass(frozen=True)
class Host:
    """One machine the runbooks reach over SSH."""

    name: str
    address: str
    user: str
    port: int = 22
    via: str | None = None
    roles: tuple[str, ...] = ()
    board: str | None = None
    upstream: str | None = None
    vlan: Vlan | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    # keys declared through runbooks.core.inventory_schema (the virtual lab's `lab:`, ...)
    sections: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    """A whole validated inventory file."""

    path: Path
    site: str
    network: Network
    registry: Registry | None
    hosts: dict[str, Host]
    # sections declared through runbooks.core.inventory_schema (cluster:, metallb:, ...)
    sections: dict[str, Any] = field(default_factory=dict)

    def select(self, spec: str | None = None) -> list[Host]:
        """Hosts named by `spec`: host names or role names, comma separated.

        None or "" selects every host. The result keeps file order, without duplicates.
        Raises InventoryError when an item is neither a host name nor a known role.
        """
        items = [part.strip() for part in (spec or "").split(",") if part.strip()]
        if not items:
            return list(self.hosts.values())
        wanted: set[str] = set()
        unknown: list[str] = []
        for item in items:
            if item in self.hosts:
                wanted.add(item)
            elif item in KNOWN_ROLES:
                wanted.update(h.name for h in self.hosts.values() if item in h.roles)
            else:
                unknown.append(item)
        if unknown:
            problems = [self._unknown_selection(item) for item in unknown]
            raise InventoryError(str(self.path), problems)
        return [host for name, host in self.hosts.items() if name in wanted]

    def _unknown_selection(self, item: str) -> Problem:
        """The problem for a selection item that names no host and no role."""
        import difflib

        roles = sorted({role for host in self.hosts.values() for role in host.roles})
        close = difflib.get_close_matches(item, [*self.hosts, *KNOWN_ROLES], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return Problem(
            str(self.path), None, "select",
            f"'{item}' is neither a host nor a role; {hint}hosts: {', '.join(self.hosts)}; "
            f"roles in use: {', '.join(roles) or '(none)'}",
        )

    @property
    def gateway(self) -> Host | None:
        """The host with role gateway, if any."""
        return next((h for h in self.hosts.values() if "gateway" in h.roles), None)

    def host(self, name: str) -> Host:
        """The host called `name`; InventoryError (listing the known names) if there is none."""
        if name not in self.hosts:
            raise InventoryError(str(self.path), [self._unknown_selection(name)])
        return self.hosts[name]
