"""demo.check and demo.reset from start to screen: connect once, run the phases, record.

demo.reset starts with demo.check. When it says GO, the reset has nothing to do: every
runbook's plan in check mode found no drift and nothing left over, every clock is within the
tolerance, every image is there; that check is then the reset's result, and no phase runs
(unless --from-scratch). Otherwise its phases follow, each a runbook run on its hosts in
parallel (a failing or unreachable host never stops the others), one after another:
  1. clocks      every drifted clock stepped to this machine's time (certificates, apt)
  2. scratch     --from-scratch only: each runbook's `scratch` part, in reverse ORDER
  3. converge    every runbook's `converge` part, in ORDER (a no-op when nothing drifted)
  4. reset       every runbook's `reset` part, then the demo section's workloads and steps
  5. check       demo.check, whose GO / NO-GO is the result
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from runbooks.core import secrets
from runbooks.core.runner import Printer, RunResult, _converge_host
from runbooks.demo import history, screen
from runbooks.demo.check import applies, check_all
from runbooks.demo.clock import CLOCKS
from runbooks.demo.order import parts, roles_of
from runbooks.demo.verdict import HostReport, Verdict
from runbooks.demo.workloads import WORKLOADS

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory
    from runbooks.core.session import Connector


@dataclass
class Outcome:
    """One whole run: the runbook phases, the check, the timings."""

    command: str
    site: str
    phases: list[tuple[str, RunResult]] = field(default_factory=list)
    reports: list[HostReport] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    check_mode: bool = False
    unreachable: dict[str, str] = field(default_factory=dict)  # host -> why, skipped after

    @property
    def ok(self) -> bool:
        return (all(r.ok for r in self.reports) and bool(self.reports)
                and all(result.ok for _p, result in self.phases))

    @property
    def changed(self) -> int:
        return sum(result.changed for _p, result in self.phases)

    def as_report(self) -> dict[str, Any]:
        return {"command": self.command, "site": self.site, "ok": self.ok,
                "check": self.check_mode, "seconds": round(self.seconds, 3),
                "changed": self.changed,
                "phases": [{"phase": phase, **result.as_report()}
                           for phase, result in self.phases],
                "hosts": [r.as_json() for r in self.reports],
                "steps": {k: round(v, 3) for k, v in self.steps.items()}}


def write_report(outcome: Outcome, path: str) -> None:
    """The whole run as JSON, secrets masked, written atomically."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(secrets.mask(json.dumps(outcome.as_report(), indent=2)) + "\n")
    tmp.replace(target)


class Output:
    """Quiet: a progress line per phase, then the screen. Verbose: everything as it happens."""

    def __init__(self, out: IO[str], verbose: bool) -> None:
        self.out, self.verbose = out, verbose
        self.paint = screen.Paint(out)

    def line(self, text: str) -> None:
        self.out.write(secrets.mask(text) + "\n")
        self.out.flush()

    def detail(self, text: str) -> None:
        if self.verbose:
            self.line(f"    {text}")

    def sink(self) -> IO[str]:
        return self.out if self.verbose else io.StringIO()


def run_phase(phase: str, runbook: Any, inventory: Inventory, hosts: list[Host],
              connector: Connector, check: bool, parallel: int, output: Output,
              outcome: Outcome, usual: dict[str, float]) -> RunResult | None:
    """One runbook on the hosts with its roles, in parallel; prints its progress line."""
    from concurrent.futures import ThreadPoolExecutor

    connector.new_run()  # nothing an earlier phase's hosts shared (a token not there yet)
    targets = [h for h in hosts if applies(runbook.roles, h)
               and h.name not in outcome.unreachable]
    if not targets:
        return None
    printer = Printer(output.sink(), max(len(h.name) for h in targets))
    result = RunResult(runbook.name, check)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(_converge_host, runbook, host, inventory, connector, check, {},
                               printer) for host in targets]
        for host, future in zip(targets, futures, strict=True):
            result.hosts[host.name] = future.result()
    result.seconds = time.monotonic() - started
    outcome.phases.append((phase, result))
    key = f"{phase} {runbook.name}"
    outcome.steps[key] = result.seconds
    for name, host_result in result.hosts.items():
        outcome.steps[f"{key} {name}"] = host_result.seconds
        if host_result.status == "unreachable":  # not tried again by later phases
            outcome.unreachable[name] = host_result.error or "unreachable"
    _progress(phase, result, usual.get(key), check, output)
    return result


def _progress(phase: str, result: RunResult, usual: float | None, check: bool,
              output: Output) -> None:
    bad = [f"{h} {r.status}" for h, r in result.hosts.items()
           if r.status in ("failed", "unreachable")]
    verb = "would change" if check else "changed"
    state = (output.paint("FAILED", screen.RED) + f" ({', '.join(bad)})" if bad
             else f"{result.changed} {verb}" if result.changed else "ok")
    typical = f"  (usually {usual:.1f} s)" if usual is not None else ""
    slow = history.Timing("", result.seconds, usual).slow
    flag = output.paint("  SLOW", screen.YELLOW) if slow else ""
    output.line(f"  {phase:8} {result.runbook:22} {len(result.hosts)} host(s)  {state:12}"
                f"  {result.seconds:5.1f} s{typical}{flag}")
    for name, r in result.hosts.items():
        if r.status in ("failed", "unreachable") and r.error:
            output.line(f"           {name}: {r.error}")
        if check and not output.verbose:  # --check shows every change it would make
            for step in r.steps:
                for change in step.changes:
                    output.line(f"           {name}: {step.name}: {change}")


