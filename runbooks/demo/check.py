"""demo.check's engine: every host read in parallel, read-only, into one HostReport each.

Per host: one connection; one round trip for every probe (demo's own clock and disk checks,
plus each runbook's `check` part); then each `converge` and `reset` runbook's plan in check
mode (any change it would make is drift or leftover state). Nothing is changed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from runbooks.common.demo_section import section_of
from runbooks.core.converge import Converger, HostContext
from runbooks.core.facts import FactResult, gather
from runbooks.core.session import HostUnreachable, SessionError
from runbooks.core.steps.base import StepFailed
from runbooks.demo import clock
from runbooks.demo import cluster as cluster_probe
from runbooks.demo.order import parts, probe_roles
from runbooks.demo.path import PATH
from runbooks.demo.verdict import HostReport, Verdict
from runbooks.demo.workloads import WORKLOADS

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory
    from runbooks.core.session import Connector

Log = Callable[[str], None]
DISK = "df -P -k /"


def parse_df(text: str) -> tuple[int, int] | None:
    """`df -P -k /` -> (free percent, free MiB), None when unreadable."""
    lines = [ln.split() for ln in text.splitlines()[1:] if ln.split()]
    if not lines or len(lines[-1]) < 5:
        return None
    fields = lines[-1]
    try:
        size, available = int(fields[1]), int(fields[3])
    except ValueError:
        return None
    return (100 * available // size if size else 0), available // 1024


def applies(roles: tuple[str, ...], host: Host) -> bool:
    return bool(set(roles) & set(host.roles))


# kinds of check-mode runs that only read (their failing steps are what is wrong)
READ_ONLY = ("answers",)


def converge_parts(from_scratch: bool = False) -> list[tuple[str, Any]]:
    """(kind, Runbook) that demo.check runs in check mode, in ORDER: converges, then resets
    (the runbooks' and the demo section's), then the audience's view (demo.path)."""
    found = [("drift", rb) for _e, rb in parts("converge")]
    found += [("leftover", rb) for _e, rb in parts("reset")]
    found.append(("leftover", WORKLOADS))
    found.append(("answers", PATH))
    return found


def check_host(host: Host, inventory: Inventory, connector: Connector, log: Log,
               probes: list[tuple[str, Any]], runbooks: list[tuple[str, Any]]) -> HostReport:
    """Everything demo.check reads on one host; never raises for the host's failures."""
    report = HostReport(host.name)
    started = time.monotonic()
    try:
        session = connector.session(host)
    except (HostUnreachable, SessionError) as exc:
        report.timings["connect"] = time.monotonic() - started
        report.verdicts.append(Verdict(host.name, "demo", "reachable", False, str(exc),
                                       "check the host's power, cable and address"))
        return report
    report.reachable = True
    report.timings["connect"] = time.monotonic() - started
    report.verdicts.append(Verdict(host.name, "demo", "reachable", True,
                                   f"SSH in {report.timings['connect']:.2f} s"))
    # the probes' round trip and every runbook's check-mode run share the one connection,
    # each on its own channel at the same time: their round trips overlap
    parts_: list[HostReport] = [HostReport(host.name, True)]
    jobs: list[Callable[[HostReport], None]] = [
        lambda part: _probe(host, inventory, session, probes, part)]
    for kind, runbook in runbooks:
        if applies(runbook.roles, host):
            parts_.append(HostReport(host.name, True))
            jobs.append(functools.partial(_dry_run_into, host, inventory, session,
                                          connector, kind, runbook, log))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job, part) for job, part in zip(jobs, parts_, strict=True)]
        lost = []
        for future in futures:
            try:
                future.result()
            except HostUnreachable as exc:
                lost.append(str(exc))
    for part in parts_:
        report.verdicts.extend(part.verdicts)
        report.timings.update(part.timings)
        if part.clock_offset is not None:
            report.clock_offset = part.clock_offset
        report.disk_free = report.disk_free or part.disk_free
    if lost:
        report.reachable = False
        report.verdicts.append(Verdict(host.name, "demo", "reachable", False,
                                       f"lost during the check: {lost[0]}"))
    return report


