"""The demo's build order, and what each runbook contributes to it: ONE entry per runbook.

demo.rehearse, demo.check and demo.reset all walk `ORDER`. A runbook joins the demo by adding
one `Entry` here; demo finds its parts by module name ("package.module:ATTRIBUTE", imported
only when used), so runbooks never import each other and an entry whose package is not in
this checkout yet is skipped. Every part but `name` is optional:

- `converge`: a `runbooks.core.runner.Runbook` (name, roles, plan). demo.rehearse and
  demo.reset converge it on the hosts with its roles, in ORDER, one runbook after another
  (hosts in parallel); demo.check runs its plan in check mode and reports any drift.
- `check`: a read-only probe: an object, or a module, with
      roles (or ROLES): tuple[str, ...]      the hosts it reads
      facts(host, inventory) -> {key: shell command}
          read-only commands; gathered in the same single round trip as every other probe
          of that host (prefix your keys to keep them apart)
      evaluate(host, inventory, facts) -> iterable of checks
          facts maps your keys to runbooks.core.facts.FactResult(rc, out); a check is any
          object with `name: str`, `ok: bool`, `detail: str` and optionally `fix: str`
          (what to run to fix it), e.g. your own small dataclass.
  demo.check shows every check on its screen; GO needs all of them ok.
- `reset`: a Runbook whose steps put the runbook's demo state back to its starting point
  (remove leftover workloads, prune stale state). Every step is guarded so it changes
  something only when needed: a second demo.reset changes nothing, and demo.check runs it in
  check mode and reports each change it would make as leftover state (NO-GO).
- `scratch`: a Runbook run only by `demo.reset --from-scratch`, before the converge: it
  removes what the converge then reinstalls (a k3s or microk8s reset keeping cached images).
  Scratch runbooks run in reverse ORDER (agents before servers), converges in ORDER.
- `roles`: every role any of its parts reads (the union of their roles), so demo imports
  the entry's modules only for an inventory with a host in one of them (a lab without
  Xen or microk8s never loads theirs); empty: always imported.

Example (a cluster runbook):

    Entry("k3s.release", converge="runbooks.k3s.distribute:RUNBOOK"),  # on the gateway
    Entry("k3s", converge="runbooks.k3s.plan:RUNBOOK", check="runbooks.k3s.health:PROBE",
          reset="runbooks.k3s.reset:WORKLOADS", scratch="runbooks.k3s.reset:UNINSTALL"),
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One runbook's place in the demo: see the module docstring for each part."""

    name: str
    converge: str | None = None
    check: str | None = None
    reset: str | None = None
    scratch: str | None = None
    roles: tuple[str, ...] = ()


# The order a lab is built in: the gateway gives the VLAN, DHCP, NAT and the time; the
# registry lives on the gateway; then the boards, which finally learn to pull through the
# registry; the cluster and its network come after them.
ORDER: tuple[Entry, ...] = (
    Entry("dell-gateway", converge="runbooks.dell_gateway.plan:RUNBOOK",
          check="runbooks.dell_gateway.demo_hooks:CHECK",
          reset="runbooks.dell_gateway.demo_hooks:PRUNE_LEASES", roles=("gateway",)),
    Entry("xen-dom0", converge="runbooks.xen_dom0.plan:RUNBOOK",
          check="runbooks.xen_dom0.demo_hooks:CHECK", roles=("xen-dom0",)),
    Entry("registry.up", converge="runbooks.registry.converge:UP",
          check="runbooks.registry.demo_hooks:CHECK", roles=("registry",)),
    Entry("pi-prep", converge="runbooks.pi_prep.plan:RUNBOOK",
          check="runbooks.pi_prep.demo_hooks:CHECK", roles=("pi",)),
    Entry("registry.trust", converge="runbooks.registry.converge:TRUST",  # after containerd
          roles=("pi", "k3s-server", "k3s-agent", "microk8s")),
    Entry("k3s.release", converge="runbooks.k3s.distribute:RUNBOOK",  # into the registry
          roles=("registry",)),
    Entry("k3s", converge="runbooks.k3s.plan:RUNBOOK", check="runbooks.k3s.health",
          scratch="runbooks.k3s.reset:UNINSTALL", roles=("k3s-server", "k3s-agent")),
    Entry("microk8s.release", converge="runbooks.microk8s.offline:RELEASE",  # on the gateway
          roles=("registry",)),
    Entry("microk8s", converge="runbooks.microk8s.plan:RUNBOOK",
          check="runbooks.microk8s.health", scratch="runbooks.microk8s.plan:RESET",
          roles=("microk8s",)),
    Entry("metallb", converge="runbooks.metallb.plan:RUNBOOK",   # LoadBalancer IPs over BGP
          check="runbooks.metallb.demo_hooks", roles=("k3s-server", "microk8s")),
    Entry("router", converge="runbooks.router.plan:RUNBOOK",     # ... learned by the router
          check="runbooks.router.demo_hooks", roles=("router",)),
    # On a lab inventory only (it plans nothing elsewhere): the lab's double of MetalLB's
    # speaker, configured from what the cluster holds, so the router has sessions and routes.
    Entry("metallb-speaker", converge="runbooks.lab.doubles.bgp_speaker:RUNBOOK",
          roles=("k3s-server", "k3s-agent")),
)


class Missing(LookupError):
    """The part's package is not in this checkout."""


def load(reference: str) -> Any:
    """The object "package.module:ATTRIBUTE" names (or the module itself without ":").

    Raises Missing when the package or module does not exist here; any other import error
    (a bug in the module) propagates."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise Missing(reference) from None
        raise
    if not attribute:
        return module
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise Missing(reference) from None


def parts(kind: str, entries: tuple[Entry, ...] = ORDER,
          roles: Iterable[str] | None = None) -> list[tuple[Entry, Any]]:
    """(entry, loaded object) for one kind of part (converge, check, reset, scratch), in
    ORDER, skipping entries without it or whose module is not in this checkout; with
    `roles` (the hosts' roles), also the entries whose `roles` none of them has (their
    modules are not imported)."""
    wanted = None if roles is None else set(roles)
    found = []
    for entry in entries:
        reference = getattr(entry, kind)
        if reference is None:
            continue
        if wanted is not None and entry.roles and not wanted & set(entry.roles):
            continue
        try:
            found.append((entry, load(reference)))
        except Missing:
            continue
    return found


def roles_of(hosts: Iterable[Any]) -> set[str]:
    """Every role of `hosts` (what `parts(..., roles=)` keeps entries for)."""
    return {role for host in hosts for role in host.roles}


def runbooks_in_order() -> list[Any]:
    """The converge Runbooks of the runbooks present, in build order."""
    return [runbook for _entry, runbook in parts("converge")]


def probe_roles(probe: Any) -> tuple[str, ...]:
    """A check probe's roles (attribute `roles`, or `ROLES` on a module)."""
    roles: Any = getattr(probe, "roles", None) or getattr(probe, "ROLES", None) or ()
    return tuple(roles)
