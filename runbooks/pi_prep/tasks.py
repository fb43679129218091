"""pi-prep: prepare Raspberry Pi class boards for Kubernetes (`inv pi-prep --host rp0`).

Cgroup kernel arguments (cmdline.txt or GRUB), swap off for good, containerd with
SystemdCgroup, CNI plugins, chrony, overlay + br_netfilter, bridge and forwarding sysctls,
optional inventory extras (see runbooks/pi_prep/settings.py), and a reboot when needed.
"""

from __future__ import annotations

from invoke import Collection

from runbooks.core.cli import runbook_task

converge = runbook_task(
    "runbooks.pi_prep.plan:RUNBOOK",
    "Prepare boards (role pi) for Kubernetes: cgroups, swap off, containerd, modules, sysctl.",
    extra={
        "reboot": (False, "Reboot every board even when no change needs it, then verify."),
        "no_reboot": (False, "Never reboot: a board that needs a reboot is reported failed "
                             "with 'reboot needed'."),
        "serial": (0, "Reboot at most N boards at the same time (0: no limit)."),
        "timeout": (300, "Seconds to wait for a rebooted board to answer SSH again."),
    },
    name="converge",
    default=True,
)

ns = Collection("pi-prep")
ns.add_task(converge, default=True)
