"""router: the router's side of the cluster's BGP sessions, from the same inventory as MetalLB.

Hosts with role `router` say `vars: {kind: frr|bird|routeros6|routeros7, asn: N}`.
- frr (Linux, OpenWrt): FRR installed, `bgpd=yes` in /etc/frr/daemons (restart on change),
  /etc/frr/frr.conf validated with `vtysh -C -f` before it replaces the old one, reloaded only
  when it changed; IPv4 forwarding on.
- bird: bird2 installed, /etc/bird/bird.conf validated with `bird -p -c`, reloaded on change.
- routeros6 / routeros7: RouterOS has no POSIX shell: `inv router` converges them itself over
  their CLI (runbooks/router/routeros_ssh.py), `inv router --print` writes the script to
  paste; this engine runbook refuses them with that advice.
The BGP password (metallb.password.env) is written on both sides and never shown in diffs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runbooks.common.bgp import PlanError, Router, SitePlan, site_plan
from runbooks.common.kernel import Sysctl
from runbooks.core.runner import Runbook
from runbooks.core.steps import Edit, File, Handler, Packages, Plan, Service, StepFailed
from runbooks.core.templates import managed_from
from runbooks.router import bird, frr

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext

RESTART_FRR = "restart frr"
RELOAD_FRR = "reload frr"
RELOAD_BIRD = "reload bird"


def site_and_router(ctx: HostContext) -> tuple[SitePlan, Router, str | None]:
    """The site's BGP plan, this host's router entry and the password; StepFailed if absent."""
    try:
        site = site_plan(ctx.inventory)
    except PlanError as exc:
        raise StepFailed(str(exc)) from None
    try:
        router = site.router(ctx.host.name)
    except KeyError:
        raise StepFailed(f"hosts.{ctx.host.name}: a router needs vars: {{kind: frr, asn: "
                         "64512}} and a VLAN address (vlan.address) or an IP address") from None
    password = site.metallb.password()
    if site.metallb.password_env and password is None:
        raise StepFailed(f"metallb.password.env names {site.metallb.password_env}, which is "
                         "not set here: export the BGP password in it, then run again")
    return site, router, password


def header(ctx: HostContext) -> str:
    """The managed-file header line."""
    return f"written by greenroom (inv router) for {managed_from(ctx.inventory)}"


def secret_mode(password: str | None) -> str:
    """The config's mode: 0600 when it holds the BGP password (only the daemon's user and
    root read it), else the packages' usual 0640."""
    return "600" if password is not None else "640"


def frr_plan(ctx: HostContext, site: SitePlan, router: Router, password: str | None) -> Plan:
    """FRR: package, bgpd on, validated frr.conf, forwarding; restart or reload on change."""
    conf = frr.render_frr_conf(site, router, header(ctx), password)
    plan = Plan()
    plan.add(
        Packages(frr.PACKAGES),
        Sysctl("net.ipv4.ip_forward", 1),
        Edit(frr.DAEMONS, frr.daemons_with_bgpd, name="Ensure bgpd=yes in /etc/frr/daemons",
             notify=[RESTART_FRR]),
        File(frr.CONFIG, conf, mode=secret_mode(password), owner="frr", group="frr",
             validate=frr.VALIDATE,
             secret=password is not None, notify=[RELOAD_FRR]),
        Service("frr", enabled=True, running=True),
    )
    plan.handler(Handler.restart("frr"), Handler(RELOAD_FRR, "systemctl reload frr"))
    return plan


def bird_plan(ctx: HostContext, site: SitePlan, router: Router, password: str | None) -> Plan:
    """BIRD: package, validated bird.conf, forwarding; reload on change."""
    conf = bird.render_bird_conf(site, router, header(ctx), password)
    plan = Plan()
    plan.add(
        Packages(bird.PACKAGES),
        Sysctl("net.ipv4.ip_forward", 1),
        File(bird.CONFIG, conf, mode=secret_mode(password), owner="bird", group="bird",
             validate=bird.VALIDATE, secret=password is not None, notify=[RELOAD_BIRD]),
        Service("bird", enabled=True, running=True),
    )
    plan.handler(Handler(RELOAD_BIRD, "systemctl reload-or-restart bird"))
    return plan


def plan(ctx: HostContext) -> Plan:
    """The steps for one router host, by its kind."""
    site, router, password = site_and_router(ctx)
    if router.kind == "frr":
        return frr_plan(ctx, site, router, password)
    if router.kind == "bird":
        return bird_plan(ctx, site, router, password)
    raise StepFailed(f"{router.name} is {router.kind}: RouterOS has no POSIX shell for the "
                     f"engine; `inv router --host {router.name}` converges it over its own CLI "
                     f"(or `inv router --print --host {router.name}` gives the script to paste)")


RUNBOOK = Runbook("router", ("router",), plan)
