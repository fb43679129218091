"""demo.check's engine: every host read in parallel, read-only, into one HostReport each.

Per host: one connection; each `converge` and `reset` runbook's plan (any change it would
make in check mode is drift or leftover state), built ahead from the host's last answers
to its planning reads (runbooks/demo/planning.py), while every probe's facts (demo's own
clock and disk checks, each runbook's `check` part) are read; then ONE batch with every
plan's planning reads and facts, at the same time as the probes' (one round trip's wait);
each part is judged from them (a plan whose planning reads answered otherwise is built
again first, its missing facts read in a second round trip). The cluster's reads that
several parts share run once per check (runbooks/demo/reads.py). Nothing is changed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbooks.common.demo_section import section_of
from runbooks.core.converge import Converger, first_reads
from runbooks.core.facts import FactResult, gather, read_by_files
from runbooks.core.session import HostUnreachable, SessionError
from runbooks.core.steps.base import Plan, StepFailed
from runbooks.demo import clock, merged
from runbooks.demo import cluster as cluster_probe
from runbooks.demo import vip as vip_probe
from runbooks.demo.early import Later
from runbooks.demo.order import parts, probe_roles, roles_of
from runbooks.demo.path import PATH
from runbooks.demo.planning import Ahead, Hints, Planned, Planner, Turns, Unknown, same_answers
from runbooks.demo.reads import SharedReads, shareable
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


def converge_parts(roles: Iterable[str] | None = None) -> list[tuple[str, Any]]:
    """(kind, Runbook) that demo.check runs in check mode, in ORDER: converges, then resets
    (the runbooks' and the demo section's), then the audience's view (demo.path); with
    `roles`, only the runbooks of those roles are imported (order.parts)."""
    found = [("drift", rb) for _e, rb in parts("converge", roles=roles)]
    found += [("leftover", rb) for _e, rb in parts("reset", roles=roles)]
    found.append(("leftover", WORKLOADS))
    found.append(("answers", PATH))
    return found


@dataclass
class _Part:
    """One runbook's check-mode run on one host: planned first, judged from the host's one
    batch of facts."""

    kind: str
    runbook: Any
    ctx: Planner
    lines: list[str]
    said: list[str]
    log: Log
    plan: Plan | None = None
    failed: str | None = None  # the plan itself failed (StepFailed): its verdict
    unknown: bool = False  # planned ahead, it asked a planning read without a hint
    ahead: Ahead | None = None  # its cluster reads while planned ahead
    seconds: float = 0.0


def check_host(host: Host, inventory: Inventory, connector: Connector, log: Log,
               probes: list[tuple[str, Any]], runbooks: list[tuple[str, Any]],
               reads: SharedReads | None = None, hints: Hints | None = None,
               turns: Turns | None = None) -> HostReport:
    """Everything demo.check reads on one host; never raises for the host's failures.

    One connection; while it opens, every part is planned ahead from the site's last
    planning answers (runbooks/demo/planning.py; in parallel: a plan may read the cluster,
    through `reads`; a plan that runs a command waits for the connection there); once it
    is open the probes' facts are read at once (they need no plan); then ONE batch with
    every plan's planning reads and first-round step facts (a command asked by several
    parts or by a probe runs once; a cluster read shared or cut from a wider one is not run
    again); a part whose planning reads answered otherwise than its hints is planned again
    from the batch, its missing step facts read in one more round trip; then each part is
    judged, without another round trip."""
    report = HostReport(host.name)
    started = time.monotonic()
    opening = Later(lambda: connector.session(host))
    shared: Any = reads or connector
    mine = [(name, probe) for name, probe in probes if applies(probe_roles(probe), host)]
    ahead = hints.of(host.name) if hints is not None else {}
    chosen = [(kind, runbook) for kind, runbook in runbooks if applies(runbook.roles, host)]
    parts_ = [_new_part(host, inventory, opening, shared, kind, runbook, log, ahead, False,
                        Ahead(reads, hints, inventory) if reads and hints else None)
              for kind, runbook in chosen]
    # planned ahead (from the hints: no command needed) while the connection opens; a plan
    # that runs a command waits for it there
    pool = ThreadPoolExecutor(max_workers=2)
    planned = (turns.queue(host.name, _plan_part, parts_) if turns is not None
               else Planned([pool.submit(_plan_all, parts_)], time.monotonic()))
    # the probes' commands too: their batch goes out as soon as the connection is open
    probing: dict[str, str] = {**clock.probe_facts(inventory), "demo.disk": DISK}
    for _name, probe in mine:
        probing.update(probe.facts(host, inventory))
    try:
        session = opening.get()
    except (HostUnreachable, SessionError) as exc:
        pool.shutdown(wait=False)
        report.timings["connect"] = time.monotonic() - started
        report.verdicts.append(Verdict(host.name, "demo", "reachable", False, str(exc),
                                       "check the host's power, cable and address"))
        return report
    report.reachable = True
    report.timings["connect"] = time.monotonic() - started
    report.verdicts.append(Verdict(host.name, "demo", "reachable", True,
                                   f"SSH in {report.timings['connect']:.2f} s"))
    # the probes need no plan: their facts are read while the parts are planned (the host
    # is idle meanwhile), their plain cluster reads shared with every part that asks
    if reads is not None:
        for command in probing.values():
            if shareable(command):
                reads.start(host, command)
    # planned by now or within PLANS_WAIT (the plans' hints known): the probes' commands
    # join the plans' batch, ONE set of lanes for the host; else they are read now, while
    # the plans are built, and the plans' batch follows
    together = planned.done(PLANS_WAIT)
    claimed = reads.claimed(host.name, probing.values()) if reads is not None else set()
    probed = (None if together else
              pool.submit(_read, session, {k: c for k, c in probing.items() if c not in claimed}))
    pool.shutdown(wait=False)
    try:
        report.timings["plans"] = planned()
        for part in parts_:
            if part.ahead is not None:
                part.ahead.open = False
        commands: dict[str, str] = {}
        for n, part in enumerate(parts_):
            commands.update({f"{PLANNING}{c}": c for c in part.ctx.asked})
            if part.plan is not None:
                commands.update({f"{n}|{key}": command
                                 for key, command in first_reads(part.plan).items()})
        reading = time.monotonic()
        probes_asked = set() if probed is None else set(probing.values())
        if probed is None:
            commands = {**probing, **commands}  # the clock's read stays last in its lane
        claimed = (reads.claimed(host.name, [*probing.values(), *commands.values()])
                   if reads is not None else set())
        facts, when = _read(session, {k: c for k, c in commands.items()
                                      if c not in claimed and c not in probes_asked})
        by_probe: dict[str, FactResult] = {}
        if probed is not None:
            found, when = probed.result()
            by_probe = {probing[k]: v for k, v in found.items()}
            facts.update(found)
            commands.update(probing)
        assert reads is not None or not claimed
        for key, command in commands.items():
            if command in claimed:
                facts[key] = reads.fact(host, command)  # type: ignore[union-attr]
            elif key not in facts and command in by_probe:
                facts[key] = by_probe[command]
        report.timings["facts"] = time.monotonic() - reading
        answers = {k[len(PLANNING):]: v for k, v in facts.items() if k.startswith(PLANNING)}
        again = [n for n, part in enumerate(parts_)
                 if part.unknown or not same_answers(part.ctx.asked, answers)
                 or (part.ahead is not None and part.ahead.differs())]
        if hints is not None:
            hints.remember(host.name, {c: answers.get(c) or r for part in parts_
                                       for c, r in part.ctx.asked.items() if r is not None})
            for part in parts_:
                for name, found in (part.ahead.answers() if part.ahead else {}).items():
                    hints.remember(name, found)
        if again:
            replanning = time.monotonic()
            _plan_again(again, parts_, lambda n: _new_part(
                host, inventory, session, shared, *chosen[n], log, answers, True),
                session, commands, facts)
            report.timings["plans again"] = time.monotonic() - replanning
            if hints is not None:
                hints.remember(host.name, {c: r for n in again
                                           for c, r in parts_[n].ctx.asked.items()
                                           if r is not None})
    except HostUnreachable as exc:
        report.reachable = False
        report.verdicts.append(Verdict(host.name, "demo", "reachable", False,
                                       f"lost during the check: {exc}"))
        return report
    _probe(host, inventory, mine, facts, when, report)
    lost = []
    for n, part in enumerate(parts_):
        prefix = f"{n}|"
        given = {k[len(prefix):]: v for k, v in facts.items() if k.startswith(prefix)}
        try:
            _judge(part, given, report)
        except HostUnreachable as exc:
            lost.append(str(exc))
    if lost:
        report.reachable = False
        report.verdicts.append(Verdict(host.name, "demo", "reachable", False,
                                       f"lost during the check: {lost[0]}"))
    return report


PLANNING = "plan|"  # the batch's keys of the plans' planning reads: PLANNING + command
# How long a host whose connection is open waits for its plans before its probes' commands
# go ahead in a batch of their own (see check_host): on the lab, built from their hints, the
# plans are done 0.2-0.5 s after the connection (our process is CPU-bound); waiting for them
# makes one set of lanes per host (bench/README.md, session 9).
PLANS_WAIT = 1.0


def _plan_again(again: list[int], parts_: list[_Part], new_part: Callable[[int], _Part],
                session: Any, commands: Mapping[str, str],
                facts: dict[str, FactResult]) -> None:
    """The parts `again` (their planning reads answered otherwise than their hints, or
    were not hinted) planned anew from the batch's answers (`new_part(n)`, live: a planning
    read the batch lacks is read then); each new plan's first-round step facts taken from
    the batch (`commands` by key, answered in `facts`) where it read the same command, the
    rest read in ONE more round trip, into `facts` under the part's keys."""
    for n in again:
        parts_[n] = new_part(n)
    _plan_all([parts_[n] for n in again])
    by_command = {commands[k]: v for k, v in facts.items() if k in commands}
    rest: dict[str, str] = {}
    for n in again:
        plan = parts_[n].plan
        if plan is None:
            continue
        for key, command in first_reads(plan).items():
            if command in by_command:
                facts[f"{n}|{key}"] = by_command[command]
            else:
                rest[f"{n}|{key}"] = command
    if rest:
        facts.update(_read(session, rest)[0])


