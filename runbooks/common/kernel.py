"""Kernel settings: sysctls (live and in a sysctl.d file) and modules (loaded and in
modules-load.d), for every runbook that needs them (pi-prep, the gateway's forwarding,
xen-dom0 next).

Each reads its state with one cheap fact command and acts only on the difference, in the
way pyinfra's server operations do: a converged host gets no command at all.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from runbooks.core.facts import FactResult, sysctl_command
from runbooks.core.steps import Action, Change, Edit, Step, ensure_line

SYSCTL_FILE = "/etc/sysctl.d/90-greenroom.conf"
MODULES_FILE = "/etc/modules-load.d/greenroom.conf"


class Sysctl(Step):
    """Ensure a kernel setting, live and persisted in a sysctl.d file."""

    def __init__(self, key: str, value: str | int,
                 file: str = SYSCTL_FILE) -> None:
        self.key, self.value, self.file = key, str(value), file
        self.name = f"Ensure {key} = {value}"
        self._persist = Edit(file, lambda c: ensure_line(c, self.line, f"{key} ="))

    @property
    def line(self) -> str:
        return f"{self.key} = {self.value}"

    def facts(self) -> Mapping[str, str]:
        return {"live": sysctl_command(self.key), **self._persist.facts()}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes = []
        live = facts["live"]
        if not live.ok or live.out.split() != self.value.split():
            setting = shlex.quote(f"{self.key}={self.value}")
            was = live.out.strip() if live.ok else "unavailable"
            changes.append(Change(f"set {self.key} = {self.value} live (was {was})",
                                  (Action(f"sysctl -q -w {setting}"),)))
        changes.extend(self._persist.plan(facts))
        return changes


class KernelModule(Step):
    """Ensure a kernel module is loaded now and at every boot (modules-load.d)."""

    def __init__(self, module: str, file: str = MODULES_FILE) -> None:
        self.module, self.file = module, file
        self.name = f"Ensure kernel module {module} loaded"
        self._persist = Edit(file, lambda c: ensure_line(c, module))

    def facts(self) -> Mapping[str, str]:
        m = shlex.quote(self.module)
        loaded = (f"[ -d /sys/module/{m} ] || grep -q '^{self.module} ' /proc/modules || "
                  f"grep -q '/{self.module}\\.ko' /lib/modules/$(uname -r)/modules.builtin")
        return {"loaded": loaded, **self._persist.facts()}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes = []
        if not facts["loaded"].ok:
            changes.append(Change(f"load {self.module}",
                                  (Action(f"modprobe {shlex.quote(self.module)}"),)))
        changes.extend(self._persist.plan(facts))
        return changes
