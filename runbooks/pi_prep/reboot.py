"""pi-prep's reboot policy: which board state needs a reboot, and what a good boot shows.

A change that takes effect at boot (kernel arguments, config.txt) or a pending reboot
(memory cgroup disabled in the running kernel, /var/run/reboot-required) notifies the
`reboot` handler of runbooks.common.reboot (which honours --no-reboot, --serial,
--timeout). After the reboot `verify_after_reboot` checks the memory cgroup is enabled
(/proc/cgroups) and the cgroup arguments are in /proc/cmdline. A kernel that lacks the
arguments but has the memory cgroup (some kernels enable it by default; in the virtual lab
the kernel is the machine's own) is a warning, not a failure; a disabled memory cgroup is a
failure that says which file the boot loader ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from runbooks.common.reboot import reboot_handler as common_reboot_handler
from runbooks.core.facts import FactResult
from runbooks.core.steps import Change, Handler, Step, StepFailed
from runbooks.pi_prep.cmdline import CGROUP_ARGS
from runbooks.pi_prep.facts import (
    CGROUP_CONTROLLERS,
    PROC_CGROUPS,
    memory_cgroup_enabled,
    missing_arguments,
)

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

CGROUP_FACTS = {"cgroups": PROC_CGROUPS.command, "controllers": CGROUP_CONTROLLERS.command,
                "reboot_required": "[ -e /var/run/reboot-required ]"}

class RebootPending(Step):
    """Ensure the running kernel is the one the board is configured for (else reboot)."""

    name = "Ensure the running kernel has the memory cgroup and no reboot is pending"
    notify = ("reboot",)
    verify = False  # only a reboot can change it; the handler verifies afterwards

    def facts(self) -> Mapping[str, str]:
        return dict(CGROUP_FACTS)

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes = []
        if not memory_cgroup_enabled(PROC_CGROUPS.read(facts), CGROUP_CONTROLLERS.read(facts)):
            changes.append(Change("reboot: the running kernel has the memory cgroup disabled",
                                  reboot=True))
        if facts["reboot_required"].ok:
            changes.append(Change("reboot: /var/run/reboot-required (new kernel or libraries)",
                                  reboot=True))
        return changes


def verify_after_reboot(ctx: HostContext, wanted: tuple[str, ...] = CGROUP_ARGS,
                        where: str = "the kernel command line file") -> None:
    """Fail unless the memory cgroup is enabled; warn when /proc/cmdline lacks arguments."""
    from runbooks.core.facts import gather

    facts = gather(ctx.session, {**CGROUP_FACTS, "cmdline": "cat /proc/cmdline"})
    missing = missing_arguments(facts["cmdline"].out, wanted)
    if not memory_cgroup_enabled(PROC_CGROUPS.read(facts), CGROUP_CONTROLLERS.read(facts)):
        detail = (f"its command line lacks {' '.join(missing)}, so the boot loader did not "
                  f"read {where} (on a Pi: is the boot partition mounted where we wrote? "
                  "on GRUB: did update-grub run?)" if missing else
                  "although the arguments are in /proc/cmdline (a kernel built without "
                  "memory cgroup support?)")
        raise StepFailed(f"after the reboot the memory cgroup is still disabled: {detail}")
    if missing:
        ctx.log(f"WARNING: after the reboot /proc/cmdline lacks {' '.join(missing)}: this "
                f"kernel ignored {where}, but it has the memory cgroup enabled anyway, so "
                "Kubernetes can run (in the virtual lab the kernel is the machine's own)")
    ctx.log("rebooted: the memory cgroup is enabled")


def reboot_handler(where: str) -> Handler:
    """The `reboot` handler for a board whose kernel arguments live in `where`."""
    return common_reboot_handler(lambda ctx: verify_after_reboot(ctx, CGROUP_ARGS, where),
                                 rerun="inv pi-prep")
