"""lab: the virtual lab: fake but real hosts for an inventory on this Linux machine."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from invoke import Collection, Context, Exit, task

INVENTORY_HELP = ("Lab inventory (default: greenroom.inventory in invoke.yaml); it needs a "
                  "top-level `lab:` section.")


def _inventory(c: Context, path: str | None) -> Any:
    from runbooks.core.cli import load_inventory_or_exit

    inv = load_inventory_or_exit(c, path)
    if "lab" not in inv.sections:
        raise Exit(f"{inv.path}: no top-level `lab:` section, so it describes real machines; "
                   "use a lab inventory such as hosts/lab.yaml", code=2)
    return inv


def _guard(func: Any, *args: Any) -> Any:
    from runbooks.lab.control import LabError
    from runbooks.lab.guest import GuestError
    from runbooks.lab.network import NetworkError
    from runbooks.lab.plan import PlanError
    from runbooks.lab.rootfs import RootfsError

    try:
        return func(*args)
    except (LabError, GuestError, NetworkError, PlanError, RootfsError) as exc:
        raise Exit(f"lab: {exc}", code=1) from None


@task(help={"inventory": INVENTORY_HELP})
def up(c, inventory=None):
    """Start the virtual lab (builds the Debian rootfs on first use); safe to run twice."""
    from runbooks.lab import control

    inv = _inventory(c, inventory)
    _guard(control.up, inv)


@task(help={"inventory": INVENTORY_HELP})
def down(c, inventory=None):
    """Stop the virtual lab and remove everything it made (processes, mounts, links)."""
    from runbooks.lab import control

    inv = _inventory(c, inventory)
    _guard(control.check_platform)
    _guard(control.down, inv)


@task(help={"inventory": INVENTORY_HELP, "json": "Print the status as JSON (for scripts)."})
def status(c, inventory=None, json_=False):
    """List lab hosts: addresses, kind, running, whether SSH answers."""
    from runbooks.lab import control

    inv = _inventory(c, inventory)
    rows = control.status(inv)
    if json_:
        print(json.dumps({"site": inv.site, "hosts": rows}, indent=2))
        return
    print(f"{'host':10} {'kind':8} {'address':12} {'vlan':22} {'running':8} ssh")
    for r in rows:
        vlan = f"{r['vlan_if'] or '-'} {r['vlan_address'] or ''}".strip()
        print(f"{r['name']:10} {r['kind']:8} {r['address'] or '-':12} {vlan:22} "
              f"{'yes' if r['running'] else 'no':8} {'yes' if r['ssh'] else 'no'}")


@task(help={"host": "Lab host to open a shell on.", "inventory": INVENTORY_HELP,
            "command": "Run this one command instead of a shell; exit with its status."})
def shell(c, host, inventory=None, command=None):
    """Open an SSH shell on a lab host with the lab key (or run one command)."""
    from runbooks.core.cli import usage_errors_exit
    from runbooks.lab.access import lab_access

    inv = _inventory(c, inventory)
    if host not in inv.hosts:
        raise Exit(f"{inv.path}: no host {host!r} (hosts: {', '.join(inv.hosts)})", code=2)
    with usage_errors_exit():  # the lab not running: one line, exit 2
        access = lab_access(inv)
    target = inv.hosts[host]
    cmd = ["ssh", "-i", access.key_filename, "-o", f"UserKnownHostsFile={access.known_hosts}",
           "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o",
           "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", str(target.port),
           f"{access.user}@{target.address}"]
    if command is None:
        os.execvp("ssh", cmd)
    code = subprocess.run(cmd + ["--", command], check=False).returncode
    if code:
        raise Exit(code=code)


@task(help={"host": "Lab host to put back to fresh.", "inventory": INVENTORY_HELP})
def reset(c, host, inventory=None):
    """Put one lab host back to a fresh board (wipe its overlay, restart it)."""
    from runbooks.lab import control

    inv = _inventory(c, inventory)
    _guard(control.reset, inv, host)


ns = Collection("lab", up, down, status, shell, reset)
