"""Reboot a board when a change needs it, wait for it to come back, verify the new boot.

Policy (options of `inv pi-prep`):
- a change that takes effect at boot (kernel arguments, config.txt) or a pending reboot
  (memory cgroup disabled in the running kernel, /var/run/reboot-required) notifies the
  `reboot` handler; `--reboot` reboots even when nothing needs it;
- `--no-reboot` never reboots: a board that needs one is reported FAILED with
  "reboot needed", so it never looks ready before it is; the next run without --no-reboot
  sees the pending reboot again (memory cgroup still off) and does it;
- `--serial N` lets at most N boards reboot at the same time (0: no limit);
- `--timeout S`: how long to wait for a board to answer SSH again (default 300 s); a board
  that does not come back is reported unreachable while the others go on.

After the reboot the handler reconnects (ctx.connector.forget + session) and verifies the
memory cgroup is enabled (/proc/cgroups) and the cgroup arguments are in /proc/cmdline. A
kernel that lacks the arguments but has the memory cgroup (some kernels enable it by
default; in the virtual lab the kernel is the machine's own) is a warning, not a failure;
a disabled memory cgroup is a failure that says which file the boot loader ignored.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from runbooks.core.facts import FactResult
from runbooks.core.session import HostUnreachable
from runbooks.core.steps.base import Change, Handler, Step, StepFailed
from runbooks.pi_prep.cmdline import CGROUP_ARGS
from runbooks.pi_prep.facts import memory_cgroup_enabled, missing_arguments

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext

DEFAULT_TIMEOUT = 300.0
REBOOT_COMMAND = ("nohup sh -c 'sleep 1; systemctl reboot || reboot' "
                  ">/dev/null 2>&1 </dev/null &")
# the kernel's boot id changes on a real board; PID 1's start time changes in a container
BOOT_IDENTITY = ("cat /proc/sys/kernel/random/boot_id; "
                 "awk '{print $22}' /proc/1/stat")
CGROUP_FACTS = {"cgroups": "cat /proc/cgroups",
                "controllers": "cat /sys/fs/cgroup/cgroup.controllers",
                "reboot_required": "[ -e /var/run/reboot-required ]"}

_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


@contextlib.contextmanager
def reboot_slot(serial: int) -> Iterator[None]:
    """At most `serial` boards inside at once (shared by the hosts of a run); 0 = no limit."""
    if serial <= 0:
        yield
        return
    with _slots_lock:
        slot = _slots.setdefault(serial, threading.BoundedSemaphore(serial))
    with slot:
        yield


class RebootPending(Step):
    """Ensure the running kernel is the one the board is configured for (else reboot)."""

    name = "Ensure the running kernel has the memory cgroup and no reboot is pending"
    notify = ("reboot",)
    verify = False  # only a reboot can change it; the handler verifies afterwards

    def facts(self) -> Mapping[str, str]:
        return dict(CGROUP_FACTS)

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        changes = []
        if not memory_cgroup_enabled(facts["cgroups"].out, facts["controllers"].out):
            changes.append(Change("reboot: the running kernel has the memory cgroup disabled",
                                  reboot=True))
        if facts["reboot_required"].ok:
            changes.append(Change("reboot: /var/run/reboot-required (new kernel or libraries)",
                                  reboot=True))
        return changes


class RebootRequested(Step):
    """A reboot asked for on the command line (--reboot)."""

    name = "Reboot requested with --reboot"
    notify = ("reboot",)
    verify = False

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return [Change("reboot (--reboot)", reboot=True)]


def boot_identity(ctx: HostContext) -> str:
    """Text that changes with every boot of the host (boot id + PID 1 start time)."""
    return str(ctx.run(BOOT_IDENTITY).stdout).strip()


def wait_for_new_boot(ctx: HostContext, before: str, timeout: float,
                      poll: float = 1.0) -> None:
    """Reconnect until the host answers from a new boot; HostUnreachable after `timeout`."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        ctx.connector.forget(ctx.host)
        try:
            session = ctx.connector.session(ctx.host)
            now = str(session.run(BOOT_IDENTITY).stdout).strip()
            if now and now != before:
                ctx.session = session
                ctx.rebooted = True
                return
            last = "it still answered from the old boot"
        except HostUnreachable as exc:
            last = str(exc)
        if time.monotonic() + poll > deadline:
            raise HostUnreachable(
                f"{ctx.host.name} did not come back within {timeout:g}s after the reboot "
                f"(last: {last}); check its power, network and console, then run again")
        time.sleep(poll)


def verify_after_reboot(ctx: HostContext, wanted: tuple[str, ...] = CGROUP_ARGS,
                        where: str = "the kernel command line file") -> None:
    """Fail unless the memory cgroup is enabled; warn when /proc/cmdline lacks arguments."""
    from runbooks.core.facts import gather

    facts = gather(ctx.session, {**CGROUP_FACTS, "cmdline": "cat /proc/cmdline"})
    missing = missing_arguments(facts["cmdline"].out, wanted)
    if not memory_cgroup_enabled(facts["cgroups"].out, facts["controllers"].out):
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
    """The `reboot` handler: honours --no-reboot, --serial, --timeout; verifies afterwards."""

    def run(ctx: HostContext) -> None:
        options = ctx.options
        if options.get("no_reboot"):
            raise StepFailed("REBOOT NEEDED, not done because of --no-reboot: the changes "
                             "take effect only after a reboot; run `inv pi-prep --host "
                             f"{ctx.host.name}` without --no-reboot (or reboot by hand)")
        timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        with reboot_slot(int(options.get("serial") or 0)):
            before = boot_identity(ctx)
            ctx.log(f"rebooting (waiting up to {timeout:g}s for it to come back)")
            ctx.run(REBOOT_COMMAND)
            started = time.monotonic()
            wait_for_new_boot(ctx, before, timeout)
            ctx.log(f"back after {time.monotonic() - started:.1f}s")
        verify_after_reboot(ctx, CGROUP_ARGS, where)

    return Handler("reboot", run)