def _plan_all(parts_: list[_Part]) -> None:
    if len(parts_) == 1:
        _plan_part(parts_[0])
        return
    with ThreadPoolExecutor(max_workers=max(1, len(parts_))) as pool:
        list(pool.map(_plan_part, parts_))


# Cluster reads (a kubectl process each, the API's round trip; in the lab a Python start of
# the k3s double) are the slow commands of a batch: they go in up to this many batches of
# their own, read at the same time on the host's one connection beside the rest.
CLUSTER_LANES = 3
_CLUSTER_READ = re.compile(r"\bkubectl\s")  # kubectl run, not a path ending in it
# A batch runs its commands one after another: a long one (the gateway's plans: about fifty
# commands) is the host's critical path. The rest is cut into up to SHELL_LANES batches of
# at least PER_LANE commands each, read at the same time (a channel each: both cores of a
# host work). Files, directories and plain `cat`s are read by one stat and one grep in the
# first (core.facts.read_by_files).
SHELL_LANES = 3
PER_LANE = 12
# A test the shell answers itself (`[ -e PATH ]`, `test -d PATH`, `command -v NAME`), alone
# or chained with && and ||: no process of its own, so it counts for no lane's length.
_TEST = (r"(?:! )?(?:\[ [^][$`;|&<>()\n]* \]|test [^$`;|&<>()\n]+?"
         r"|command -v [A-Za-z0-9_.+-]+(?: >/dev/null)?(?: 2>&1)?)")
