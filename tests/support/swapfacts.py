"""Facts for pi-prep's swap rule (runbooks/pi_prep/swap.py `swap_facts`) as a host answers
them: a clean board unless told otherwise."""

from __future__ import annotations

from runbooks.core.facts import FILE_STAT_SEPARATOR, FactResult
from runbooks.pi_prep.facts import SWAPS

SWAPS_HEADER = "Filename\tType\tSize\tUsed\tPriority\n"
NO_UNITS = "dphys-swapfile none inactive\nzramswap none inactive\n"


def show_output(units: str) -> str:
    """"<unit> <unit-file state> <active state>" lines as `systemctl show -p
    Id,UnitFileState,ActiveState UNIT.service ...` prints them ("none": no unit file)."""
    blocks = []
    for line in units.splitlines():
        unit, enabled, active = line.split()
        blocks.append(f"Id={unit}.service\nActiveState={active}\n"
                      f"UnitFileState={'' if enabled == 'none' else enabled}\n")
    return "\n".join(blocks)


def swap_rule_facts(swaps: str = SWAPS_HEADER, fstab: str | None = "proc /proc proc defaults 0 0\n",
                    packages: str = "", units: str = NO_UNITS,
                    prefix: str = "") -> dict[str, FactResult]:
    """`swap_facts(prefix)`'s answers: /proc/swaps, /etc/fstab (None: no such file), the swap
    packages' dpkg states, the units' "<unit> <unit-file state> <active state>" lines (as
    systemctl shows them: `show_output`)."""
    return {
        prefix + SWAPS.name: FactResult(0, swaps),
        prefix + "fstab": (FactResult(1, "") if fstab is None else
                           FactResult(0, f"644 root root\n{FILE_STAT_SEPARATOR}\n{fstab}")),
        prefix + "packages": FactResult(0 if packages else 1, packages),
        prefix + "units": FactResult(0, show_output(units)),
    }
