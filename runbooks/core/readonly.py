"""Read-only tasks (a gateway's or a dom0's `leases` and `check`): read facts from the
selected hosts, one round trip each, judge them with a pure function, print a text or JSON
report, exit 1 when anything is wrong. Nothing is changed on any host.

    readings = read_hosts(inv, RUNBOOK, host, commands)   # (host, facts or error text)
    report(readings, judge, unreadable, json_=json_)     # a listing: prints, exits 1 if bad
    health_report(readings, evaluate, format_checks, json_=json_)    # a `check` task
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from invoke import Exit

from runbooks.core.errors import UsageError
from runbooks.core.facts import FactResult, gather

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory
    from runbooks.core.runner import Runbook


@dataclass(frozen=True)
class Reading:
    """What one host's facts say, for the report.

    `data` is the host's part of the JSON output (None: the host is left out of it), `text`
    what is printed without --json, `notes` lines printed either way (before `text`); a
    reading that is not `ok` makes the task exit 1."""

    ok: bool = True
    data: Any = None
    text: str = ""
    notes: tuple[str, ...] = field(default=())


def read_hosts(inv: Inventory, runbook: Runbook, host_spec: str | None,
               commands: Callable[[Host], Mapping[str, str]],
               ) -> list[tuple[Host, dict[str, FactResult] | str]]:
    """(host, facts) per selected host, or (host, "unreachable: ...") when it could not be
    read. A bad --host, no host with the runbook's role or the lab not running: a one-line
    error and exit 2 (usage), before any host is read."""
    from runbooks.core.cli import usage_errors_exit
    from runbooks.core.runner import select_hosts
    from runbooks.core.session import Connector, HostUnreachable, SessionError

    with usage_errors_exit():
        hosts = select_hosts(inv, runbook, host_spec)
        if not hosts:
            raise UsageError(f"{inv.path}: no host has role {', '.join(runbook.roles)}")
        connector = Connector(inv)
    results: list[tuple[Host, dict[str, FactResult] | str]] = []
    try:
        for host in hosts:
            try:
                results.append((host, gather(connector.session(host), commands(host))))
            except (HostUnreachable, SessionError) as exc:
                results.append((host, f"unreachable: {exc}"))
    finally:
        connector.close_all()
    return results


def report(readings: Iterable[tuple[Host, dict[str, FactResult] | str]],
           judge: Callable[[Host, Mapping[str, FactResult]], Reading],
           unreachable: Callable[[Host, str], Reading], json_: bool = False,
           unwrap_single: bool = False, print_: Callable[[str], None] | None = None) -> None:
    """Print each host's reading (its notes, then its text unless `json_`), then with
    `json_` one JSON object by host name (with `unwrap_single`, one host's data alone).
    Raises Exit(1) when any reading is not ok. Every line is written through
    `secrets.mask` (`print_`: where lines go, default print)."""
    from runbooks.core import secrets

    write = print if print_ is None else print_

    def out(text: str) -> None:  # the one place the report is written: secrets masked
        write(secrets.mask(text))

    ok = True
    data: dict[str, Any] = {}
    for host, facts in readings:
        reading = unreachable(host, facts) if isinstance(facts, str) else judge(host, facts)
        ok &= reading.ok
        for note in reading.notes:
            out(note)
        if reading.data is not None:
            data[host.name] = reading.data
        if not json_ and reading.text:
            out(reading.text)
    if json_:
        shown = next(iter(data.values())) if unwrap_single and len(data) == 1 else data
        out(json.dumps(shown, indent=2))
    if not ok:
        raise Exit(code=1)


def unreadable(host: Host, error: str) -> Reading:
    """A host that could not be read, in a listing: one line, left out of the JSON."""
    return Reading(False, notes=(f"{host.name}: {error}",))


def unhealthy(host: Host, error: str) -> Reading:
    """A host that could not be read, in a health report: UNHEALTHY, with the error."""
    return Reading(False, {"healthy": False, "error": error},
                   notes=(f"{host.name}: UNHEALTHY: {error}",))


@dataclass(frozen=True)
class Check:
    """One health verdict: what was checked, whether it is fine, the evidence, and the
    command that fixes it (where one does). The `check` tasks and demo.check's probes
    report these."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


class Verdict(Protocol):
    """One health check's outcome (each runbook's frozen Check dataclass)."""

    @property
    def name(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...


def as_json(check: Verdict) -> dict[str, Any]:
    """A check for JSON output: name, ok, detail, and its fix when it has one."""
    fix = getattr(check, "fix", "")
    return {"name": check.name, "ok": check.ok, "detail": check.detail,
            **({"fix": fix} if fix else {})}


def health_report(readings: Iterable[tuple[Host, dict[str, FactResult] | str]],
                  evaluate: Callable[[Host, Mapping[str, FactResult]], Sequence[Verdict]],
                  render: Callable[[str, list[Any]], str], json_: bool = False,
                  print_: Callable[[str], None] | None = None) -> None:
    """A `check` task's report: each host's checks (`render`ed, or as JSON
    {host: {"healthy": ..., "checks": [...]}}); exits 1 when any check failed or any host
    could not be read."""

    def judge(host: Host, facts: Mapping[str, FactResult]) -> Reading:
        checks = list(evaluate(host, facts))
        ok = all(check.ok for check in checks)
        return Reading(ok, {"healthy": ok, "checks": [as_json(check) for check in checks]},
                       render(host.name, checks))

    report(readings, judge, unhealthy, json_=json_, print_=print_)
