"""The boards take their time from the gateway (which serves it offline): chrony's sources
point at the gateway's VLAN address, and a drifted clock is stepped at once rather than
slewed (a board without a real-time clock boots far in the past).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runbooks.core.steps import Directory, File, Handler, Step

if TYPE_CHECKING:
    from runbooks.core.inventory import Inventory

SOURCES = "/etc/chrony/sources.d/greenroom.sources"
CONFIG = "/etc/chrony/conf.d/greenroom-step.conf"
RESTART = Handler.restart("chrony")


def timesync_steps(inventory: Inventory) -> list[Step]:
    gateway = inventory.network.gateway
    return [Directory("/etc/chrony/sources.d"), Directory("/etc/chrony/conf.d"),
            File(SOURCES, f"# greenroom: the lab gateway serves time, also offline\n"
                          f"server {gateway} iburst\n", notify=(RESTART.name,)),
            File(CONFIG, "# greenroom: step the clock whenever it is off by more than 1 s\n"
                         "makestep 1 -1\n", notify=(RESTART.name,))]
