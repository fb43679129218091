"""Run a runbook across hosts in parallel, print per-host progress and a recap, write a report.

One host failing never stops the others: every host ends ok, changed, failed or
unreachable, and the run as a whole is ok only when none failed or was unreachable.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from runbooks.core import secrets
from runbooks.core.context import HostContext
from runbooks.core.converge import Converger
from runbooks.core.errors import UsageError
from runbooks.core.results import HostResult, Status
from runbooks.core.session import Connector, HostUnreachable, SessionError
from runbooks.core.steps.base import Plan, StepFailed

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory


@dataclass(frozen=True)
class Runbook:
    """A named plan for the hosts with given roles."""

    name: str
    roles: tuple[str, ...]
    plan: Callable[[HostContext], Plan]


@dataclass
class RunResult:
    runbook: str
    check: bool
    hosts: dict[str, HostResult] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status.good for r in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.hosts.values())

    def as_report(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "runbook": self.runbook,
            "check": self.check,
            "seconds": round(self.seconds, 3),
            "hosts": {
                name: {
                    "status": r.status,
                    "changed": r.changed,
                    "failed": r.failed,
                    "seconds": round(r.seconds, 3),
                    "error": r.error,
                    "steps": [
                        {"name": s.name, "status": s.status, "changes": s.changes,
                         **({"error": s.error} if s.error else {})}
                        for s in r.steps
                    ],
                }
                for name, r in self.hosts.items()
            },
        }


class Printer:
    """Thread-safe output, one line per event prefixed with the host; every line passes
    `secrets.mask` here, the one place a run's output is written."""

    def __init__(self, out: IO[str], width: int) -> None:
        self.out = out
        self.width = width
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            self.out.write(secrets.mask(text) + "\n")
            self.out.flush()

    def for_host(self, name: str) -> Callable[[str, str], None]:
        label = name.ljust(self.width)

        def emit(kind: str, text: str) -> None:
            if kind == "diff":
                body = "\n".join(f"{' ' * self.width}      {ln}" for ln in text.splitlines())
                self.line(body)
            elif kind == "change":
                self.line(f"{label}    - {text}")
            else:
                self.line(f"{label}  {text}")

        return emit


def select_hosts(inventory: Inventory, runbook: Runbook, spec: str | None) -> list[Host]:
    """The hosts a run targets: those with the runbook's roles, narrowed by --host."""
    with_role = [h for h in inventory.hosts.values() if set(h.roles) & set(runbook.roles)]
    if not spec:
        return with_role
    chosen = inventory.select(spec)
    outside = [h.name for h in chosen if h not in with_role]
    if outside:
        roles = ", ".join(runbook.roles)
        raise UsageError(
            f"{inventory.path}: --host: {', '.join(outside)} has no role {roles}; "
            f"{runbook.name} runs on hosts with role {roles}: "
            f"{', '.join(h.name for h in with_role) or 'none in this inventory'}")
    return chosen


def _converge_host(
    runbook: Runbook, host: Host, inventory: Inventory, connector: Connector, check: bool,
    options: Mapping[str, Any], printer: Printer,
) -> HostResult:
    emit = printer.for_host(host.name)
    started = time.monotonic()
    try:
        session = connector.session(host)
        ctx = HostContext(host, inventory, session, connector, check, options,
                          log=lambda text: emit("info", text))
        plan = runbook.plan(ctx)
        plan.check_notifications()
        result = Converger(ctx, plan, emit).run()
    except HostUnreachable as exc:
        emit("error", f"unreachable: {exc}")
        result = HostResult(host.name, Status.UNREACHABLE, error=str(exc))
    except (SessionError, StepFailed) as exc:
        emit("error", f"failed: {exc}")
        result = HostResult(host.name, Status.FAILED, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug on one host must not stop the others
        emit("error", f"failed: internal error: {type(exc).__name__}: {exc}")
        result = HostResult(host.name, Status.FAILED, error=f"{type(exc).__name__}: {exc}")
    result.seconds = time.monotonic() - started
    word = {Status.OK: "ok, nothing to change",
            Status.CHANGED: "would change" if check else "changed"}
    summary = word.get(result.status, str(result.status))
    if result.status is Status.CHANGED:
        summary = f"{summary} {result.changed} step{'s' if result.changed != 1 else ''}"
    emit("info", f"{summary} ({result.seconds:.2f}s)")
    return result


def run_runbook(
    runbook: Runbook,
    inventory: Inventory,
    hosts: Iterable[Host],
    *,
    check: bool = False,
    parallel: int | None = None,
    options: Mapping[str, Any] | None = None,
    accept_new_host_keys: bool = False,
    out: IO[str] | None = None,
) -> RunResult:
    """Converge `hosts` with `runbook`, `parallel` at once (None: all of them; the CLI
    passes --parallel or greenroom.parallel from invoke.yaml); never raises for a host's
    failure."""
    targets = list(hosts)
    started = time.monotonic()
    printer = Printer(out or sys.stdout, max((len(h.name) for h in targets), default=4))
    connector = Connector(inventory, accept_new_host_keys=accept_new_host_keys)
    mode = " (check mode: nothing will be changed)" if check else ""
    printer.line(f"{runbook.name} on {inventory.site}: {len(targets)} host(s){mode}")
    result = RunResult(runbook.name, check)
    try:
        with ThreadPoolExecutor(max_workers=max(1, parallel or len(targets))) as pool:
            futures = [
                pool.submit(_converge_host, runbook, host, inventory, connector, check,
                            options or {}, printer)
                for host in targets
            ]
            for host, future in zip(targets, futures, strict=True):
                result.hosts[host.name] = future.result()
    finally:
        connector.close_all()
    result.seconds = time.monotonic() - started
    printer.line(recap(result))
    return result


def recap(result: RunResult) -> str:
    """The recap table: host, status, ok, changed, failed, time; then what went wrong."""
    rows = [("HOST", "STATUS", "OK", "CHANGED", "FAILED", "TIME")]
    for name, r in result.hosts.items():
        rows.append((name, str(r.status), str(r.ok), str(r.changed), str(r.failed),
                     f"{r.seconds:.2f}s"))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["", f"RECAP {result.runbook}{' (check)' if result.check else ''}"]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
    unreachable = [n for n, r in result.hosts.items() if r.status is Status.UNREACHABLE]
    if unreachable:
        lines.append(f"unreachable: {', '.join(unreachable)}")
    for name, r in result.hosts.items():
        if not r.status.good and r.error:
            lines.append(f"{name}: {r.error}")
    if result.check and result.changed:
        lines.append("check mode: nothing was changed; run without --check to apply")
    return "\n".join(lines)


def write_json(data: Any, path: str | Path) -> None:
    """Write `data` as JSON to `path`, atomically, every registered secret masked: the one
    way any report leaves greenroom."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(secrets.mask(json.dumps(data, indent=2)) + "\n")
    tmp.replace(target)


def write_report(result: RunResult, path: str | Path) -> None:
    """Write the run's report as JSON (atomically, secrets masked)."""
    write_json(result.as_report(), path)
