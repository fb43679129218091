"""pi-prep: prepare Raspberry Pi class boards for Kubernetes (`inv pi-prep --host rp0`).

Cgroup kernel arguments (cmdline.txt or GRUB), swap off for good, containerd with
SystemdCgroup, CNI plugins, chrony, overlay + br_netfilter, bridge and forwarding sysctls,
optional inventory extras (see runbooks/pi_prep/settings.py), and a reboot when needed.
"""

from __future__ import annotations

from invoke import Collection

from runbooks.common.reboot import REBOOT_OPTIONS
from runbooks.core.cli import runbook_task

converge = runbook_task(
    "runbooks.pi_prep.plan:RUNBOOK",
    "Prepare boards (role pi) for Kubernetes: cgroups, swap off, containerd, modules, sysctl.",
    extra=REBOOT_OPTIONS,
    name="converge",
    default=True,
)

ns = Collection("pi-prep")
ns.add_task(converge, default=True)
