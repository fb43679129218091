"""`inv metallb.check` on RouterOS 6 and 7 routers: their own CLI over SSH, read only.

RouterOS has no POSIX shell, so these routers are read outside the engine's shell facts:
one SSH exec request per command, `/routing bgp peer print status` (6) or
`/routing/bgp/session print` (7) for the sessions, `/ip route print detail where bgp` for
the routes (runbooks/common/routeros_state.py reads both). Every cluster node's session
must be Established and every LoadBalancer IP covered by an active BGP route. Lines are
printed as the engine prints a Health step's (`ok` / `BAD`), each router with its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runbooks.common.bgp import SitePlan
from runbooks.common.routeros_state import (
    ROUTES,
    SESSIONS,
    RouterOSRefused,
    Run,
    checked,
    health,
)
from runbooks.core import secrets


@dataclass
class RouterCheck:
    """What one RouterOS router showed: (ok, text) lines, or why it could not be read."""

    router: str
    kind: str
    lines: list[tuple[bool, str]] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(ok for ok, _ in self.lines)

    def text(self) -> list[str]:
        head = f"{self.router} ({self.kind})"
        if self.error:
            return [f"{head}: FAILED: {secrets.mask(self.error)}"]
        return [f"{head}: {'ok  ' if ok else 'BAD '} {text}" for ok, text in self.lines]


def check_router(run: Run, site: SitePlan, name: str, addresses: Sequence[str]) -> RouterCheck:
    """Read the sessions and routes of RouterOS router `name` through `run`."""
    router = site.router(name)
    result = RouterCheck(name, router.kind)
    nodes = [(n.name, str(n.address)) for n in site.nodes]
    try:
        sessions = checked(run, SESSIONS[router.kind], secrets.mask)
        routes = checked(run, ROUTES[router.kind], secrets.mask)
    except RouterOSRefused as exc:
        result.error = str(exc)
        return result
    result.lines = health(router.kind, nodes, addresses, sessions, routes)
    return result


def check_routers(open_run: Callable[[str], Run], site: SitePlan, names: Sequence[str],
                  addresses: Sequence[str]) -> list[RouterCheck]:
    """Each router in turn (`open_run(name)` gives its Run, or raises with why it cannot);
    one router that cannot be reached never stops the others."""
    results = []
    for name in names:
        try:
            run = open_run(name)
        except Exception as exc:  # noqa: BLE001 - unreachable, host key, auth: say it, go on
            results.append(RouterCheck(name, site.router(name).kind,
                                       error=f"cannot connect: {exc}"))
            continue
        results.append(check_router(run, site, name, addresses))
    return results
