"""The gateway serves time to the VLAN: chrony with a local stratum, so boards keep one time
even offline (a stage network often has no internet, and Raspberry Pis have no real-time
clock). Debian's chrony reads /etc/chrony/conf.d/*.conf; greenroom adds one file there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runbooks.core.steps import File, Handler, Packages, Service, Step

if TYPE_CHECKING:
    from runbooks.core.inventory import Inventory

CONFIG = "/etc/chrony/conf.d/greenroom-server.conf"
RESTART = Handler.restart("chrony")


def server_config(inventory: Inventory) -> str:
    return ("# greenroom: serve this machine's time to the lab's VLAN, also offline\n"
            f"allow {inventory.network.subnet}\n"
            "local stratum 10 orphan\n")


def timeserver_steps(inventory: Inventory) -> list[Step]:
    """chrony installed, serving the VLAN, enabled (its restart comes from the handler)."""
    return [Packages(["chrony"]),
            File(CONFIG, server_config(inventory), notify=(RESTART.name,)),
            # running is not asserted: where the host has no CAP_SYS_TIME (the virtual lab's
            # guests) chrony's unit is skipped by its ConditionCapability; demo.check asks
            # chrony itself whether the gateway serves time
            Service("chrony", enabled=True, running=None)]
