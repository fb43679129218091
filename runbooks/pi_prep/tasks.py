"""pi-prep: prepare Raspberry Pi class boards for Kubernetes (`inv pi-prep --host rp0`).

Cgroup kernel arguments (cmdline.txt or GRUB), swap off for good, containerd with
SystemdCgroup, CNI plugins, chrony, overlay + br_netfilter, bridge and forwarding sysctls,
optional inventory extras (see runbooks/pi_prep/settings.py), and a reboot when needed.
"""

from __future__ import annotations

from invoke import Collection

from runbooks.common.reboot_options import REBOOT_OPTIONS
from runbooks.core.cli import runbook_task, task
from runbooks.pi_prep.flash.cli import CAPTURE_HELP, FLASH_HELP

converge = runbook_task(
    "runbooks.pi_prep.plan:RUNBOOK",
    "Prepare boards (role pi) for Kubernetes: cgroups, swap off, containerd, modules, sysctl.",
    extra=REBOOT_OPTIONS,
    name="converge",
    default=True,
)



@task(help=FLASH_HELP)
def flash(c, host=None, image=None, device=None, inventory=None, key=None, password=False,
          yes=False, check=False, max_size="256GB", no_prepare=False):
    """Write an image to a board's SD card, verify it, prepare its first boot (SSH, user and
    key, hostname, VLAN address, cgroups); refuses any disk that is not a card."""
    from runbooks.pi_prep.flash.cli import run_flash

    run_flash(c, host, image, device, inventory, key, password, yes, check, max_size,
              no_prepare)


@task(help=CAPTURE_HELP)
def capture(c, device=None, image=None, max_size="256GB", no_shrink=False):
    """Read a prepared card back into a compressed image, shrunk, with the board's identity
    (SSH host keys, machine-id, hostname) cleared."""
    from runbooks.pi_prep.flash.cli import run_capture

    run_capture(c, device, image, max_size, no_shrink)


ns = Collection("pi-prep")
ns.add_task(converge, default=True)
ns.add_task(flash)
ns.add_task(capture)
