"""`inv router` on RouterOS 6 and 7: the router's own CLI over SSH, no POSIX shell.

RouterOS runs each SSH exec request as a CLI command, so this side does not go through the
engine's shell fact batch: it reads the three `print terse` tables (instance, routing
filters, peers or connections), plans only the commands that remove the difference
(runbooks/router/routeros.py), sends them one by one, then prints the tables again and fails
when the router still differs. Check mode only prints. RouterOS answers errors on stdout with
exit status 0 (`failure: ...`, `syntax error ...`, `bad command name ...`): those words fail
the run too. The BGP password appears only in the commands sent, never in what is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runbooks.common.bgp import Router, SitePlan
from runbooks.common.routeros_state import RouterOSRefused, Run, checked, run_over
from runbooks.core import secrets
from runbooks.router.routeros import plan_commands, print_commands


class RouterOSFailed(RuntimeError):
    """The router refused a command or still differs after the run; says which."""


@dataclass
class Outcome:
    """What one RouterOS run did: the commands needed (sent unless check mode)."""

    router: str
    commands: list[str] = field(default_factory=list)
    sent: bool = False

    def lines(self) -> list[str]:
        if not self.commands:
            return [f"{self.router}: converged, nothing to send"]
        verb = "sent" if self.sent else "would send"
        return [f"{self.router}: {verb} {len(self.commands)} command(s)"] + [
            f"  {secrets.mask(c)}" for c in self.commands]


def _checked(run: Run, command: str) -> str:
    try:
        return checked(run, command, secrets.mask)
    except RouterOSRefused as exc:
        raise RouterOSFailed(str(exc)) from None


def printed(run: Run, kind: str) -> dict[str, str]:
    """The `print terse` output of each table `plan_commands` reads."""
    return {table: _checked(run, command) for table, command in print_commands(kind).items()}


def converge(run: Run, site: SitePlan, router: Router, password: str | None,
             check: bool) -> Outcome:
    """Plan from `print`, send only the difference (not in check mode), verify."""
    outcome = Outcome(router.name, plan_commands(site, router, password,
                                                 printed(run, router.kind)))
    if check or not outcome.commands:
        return outcome
    for command in outcome.commands:
        _checked(run, command)
    outcome.sent = True
    still = plan_commands(site, router, password, printed(run, router.kind))
    if still:
        raise RouterOSFailed(f"{router.name} still differs after the commands were sent; "
                             f"next would be: {secrets.mask(still[0])}")
    return outcome


fabric_runner = run_over  # one SSH exec request per command
