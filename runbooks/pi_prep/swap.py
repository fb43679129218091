"""Swap off, and staying off: active swap, dphys-swapfile, zram packages, fstab; then verified.

Safety: only the areas /proc/swaps lists are turned off, one `swapoff PATH` each; never
`swapoff -a` (in the virtual lab the guests share the machine's kernel, and a guest must not
be able to turn off the machine's swap; the lab drops the capability too).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from runbooks.core.facts import FactResult, file_command, parse_file
from runbooks.core.steps.base import Action, Change, Command, Step, StepFailed, Verify
from runbooks.core.steps.system import APT_ENV, Service, dpkg_status
from runbooks.pi_prep.facts import SWAP_PACKAGES, SWAPS
from runbooks.pi_prep.fstab import swap_entries

DPHYS_SWAPFILE_PATH = ("$( . /etc/dphys-swapfile 2>/dev/null; "
                       "echo \"${CONF_SWAPFILE:-/var/swap}\")")


class SwapOff(Step):
    """Ensure no swap area is active (acts only on what /proc/swaps lists)."""

    name = "Ensure no swap is active"

    def facts(self) -> Mapping[str, str]:
        return {SWAPS.name: SWAPS.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return [Change(f"swapoff {entry.describe()}",
                       (Action(f"swapoff {shlex.quote(entry.name)}"),))
                for entry in SWAPS.read(facts) or ()]


class Purged(Step):
    """Ensure apt packages are purged (removed with their configuration)."""

    def __init__(self, names: Sequence[str], why: str = "") -> None:
        self.names = list(names)
        self.name = f"Ensure {' '.join(self.names)} purged" + (f" ({why})" if why else "")

    def facts(self) -> Mapping[str, str]:
        return {"dpkg": dpkg_status(self.names).command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        states = dpkg_status(self.names).read(facts, "dpkg")
        present = [n for n in self.names if states.present(n)]
        if not present:
            return []
        names = " ".join(shlex.quote(n) for n in present)
        return [Change(f"purge {' '.join(present)}",
                       (Action(f"{APT_ENV} apt-get purge -y -q {names}"),))]


def dphys_swapfile_steps() -> list[Step]:
    """dphys-swapfile stopped, disabled, its swap file removed, the package purged."""
    return [
        Service("dphys-swapfile", enabled=False, running=False),
        Command("Ensure the dphys-swapfile swap file is removed",
                "dphys-swapfile uninstall",
                only_if=f"command -v dphys-swapfile && [ -e \"{DPHYS_SWAPFILE_PATH}\" ]"),
        Purged(["dphys-swapfile"], "it recreates swap at every boot"),
    ]


SWAP_UNITS = ("dphys-swapfile", "zramswap")
# ONE systemctl for both units' unit-file and active states (it was an is-enabled and an
# is-active per unit: four systemctl starts, and systemd answering each): one block per
# unit, in the order asked, blank lines between (UnitFileState empty: no such unit file)
UNITS_COMMAND = ("systemctl show -p Id,UnitFileState,ActiveState "
                 + " ".join(f"{u}.service" for u in SWAP_UNITS))
ENABLED = ("enabled", "enabled-runtime")
RUNNING = ("active", "activating", "reloading")


def swap_facts(prefix: str = "") -> dict[str, str]:
    """The facts the swap rule (`swap_providers`) reads, under keys starting with `prefix`
    (demo.check's probe reads them among other runbooks' facts)."""
    return {
        prefix + SWAPS.name: SWAPS.command,
        prefix + "fstab": file_command("/etc/fstab"),
        prefix + "packages": dpkg_status(SWAP_PACKAGES).command,
        prefix + "units": UNITS_COMMAND,
    }


def parse_units(out: str) -> dict[str, tuple[str, str]]:
    """`UNITS_COMMAND`'s output -> {unit: (unit-file state, active state)}: "none" for no
    unit file, "unknown" when systemctl said nothing (no systemd); blocks taken in the order
    asked (an alias's Id is its target's), by Id when their number is not that."""
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n") if block.strip()]
    if len(blocks) == len(SWAP_UNITS):
        named = dict(zip(SWAP_UNITS, blocks, strict=True))
    else:
        named = {b.get("Id", "").removesuffix(".service"): b for b in blocks}
    return {unit: (b.get("UnitFileState") or "none", b.get("ActiveState") or "unknown")
            for unit, b in named.items() if unit in SWAP_UNITS}


def swap_providers(facts: Mapping[str, FactResult], prefix: str = "") -> list[str]:
    """The one rule for "swap is off and stays off" (pi-prep's VerifySwapOff and demo.check's
    probe): what provides swap now or at the next boot, in words; empty when swap is off.

    Active swap (/proc/swaps), an active swap line in /etc/fstab, an installed swap package
    (dphys-swapfile, zram-*), a swap service enabled or running."""
    found = [f"active swap {e.describe()} (see /proc/swaps)"
             for e in SWAPS.read(facts, prefix + SWAPS.name) or ()]
    fstab = parse_file(facts[prefix + "fstab"]).content
    found += [f"/etc/fstab line {line.strip()!r}" for line in swap_entries(fstab)]
    states = dpkg_status(SWAP_PACKAGES).read(facts, prefix + "packages")
    found += [f"package {p} (installed)" for p in SWAP_PACKAGES if states.installed(p)]
    units = parse_units(facts[prefix + "units"].out)
    for unit in SWAP_UNITS:
        enabled, active = units.get(unit, ("none", "unknown"))
        state = [word for word, on in (("enabled", enabled in ENABLED),
                                       ("running", active in RUNNING)) if on]
        if state:
            found.append(f"service {unit} ({' and '.join(state)})")
    return found


class VerifySwapOff(Verify):
    """Verify that nothing provides swap now or at the next boot (fails naming what does)."""

    name = "Verify swap is off and stays off"

    def facts(self) -> Mapping[str, str]:
        return swap_facts()

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        found = swap_providers(facts)
        if found:
            raise StepFailed("swap is still provided by: " + "; ".join(found)
                             + ". Kubernetes refuses to run with swap: turn these off by hand "
                             "or report what this runbook missed")
        return []
