"""The DHCP server: isc-dhcp-server serving the inventory's pool on the VLAN interface only.

dhcpd.conf is rendered from the inventory's network plan and validated with
`dhcpd -t -cf` before it replaces the old one (a broken file never becomes active, and the
running server keeps serving). The lease database (/var/lib/dhcp/dhcpd.leases) is never
written, truncated or removed here: restarts keep it, and it is only created when missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runbooks.core.facts import Fact
from runbooks.core.steps import Command, File, Handler, LineInFile, Packages, Service, Step
from runbooks.core.templates import managed_from, render

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

PACKAGE = "isc-dhcp-server"
SERVICE = "isc-dhcp-server"
CONFIG = "/etc/dhcp/dhcpd.conf"
DEFAULTS = "/etc/default/isc-dhcp-server"
LEASES = "/var/lib/dhcp/dhcpd.leases"
VALIDATE = "dhcpd -t -cf {}"
RESTART = Handler.restart(SERVICE)

# The lease database as it is on disk (None: it cannot be read, no isc-dhcp-server yet)
LEASE_DATABASE = Fact("dhcpd_leases", f"cat {LEASES}",
                      lambda result: result.out if result.ok else None)


def dhcpd_values(host: Host, inventory: Inventory) -> dict[str, Any]:
    """The values dhcpd.conf.j2 is rendered with, from the inventory's network plan."""
    net = inventory.network
    return {
        "source": managed_from(inventory),
        "vlan_id": net.vlan_id,
        "interface": host.vlan.name if host.vlan else "",
        "subnet": net.subnet,
        "range_start": net.dhcp.start,
        "range_end": net.dhcp.end,
        "router": net.gateway,
        "dns": [str(a) for a in net.dhcp.dns],
        "default_lease": net.dhcp.default_lease,
        "max_lease": net.dhcp.max_lease,
    }


def render_dhcpd_conf(values: dict[str, Any]) -> str:
    """dhcpd.conf text for `values` (see dhcpd_values)."""
    return render("dell_gateway/dhcpd.conf.j2", **values)


def interfaces_line(interface: str) -> str:
    """The /etc/default/isc-dhcp-server line that makes dhcpd listen on `interface` only."""
    return f'INTERFACESv4="{interface}"'


def dhcp_steps(host: Host, inventory: Inventory) -> list[Step]:
    """Install, configure (validated), enable and run isc-dhcp-server; restart via handler."""
    interface = host.vlan.name if host.vlan else ""
    notify = [RESTART.name]
    return [
        Packages([PACKAGE]),
        Command(f"Ensure the lease database {LEASES} exists",
                f"mkdir -p /var/lib/dhcp && touch {LEASES}", unless=f"[ -f {LEASES} ]"),
        File(CONFIG, render_dhcpd_conf(dhcpd_values(host, inventory)), validate=VALIDATE,
             notify=notify),
        LineInFile(DEFAULTS, interfaces_line(interface), match="INTERFACESv4=", notify=notify),
        Service(SERVICE, enabled=True, running=True),
    ]
