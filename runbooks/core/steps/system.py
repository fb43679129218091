"""System steps: apt packages and systemd services.

Each reads its state with one cheap fact command and acts only on the difference, in the
way pyinfra's server operations do: a converged host gets no command at all.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runbooks.core.facts import Fact, FactResult
from runbooks.core.steps.base import Action, Change, Command, Step

APT_ENV = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"
# An apt left running by a run whose connection was lost (or unattended-upgrades) holds
# dpkg's lock: wait for it rather than fail at once.
APT_WAIT = "-o DPkg::Lock::Timeout=300"


@dataclass(frozen=True)
class PackageStates:
    """dpkg's two-letter state per package (`ii` installed, `rc` removed but configured,
    `un` unknown...); a package dpkg never heard of is absent."""

    states: Mapping[str, str]

    def installed(self, name: str) -> bool:
        """Unpacked and configured (the second letter: status `i`), held or not."""
        return self.states.get(name, "")[1:2] == "i"

    def present(self, name: str) -> bool:
        """Installed, or removed with its configuration files left (purge would act)."""
        return self.states.get(name, "")[1:2] not in ("", "n")


def parse_dpkg_status(out: str) -> PackageStates:
    """`dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n'` output -> PackageStates."""
    states: dict[str, str] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            states[fields[0].split(":")[0]] = fields[1]
    return PackageStates(states)


def dpkg_status(names: Sequence[str]) -> Fact[PackageStates]:
    """The fact: dpkg's state of `names` (one dpkg-query; asked twice in a batch, run once)."""
    quoted = " ".join(shlex.quote(n) for n in sorted(set(names)))
    return Fact(f"dpkg {quoted}",
                f"dpkg-query -W -f '${{Package}} ${{db:Status-Abbrev}}\\n' {quoted}",
                lambda result: parse_dpkg_status(result.out))


def unit_active(unit: str) -> Fact[str]:
    """The fact: `systemctl is-active UNIT` -> its state (active, inactive, failed,
    activating, ...; "unknown" when systemctl printed nothing)."""
    return Fact(f"active {unit}", f"systemctl is-active {shlex.quote(unit)}",
                lambda result: result.out.strip() or "unknown")


def unit_enabled(unit: str) -> Fact[str]:
    """The fact: `systemctl is-enabled UNIT` -> its state (enabled, disabled, static,
    masked, ...; "unknown" when systemctl printed nothing, e.g. no such unit)."""
    return Fact(f"enabled {unit}", f"systemctl is-enabled {shlex.quote(unit)}",
                lambda result: result.out.strip() or "unknown")


def daemon_reloaded(unit: str) -> Command:
    """Ensure systemd has read UNIT's file: `systemctl daemon-reload` only when systemd says
    the file changed on disk since it last read it (`NeedDaemonReload=yes`)."""
    return Command(f"Ensure systemd has read {unit}", "systemctl daemon-reload",
                   only_if=f"systemctl show -p NeedDaemonReload {shlex.quote(unit)} | grep -qx "
                           "NeedDaemonReload=yes")


class Packages(Step):
    """Ensure apt packages are installed (or absent)."""

    def __init__(self, names: Sequence[str], present: bool = True,
                 notify: Sequence[str] = ()) -> None:
        self.names = list(names)
        self.present = present
        self.notify = tuple(notify)
        self.name = f"Ensure packages {'installed' if present else 'absent'}: {' '.join(names)}"

    def facts(self) -> Mapping[str, str]:
        return {"dpkg": dpkg_status(self.names).command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        states = dpkg_status(self.names).read(facts, "dpkg")
        if self.present:
            missing = [n for n in self.names if not states.installed(n)]
            if not missing:
                return []
            names = " ".join(shlex.quote(n) for n in missing)
            install = (f"{APT_ENV} apt-get install -y -q {APT_WAIT} --no-install-recommends "
                       f"-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
                       f"{names}")
            # Retry once after refreshing the lists (a fresh board often has none) and
            # finishing what an interrupted dpkg left half-configured.
            command = (f"{install} || {{ {APT_ENV} dpkg --configure -a; "
                       f"{APT_ENV} apt-get update -q && {install}; }}")
            return [Change(f"install {' '.join(missing)}", (Action(command),))]
        extra = [n for n in self.names if states.installed(n)]
        if not extra:
            return []
        names = " ".join(shlex.quote(n) for n in extra)
        return [Change(f"remove {' '.join(extra)}",
                       (Action(f"{APT_ENV} apt-get remove -y -q {APT_WAIT} {names}"),))]


class Service(Step):
    """Ensure a systemd service is enabled and/or running (restarts come from handlers)."""

    def __init__(self, unit: str, enabled: bool | None = True, running: bool | None = True,
                 notify: Sequence[str] = ()) -> None:
        self.unit, self.enabled, self.running = unit, enabled, running
        self.notify = tuple(notify)
        wants = []
        if enabled is not None:
            wants.append("enabled" if enabled else "disabled")
        if running is not None:
            wants.append("running" if running else "stopped")
        self.name = f"Ensure {unit} {' and '.join(wants)}"

    def facts(self) -> Mapping[str, str]:
        return {"enabled": unit_enabled(self.unit).command,
                "active": unit_active(self.unit).command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        u = shlex.quote(self.unit)
        changes = []
        state = unit_enabled(self.unit).read(facts, "enabled")
        if self.enabled is True and state not in ("enabled", "static", "alias", "generated",
                                                  "indirect"):
            changes.append(Change(f"enable {self.unit}", (Action(f"systemctl enable {u}"),)))
        if self.enabled is False and state in ("enabled", "enabled-runtime"):
            changes.append(Change(f"disable {self.unit}", (Action(f"systemctl disable {u}"),)))
        active = unit_active(self.unit).read(facts, "active") == "active"
        if self.running is True and not active:
            changes.append(Change(f"start {self.unit}", (Action(f"systemctl start {u}"),)))
        if self.running is False and active:
            changes.append(Change(f"stop {self.unit}", (Action(f"systemctl stop {u}"),)))
        return changes
