"""Reboot a host when a change needs it, wait for it to come back, verify the new boot.

    plan.add(RebootRequested())                       # only when --reboot was given
    plan.handler(reboot_handler(verify=my_check, rerun="inv pi-prep --host rp0"))

Steps notify the `reboot` handler (a Change with reboot=True says why). The handler honours
the options every rebooting runbook takes:
- `no_reboot`: never reboot; a host that needs one is reported FAILED with "reboot needed",
  so it never looks ready before it is;
- `serial`: at most N hosts reboot at the same time (0: no limit);
- `timeout`: how long to wait for the host to answer SSH again (default 300 s); a host that
  does not come back is reported unreachable while the others go on.
After the reboot it reconnects (the connector forgets the old session) and runs `verify`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from runbooks.common.reboot_options import DEFAULT_TIMEOUT
from runbooks.core.facts import FactResult
from runbooks.core.session import HostUnreachable
from runbooks.core.steps import Change, Handler, Step, StepFailed

if TYPE_CHECKING:
    from runbooks.core.context import HostContext

REBOOT_COMMAND = ("nohup sh -c 'sleep 1; systemctl reboot || reboot' "
                  ">/dev/null 2>&1 </dev/null &")
# the kernel's boot id changes on a real board; PID 1's start time changes in a container
BOOT_IDENTITY = ("cat /proc/sys/kernel/random/boot_id; "
                 "awk '{print $22}' /proc/1/stat")
PROBE_TIMEOUT = 10.0  # seconds one "are you back?" command may take
MIN_PROBE = 0.5
_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


@contextlib.contextmanager
def reboot_slot(serial: int) -> Iterator[None]:
    """At most `serial` hosts inside at once (shared by the hosts of a run); 0 = no limit."""
    if serial <= 0:
        yield
        return
    with _slots_lock:
        slot = _slots.setdefault(serial, threading.BoundedSemaphore(serial))
    with slot:
        yield


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
                      poll: float = 1.0, probe_timeout: float = PROBE_TIMEOUT) -> None:
    """Reconnect until the host answers from a new boot; HostUnreachable after `timeout`.

    Every probe is bounded, so a host that hangs while it boots (accepts TCP but never
    answers, or takes the command and never ends it) costs one probe, not the whole wait:
    the connection set-up by the connector's connect timeout and paramiko's banner (15 s)
    and login (30 s) timeouts, the command by `probe_timeout` or what is left of `timeout`."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        ctx.connector.forget(ctx.host)
        try:
            session = ctx.connector.session(ctx.host)
            left = deadline - time.monotonic()
            now = str(session.run(BOOT_IDENTITY, timeout=max(MIN_PROBE, min(
                probe_timeout, left))).stdout).strip()
            if now and now != before:
                ctx.session = session
                ctx.rebooted = True
                return
            last = "it still answered from the old boot"
        except HostUnreachable as exc:
            last = str(exc)
        if time.monotonic() + poll > deadline:
            ctx.connector.forget(ctx.host)  # a probe that timed out leaves no channel behind
            raise HostUnreachable(
                f"{ctx.host.name} did not come back within {timeout:g}s after the reboot "
                f"(last: {last}); check its power, network and console, then run again")
        time.sleep(poll)


def reboot_handler(verify: Callable[[HostContext], None] | None = None,
                   rerun: str = "the task") -> Handler:
    """The `reboot` handler: honours no_reboot, serial and timeout; then `verify(ctx)`.
    `rerun` is the command that finishes the job, for the --no-reboot message."""

    def run(ctx: HostContext) -> None:
        options = ctx.options
        if options.get("no_reboot"):
            raise StepFailed("REBOOT NEEDED, not done because of --no-reboot: the changes "
                             f"take effect only after a reboot; run `{rerun} --host "
                             f"{ctx.host.name}` without --no-reboot (or reboot by hand)")
        timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        with reboot_slot(int(options.get("serial") or 0)):
            before = boot_identity(ctx)
            ctx.log(f"rebooting (waiting up to {timeout:g}s for it to come back)")
            ctx.run(REBOOT_COMMAND)
            started = time.monotonic()
            wait_for_new_boot(ctx, before, timeout)
            ctx.log(f"back after {time.monotonic() - started:.1f}s")
        if verify is not None:
            verify(ctx)

    return Handler("reboot", run)