_SHELLS_OWN = re.compile(rf"{_TEST}(?: (?:&&|\|\|) {_TEST})*")


def shells_own(command: str) -> bool:
    """`command` is only tests the shell answers itself (see _SHELLS_OWN)."""
    return _SHELLS_OWN.fullmatch(command.strip()) is not None


def lanes(commands: Mapping[str, str], n: int = CLUSTER_LANES, shell: int = SHELL_LANES,
          per_lane: int = PER_LANE) -> list[dict[str, str]]:
    """`commands` as batches read at the same time: everything but the cluster reads in the
    first `shell` batches (in order: the first keys, and every file fact and plain `cat` in
    the first; a new batch only for each `per_lane` commands more that start a process,
    `shells_own` tests riding along; the clock's,
    `clock.LAST`, last of the first batch's commands), the cluster reads spread over up to
    `n` more; a command asked under several keys stays in one batch (it runs once)."""
    rest: dict[str, dict[str, str]] = {}
    slow: dict[str, dict[str, str]] = {}
    for key, command in commands.items():
        (slow if _CLUSTER_READ.search(command) else rest).setdefault(command, {})[key] = command
    files = [g for c, g in rest.items() if read_by_files(c)]
    run = [(c, g) for c, g in rest.items() if not read_by_files(c)]
    weighed = sum(1 for c, _g in run if not shells_own(c))  # what takes a lane's time
    count = max(1, min(shell, weighed // max(1, per_lane)))
    last = [g for _c, g in run if clock.LAST in g]  # read after the rest of the first batch
    run = [(c, g) for c, g in run if clock.LAST not in g]
    size = max(1, -(-weighed // count))
    first: dict[str, str] = {}
    out = [first] + [{} for _ in range(count - 1)]
    seen = 0
    for command, group in run:
        out[min(count - 1, seen // size)].update(group)
        seen += 0 if shells_own(command) else 1
    for group in [*files, *last]:
        first.update(group)
    out = [batch for batch in out if batch] or [first]
    cluster: list[dict[str, str]] = [{} for _ in range(min(n, len(slow)))]
    for i, group in enumerate(slow.values()):
        cluster[i % n].update(group)
    return out + cluster


def _read(session: Any, commands: Mapping[str, str]) -> tuple[dict[str, FactResult], float]:
    """Every fact of the host, in `lanes` at the same time, named gets of one namespace
    merged into one kubectl (runbooks/demo/merged.py); (facts, the moment the first lane's
    answer arrived: the clock's reference, read last in that lane)."""
    asked, stands = merged.merge(commands)
    facts, moment = _read_lanes(session, asked)
    if stands:
        facts = merged.split(commands, asked, stands, facts,
                             lambda again: gather(session, again))
    return facts, moment


def _read_lanes(session: Any,
                commands: Mapping[str, str]) -> tuple[dict[str, FactResult], float]:

    def read(batch: dict[str, str]) -> tuple[dict[str, FactResult], float]:
        found = gather(session, batch)
        return found, time.time()  # the clock is read last in the first batch (`lanes`)

    batches = lanes(commands)
    if len(batches) == 1:
        return read(batches[0])
    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        done = list(pool.map(read, batches))
    facts: dict[str, FactResult] = {}
    for found, _moment in done:
        facts.update(found)
    return facts, done[0][1]


def _probe(host: Host, inventory: Inventory, mine: list[tuple[str, Any]],
           facts: Mapping[str, FactResult], when: float, report: HostReport) -> None:
    """demo's own checks (clock, disk) and every probe's, judged from the host's batch."""
    offset, clock_checks = clock.probe_judge(host, inventory, facts, when)
    report.clock_offset = offset
    for check in clock_checks:
        report.verdicts.append(Verdict.of(host.name, "demo", check))
    report.verdicts.append(_disk(host, inventory, facts["demo.disk"], report))
    _judge_probes(host, inventory, mine, facts, report)


def _judge_probes(host: Host, inventory: Inventory, mine: list[tuple[str, Any]],
                  facts: Mapping[str, FactResult], report: HostReport) -> None:
    """Every probe's checks, judged from the host's batch."""
    for name, probe in mine:
        try:
            for check in probe.evaluate(host, inventory, facts):
                report.verdicts.append(Verdict.of(host.name, name, check))
        except Exception as exc:  # noqa: BLE001 - one probe's bug must not hide the others
            report.verdicts.append(Verdict(host.name, name, "check", False,
                                           f"the check failed: {type(exc).__name__}: {exc}"))


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


def _new_part(host: Host, inventory: Inventory, session: Any, connector: Any, kind: str,
              runbook: Any, log: Log, known: Mapping[str, FactResult] | None = None,
              live: bool = True, ahead: Ahead | None = None) -> _Part:
    lines: list[str] = []
    said: list[str] = []  # a Health step's "ok   <what>" lines: a read-only run's evidence

    def note(text: str) -> None:
        said.append(text)
        log(f"{host.name}  {runbook.name}: {text}")

    if ahead is not None:
        session, connector = ahead.session(host), ahead
    ctx = Planner(host, inventory, session, connector, True, {}, log=note, known=known or {},
                  live=live)
    return _Part(kind, runbook, ctx, lines, said, log, ahead=ahead)


def _plan_part(part: _Part) -> None:
    started = time.monotonic()
    try:
        part.plan = part.runbook.plan(part.ctx)
    except Unknown:
        part.unknown = True
    except StepFailed as exc:
        part.failed = str(exc)
    except Exception:
        if part.ctx.live:
            raise
        part.unknown = True  # planned ahead from hints that did not fit: planned again
    finally:
        part.seconds += time.monotonic() - started


def _dry_run(host: Host, inventory: Inventory, session: Any, connector: Connector,
             kind: str, runbook: Any, report: HostReport, log: Log) -> None:
    """One part alone: planned, then run in check mode reading its own facts."""
    part = _new_part(host, inventory, session, connector, kind, runbook, log)
    _plan_part(part)
    _judge(part, None, report)


def _judge(part: _Part, facts: Mapping[str, FactResult] | None, report: HostReport) -> None:
    """The part's check-mode run (from `facts` read beforehand) as a verdict."""
    host, runbook, kind, lines = part.ctx.host, part.runbook, part.kind, part.lines

    def emit(what: str, text: str) -> None:
        if what in ("step", "change", "error"):
            lines.append(text)
        part.log(f"{host.name}  {runbook.name}: {text}")

    started = time.monotonic()
    try:
        if part.failed is not None:
            raise StepFailed(part.failed)
        assert part.plan is not None
        result = Converger(part.ctx, part.plan, emit, facts=facts).run()
    except StepFailed as exc:
        report.verdicts.append(Verdict(host.name, runbook.name, kind, False, str(exc),
                                       "inv demo.reset"))
        return
    finally:
        report.timings[f"{kind} {runbook.name}"] = part.seconds + time.monotonic() - started
    if result.status == "unreachable":
        raise HostUnreachable(result.error or "connection lost")
    said = part.said
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
    connector.new_run()  # a check after reset's phases reads what is there now
    roles = roles_of(hosts)  # a runbook none of them has is never imported
    probes = [(entry.name, probe) for entry, probe in parts("check", roles=roles)]
    probes.append(("demo.cluster", cluster_probe))
    probes.append(("demo.vip", vip_probe))
    runbooks = converge_parts(roles)
    reads = SharedReads(connector)
    hints = Hints.of_site(inventory.site)
    first = plan_order(hosts, runbooks)
    turns = Turns([h.name for h in first], PLANNERS)
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = {host.name: pool.submit(check_host, host, inventory, connector, log,
                                              probes, runbooks, reads, hints, turns)
                       for host in first}
            found = [futures[host.name].result() for host in hosts]
    finally:
        turns.close()
    hints.save()
    return found


# threads building every host's plans ahead, in turns (planning.Turns): a few, so the first
# hosts' plans are done first; more than one, as a plan may wait for a host's connection
PLANNERS = 6


def plan_order(hosts: list[Host], runbooks: list[tuple[str, Any]]) -> list[Host]:
    """`hosts`, the ones with the most parts to plan and judge first (their batches are the
    longest: a gateway's, a cluster server's), in inventory order among equals."""
    def weight(host: Host) -> int:
        return sum(1 for _kind, runbook in runbooks if applies(runbook.roles, host))

    return sorted(hosts, key=lambda host: -weight(host))


def verdict_lines(reports: list[HostReport]) -> Mapping[str, list[Verdict]]:
    """The failing verdicts per host."""
    return {r.host: [v for v in r.verdicts if not v.ok] for r in reports}
