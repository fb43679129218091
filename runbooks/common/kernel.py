"""Kernel settings: sysctls (live and in a sysctl.d file) and modules (loaded and in
modules-load.d), for every runbook that needs them (pi-prep, the gateway's forwarding,
xen-dom0 next).

Each is a composite step: its live half reads one cheap fact and acts only on the
difference, as pyinfra's server operations do; its persisted half is a line in a file. A
converged host gets no command at all.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from runbooks.core.facts import Fact, FactResult, sysctl_command
from runbooks.core.steps import Action, Change, Composite, Edit, Step, ensure_line

SYSCTL_FILE = "/etc/sysctl.d/90-greenroom.conf"
MODULES_FILE = "/etc/modules-load.d/greenroom.conf"


def sysctl_fact(key: str) -> Fact[str | None]:
    """A kernel setting's live value, words joined by one space (None: no such setting)."""
    return Fact(f"sysctl {key}", sysctl_command(key),
                lambda result: " ".join(result.out.split()) if result.ok else None)


# Whether the host routes IPv4 between its interfaces ("1"), read by several health checks
IP_FORWARD = sysctl_fact("net.ipv4.ip_forward")


def module_loaded_fact(module: str) -> Fact[bool]:
    """Whether a kernel module is loaded or built in."""
    m = shlex.quote(module)
    return Fact(f"module {module}",
                f"[ -d /sys/module/{m} ] || grep -q '^{module} ' /proc/modules || "
                f"grep -q '/{module}\\.ko' /lib/modules/$(uname -r)/modules.builtin",
                lambda result: result.ok)


class SysctlLive(Step):
    """Ensure a kernel setting's live value (`sysctl -w`)."""

    def __init__(self, key: str, value: str) -> None:
        self.key, self.value = key, value
        self.fact = sysctl_fact(key)
        self.name = f"Ensure {key} = {value} live"

    def facts(self) -> Mapping[str, str]:
        return {"live": self.fact.command}

    def scope(self) -> frozenset[str] | None:
        return frozenset({f"sysctl:{self.key}"})

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        live = self.fact.read(facts, "live")
        if live == " ".join(self.value.split()):
            return []
        setting = shlex.quote(f"{self.key}={self.value}")
        return [Change(f"set {self.key} = {self.value} live (was {live or 'unavailable'})",
                       (Action(f"sysctl -q -w {setting}"),))]


class ModuleLoaded(Step):
    """Ensure a kernel module is loaded now (`modprobe`)."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.fact = module_loaded_fact(module)
        self.name = f"Ensure kernel module {module} is loaded now"

    def facts(self) -> Mapping[str, str]:
        return {"loaded": self.fact.command}

    def scope(self) -> frozenset[str] | None:
        return frozenset({f"module:{self.module}"})

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if self.fact.read(facts, "loaded"):
            return []
        return [Change(f"load {self.module}", (Action(f"modprobe {shlex.quote(self.module)}"),))]


class Sysctl(Composite):
    """Ensure a kernel setting, live and persisted in a sysctl.d file."""

    def __init__(self, key: str, value: str | int, file: str = SYSCTL_FILE) -> None:
        self.key, self.value, self.file = key, str(value), file
        line = f"{key} = {value}"
        super().__init__(f"Ensure {key} = {value}", [
            SysctlLive(key, self.value),
            Edit(file, lambda c: ensure_line(c, line, f"{key} =")),
        ])


class KernelModule(Composite):
    """Ensure a kernel module is loaded now and at every boot (modules-load.d)."""

    def __init__(self, module: str, file: str = MODULES_FILE) -> None:
        self.module, self.file = module, file
        super().__init__(f"Ensure kernel module {module} loaded", [
            ModuleLoaded(module),
            Edit(file, lambda c: ensure_line(c, module)),
        ])
