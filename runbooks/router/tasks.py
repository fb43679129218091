"""router: the router's side of MetalLB's BGP sessions (`inv router`, `inv router --print`).

FRR and BIRD routers are converged over SSH; RouterOS routers get a script to paste. Every
side comes from the same inventory as the cluster's MetalLB objects.
"""

from __future__ import annotations

import os

from invoke import Collection, Context, Exit

from runbooks.core.cli import COMMON_HELP, execute, load_inventory_or_exit, task

HELP = dict(COMMON_HELP)
HELP.update({
    "print": "Do not connect: print each selected router's configuration or RouterOS script "
             "(the BGP password masked) for a router greenroom cannot reach.",
    "to": "With --print: also write the full text, password included, to this file (mode "
          "0600), one router only.",
})


@task(help=HELP, default=True)
def converge(c: Context, inventory: str | None = None, host: str | None = None,
             check: bool = False, parallel: int = 0, report: str | None = None,
             accept_new_host_keys: bool = False, print_: bool = False,
             to: str | None = None) -> None:
    """Configure routers (role router) to peer with every cluster node over BGP.

    kind frr: FRR with bgpd, frr.conf validated by `vtysh -C -f` before it replaces the old
    one, reloaded only when it changed. kind bird: bird.conf validated by `bird -p -c`.
    kind routeros6/routeros7: over SSH in RouterOS's own CLI, only the commands that the
    `print terse` output shows are needed (or --print for a router greenroom cannot reach).
    """
    if print_:
        _print(c, inventory, host, to)
        return
    if to:
        raise Exit("--to only goes with --print", code=2)
    from runbooks.router.plan import RUNBOOK

    inv = load_inventory_or_exit(c, inventory)
    selected = [h.name for h in inv.select(host or "router") if "router" in h.roles]
    routeros = _routeros(inv, selected)
    failed = _converge_routeros(inv, routeros, check, accept_new_host_keys) if routeros else 0
    others = [name for name in selected if name not in routeros]
    if others or not routeros:
        execute(c, RUNBOOK, inventory, ",".join(others) if routeros else host, check, parallel,
                report, accept_new_host_keys, {})
    if failed:
        raise Exit(f"{failed} RouterOS router(s) failed (see above)", code=1)


def _routeros(inv: object, names: list[str]) -> list[str]:
    """The selected routers of kind routeros6/routeros7."""
    from runbooks.common.bgp import PlanError, site_plan
    from runbooks.router.routeros import KINDS

    try:
        site = site_plan(inv)
    except PlanError:
        return []  # the runbook reports it
    return [r.name for r in site.routers if r.kind in KINDS and r.name in names]


def _converge_routeros(inv: object, names: list[str], check: bool,
                       accept_new_host_keys: bool) -> int:
    """RouterOS routers over SSH, one after another; how many failed."""
    from runbooks.common.bgp import site_plan
    from runbooks.core.session import Connector, HostUnreachable, SessionError
    from runbooks.router import routeros_ssh

    site = site_plan(inv)
    password = site.metallb.password()
    if site.metallb.password_env and password is None:
        raise Exit(f"metallb.password.env names {site.metallb.password_env}, which is not "
                   "set: export the BGP password in it, then run again", code=2)
    connector = Connector(inv, accept_new_host_keys=accept_new_host_keys)  # type: ignore
    failed = 0
    try:
        for name in names:
            router = site.router(name)
            try:
                conn = connector.connection(inv.hosts[name])  # type: ignore[attr-defined]
                outcome = routeros_ssh.converge(routeros_ssh.fabric_runner(conn), site,
                                                router, password, check)
            except (HostUnreachable, SessionError, routeros_ssh.RouterOSFailed) as exc:
                print(f"{name} ({router.kind}): FAILED: {exc}")
                failed += 1
                continue
            for line in outcome.lines():
                print(line)
    finally:
        connector.close_all()
    return failed


def _print(c: Context, inventory: str | None, host: str | None, to: str | None) -> None:
    from runbooks.common.bgp import PlanError, site_plan
    from runbooks.core import secrets
    from runbooks.router.render import render_for

    inv = load_inventory_or_exit(c, inventory)
    try:
        site = site_plan(inv)
    except PlanError as exc:
        raise Exit(str(exc), code=2) from None
    wanted = [h.name for h in inv.select(host or "router")]
    routers = [r for r in site.routers if r.name in wanted]
    if not routers:
        raise Exit(f"{inv.path}: no router selected (routers: "
                   f"{', '.join(r.name for r in site.routers) or 'none'})", code=2)
    if to and len(routers) != 1:
        raise Exit("--to writes one router's text: select one with --host", code=2)
    password = site.metallb.password()
    if site.metallb.password_env and password is None:
        raise Exit(f"metallb.password.env names {site.metallb.password_env}, which is not "
                   "set: export the BGP password in it, then run again", code=2)
    for router in routers:
        text = render_for(site, router, inv, password)
        print(f"# ---- {router.name} ({router.kind}) ----")
        print(secrets.mask(text), end="")
        if to:
            fd = os.open(to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)
            print(f"# written with the password to {to} (mode 0600)")


ns = Collection("router")
ns.add_task(converge, default=True)