def _probe(host: Host, inventory: Inventory, session: Any, probes: list[tuple[str, Any]],
           report: HostReport) -> None:
    started = time.monotonic()
    mine = [(name, probe) for name, probe in probes if applies(probe_roles(probe), host)]
    commands: dict[str, str] = {**clock.probe_facts(inventory), "demo.disk": DISK}
    for _name, probe in mine:
        commands.update(probe.facts(host, inventory))
    before = time.time()
    facts = gather(session, commands)
    after = time.time()
    offset, clock_checks = clock.probe_judge(host, inventory, facts, (before + after) / 2)
    report.clock_offset = offset
    for check in clock_checks:
        report.verdicts.append(Verdict.of(host.name, "demo", check))
    report.verdicts.append(_disk(host, inventory, facts["demo.disk"], report))
    for name, probe in mine:
        try:
            for check in probe.evaluate(host, inventory, facts):
                report.verdicts.append(Verdict.of(host.name, name, check))
        except Exception as exc:  # noqa: BLE001 - one probe's bug must not hide the others
            report.verdicts.append(Verdict(host.name, name, "check", False,
                                           f"the check failed: {type(exc).__name__}: {exc}"))
    report.timings["checks"] = time.monotonic() - started


def _disk(host: Host, inventory: Inventory, result: FactResult,
          report: HostReport) -> Verdict:
    wanted = section_of(inventory).disk_min_free
    free = parse_df(result.out) if result.ok else None
    if free is None:
        return Verdict(host.name, "demo", "disk", False, "cannot read free space of /")
    percent, mib = free
    report.disk_free = f"{percent}%"
    ok = percent >= wanted
    return Verdict(host.name, "demo", "disk", ok,
                   f"{percent}% of / free ({mib} MiB); at least {wanted}% wanted",
                   "" if ok else "free space on / (old images, logs, /var/cache/apt)")


def _dry_run_into(host: Host, inventory: Inventory, session: Any, connector: Connector,
                  kind: str, runbook: Any, log: Log, part: HostReport) -> None:
    _dry_run(host, inventory, session, connector, kind, runbook, part, log)


def _dry_run(host: Host, inventory: Inventory, session: Any, connector: Connector,
             kind: str, runbook: Any, report: HostReport, log: Log) -> None:
    started = time.monotonic()
    lines: list[str] = []

    def emit(what: str, text: str) -> None:
        if what in ("step", "change", "error"):
            lines.append(text)
        log(f"{host.name}  {runbook.name}: {text}")

    said: list[str] = []  # a Health step's "ok   <what>" lines: a read-only run's evidence

    def note(text: str) -> None:
        said.append(text)
        log(f"{host.name}  {runbook.name}: {text}")

    ctx = HostContext(host, inventory, session, connector, True, {}, log=note)
    try:
        plan = runbook.plan(ctx)
        result = Converger(ctx, plan, emit).run()
    except StepFailed as exc:
        report.verdicts.append(Verdict(host.name, runbook.name, kind, False, str(exc),
                                       "inv demo.reset"))
        return
    finally:
        report.timings[f"{kind} {runbook.name}"] = time.monotonic() - started
    if result.status == "unreachable":
        raise HostUnreachable(result.error or "connection lost")
    changed = [s for s in result.steps if s.status != "ok"]
    if kind in READ_ONLY:
        if not result.steps:
            return  # nothing to read on this site
        report.verdicts.append(Verdict(
            host.name, runbook.name, kind, not changed,
            " | ".join(s.error or s.status for s in changed) if changed else
            "; ".join(s[4:].strip() for s in said if s.startswith("ok ")) or "green",
            "inv demo.reset" if changed else ""))
        return
    if not changed:
        report.verdicts.append(Verdict(host.name, runbook.name, kind, True,
                                       "converged" if kind == "drift" else "nothing left over"))
        return
    details = []
    for step in changed:
        what = "; ".join(step.changes) or step.error or step.status
        details.append(f"{step.name}: {what}")
    report.verdicts.append(Verdict(
        host.name, runbook.name, kind, False,
        f"{len(changed)} step(s) would change: " + " | ".join(details),
        "inv demo.reset"))


def check_all(inventory: Inventory, connector: Connector, hosts: list[Host], log: Log,
              parallel: int = 10) -> list[HostReport]:
    """demo.check on `hosts`, in parallel; one HostReport per host, in inventory order."""
    probes = [(entry.name, probe) for entry, probe in parts("check")]
    probes.append(("demo.cluster", cluster_probe))
    runbooks = converge_parts()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(check_host, host, inventory, connector, log, probes, runbooks)
                   for host in hosts]
        return [future.result() for future in futures]


def verdict_lines(reports: list[HostReport]) -> Mapping[str, list[Verdict]]:
    """The failing verdicts per host."""
    return {r.host: [v for v in r.verdicts if not v.ok] for r in reports}