def check_phase(inventory: Inventory, hosts: list[Host], connector: Connector,
                parallel: int, output: Output, outcome: Outcome) -> None:
    started = time.monotonic()
    reachable = [h for h in hosts if h.name not in outcome.unreachable]
    found = {r.host: r for r in check_all(inventory, connector, reachable, output.detail,
                                          parallel)}
    for name, why in outcome.unreachable.items():
        found[name] = HostReport(name, False, [Verdict(
            name, "demo", "reachable", False, why,
            "check the host's power, cable and address")])
    outcome.reports = [found[h.name] for h in hosts]
    outcome.steps["check"] = time.monotonic() - started
    for report in outcome.reports:
        outcome.steps[f"check {report.host}"] = sum(report.timings.values())
        for name, seconds in report.timings.items():
            outcome.steps[f"check {report.host} {name}"] = seconds


def already_green(inventory: Inventory, hosts: list[Host], connector: Connector,
                  parallel: int, output: Output, outcome: Outcome,
                  usual: dict[str, float]) -> bool:
    """demo.reset's first step: demo.check. True when it says GO (the reset's phases would
    change nothing, so the check is the result); else its times are kept as "precheck ..."
    steps, the hosts it could not reach are not tried again, and the phases follow."""
    check_phase(inventory, hosts, connector, parallel, output, outcome)
    seconds = outcome.steps["check"]
    typical = usual.get("check")
    extra = f"  (usually {typical:.1f} s)" if typical is not None else ""
    bad = [r for r in outcome.reports if not r.ok]
    state = (f"{len(bad)} host(s) to put right" if bad
             else "all green: nothing to reset")
    output.line(f"  {'check':8} {'demo.check':22} {len(hosts)} host(s)  {state:12}  "
                f"{seconds:5.1f} s{extra}")
    if not bad and outcome.reports:
        return True
    for report in outcome.reports:
        if not report.reachable:
            why = next((v.detail for v in report.verdicts
                        if v.name == "reachable" and not v.ok), "unreachable")
            outcome.unreachable[report.host] = why
    outcome.steps = {("pre" + k if k.split(" ")[0] == "check" else k): v
                     for k, v in outcome.steps.items()}
    outcome.reports = []
    return False


def reset_phases(inventory: Inventory, hosts: list[Host], connector: Connector, check: bool,
                 from_scratch: bool, parallel: int, output: Output, outcome: Outcome,
                 usual: dict[str, float]) -> None:
    def phase(name: str, runbook: Any) -> None:
        run_phase(name, runbook, inventory, hosts, connector, check, parallel, output,
                  outcome, usual)

    roles = roles_of(hosts)  # a runbook none of them has is never imported
    phase("clocks", CLOCKS)
    if from_scratch:
        for _entry, runbook in reversed(parts("scratch", roles=roles)):
            phase("scratch", runbook)
    for _entry, runbook in parts("converge", roles=roles):
        phase("converge", runbook)
    images_phase(inventory, hosts, connector, check, output, outcome, usual)
    for _entry, runbook in parts("reset", roles=roles):
        phase("reset", runbook)
    phase("reset", WORKLOADS)


def images_phase(inventory: Inventory, hosts: list[Host], connector: Connector, check: bool,
                 output: Output, outcome: Outcome, usual: dict[str, float]) -> None:
    """Missing images pushed from the demo section's layout (see runbooks/demo/images.py),
    recorded as the phase "images" of runbook "demo.images" on the registry host (its
    push counts as a change, its failure makes the run NO-GO)."""
    from runbooks.core.results import HostResult, Status, StepResult
    from runbooks.core.session import HostUnreachable, SessionError
    from runbooks.demo.images import push_missing
    from runbooks.demo.order import Missing

    registry = inventory.registry
    if (registry is None or registry.host not in {h.name for h in hosts}
            or registry.host in outcome.unreachable):
        return
    started = time.monotonic()
    step = StepResult("Ensure every listed image is in the registry")
    host = HostResult(registry.host, steps=[step])
    try:
        changed, what = push_missing(inventory, connector.session(inventory.hosts[registry.host]),
                                     check)
    except Missing:
        return
    except (HostUnreachable, SessionError) as exc:
        host.status = step.status = Status.FAILED
        host.error = step.error = what = str(exc)
    except Exception as exc:  # noqa: BLE001 - reported; the check then says NO-GO
        host.status = step.status = Status.FAILED
        host.error = step.error = what = f"{type(exc).__name__}: {exc}"
    else:
        if changed:
            host.status = step.status = Status.CHANGED
            step.changes.append(what)
    host.seconds = time.monotonic() - started
    result = RunResult("demo.images", check, {registry.host: host}, host.seconds)
    outcome.phases.append(("images", result))
    outcome.steps["images registry"] = host.seconds
    _progress("images", result, usual.get("images registry"), check, output)
    if step.status is Status.CHANGED and not check:
        output.line(f"           {registry.host}: {what}")
    elif step.status is Status.OK:
        output.detail(what)


def finish(outcome: Outcome, started: float, output: Output, report: str | None,
           usual: dict[str, float], title: str) -> None:
    """Print the screen, record the run in the history, write the report."""
    outcome.seconds = time.monotonic() - started
    outcome.steps[outcome.command] = outcome.seconds
    found = history.timings(outcome.steps, usual)
    shown = [t for t in found if t.step.count(" ") <= 2]  # phases and hosts, not sub-steps
    output.line("")
    output.line(screen.render(f"{title}  ({outcome.seconds:.1f} s)", outcome.reports, usual,
                              shown, outcome.ok, output.out))
    if not outcome.check_mode:
        history.record(outcome.site, history.new_run(outcome.command, outcome.ok,
                                                     outcome.seconds, outcome.steps,
                                                     outcome.changed))
    if report:
        write_report(outcome, report)


def default_out() -> IO[str]:
    return sys.stdout
