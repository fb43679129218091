"""demo.check from the audience's seat: every LoadBalancer IP answers through the router.

On each client host (role client: a laptop behind the router, whose default route is the
router's), read-only: the LoadBalancer IPs the cluster assigned (read on its first server)
each answer HTTP. metallb's own checks do it (`inv metallb.check`: `from_cluster`,
`ClientHealth`); demo finds them by name like every other part, so without the metallb
runbook in this checkout, without a `cluster:` or a `metallb:` section, or without a
LoadBalancer Service (metallb's probe names that), nothing is planned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runbooks.core.runner import Runbook
from runbooks.core.steps import Plan
from runbooks.demo.order import Missing, load

if TYPE_CHECKING:
    from runbooks.core.converge import HostContext

ROLES = ("client",)


def path_plan(ctx: HostContext) -> Plan:
    sections = getattr(ctx.inventory, "sections", None) or {}
    if "cluster" not in sections or "metallb" not in sections:
        return Plan()
    try:
        from_cluster = load("runbooks.metallb.services:from_cluster")
        client_health = load("runbooks.metallb.health:ClientHealth")
    except Missing:
        return Plan()
    addresses = from_cluster(ctx).all()  # StepFailed (the server unreadable) -> NO-GO
    if not addresses:
        return Plan()
    return Plan(steps=[client_health(ctx, addresses)])


PATH = Runbook("demo.path", ROLES, path_plan)
