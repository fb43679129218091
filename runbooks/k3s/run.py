"""Run `inv k3s` in phases over one set of connections, with one recap.

1. the first server (its token is read at the end of its run);
2. the other servers and the agents, given the token in memory: in parallel, or one at a
   time, servers first, each Ready before the next, when the version changes (an upgrade);
3. on the first server: every node Ready (with a timeout), then the kubeconfig merged.

A node whose phase cannot run because the first server failed is reported failed with that
reason. One Connector serves all phases, so a converged cluster costs one round trip per
node plus one more on the first server.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import IO, TYPE_CHECKING, Any

from runbooks.core.results import HostResult, Status
from runbooks.core.runner import Printer, Runbook, RunResult, _converge_host, recap
from runbooks.core.session import Connector

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

# (runbook, hosts, how many at once: 0 = --parallel)
Phase = tuple[Runbook, list["Host"], int]


class WarmConnector(Connector):
    """A Connector that opens every host's connection at once, up front (the phases then
    pay no handshake one after another); a host that failed to connect fails the same way
    in its phase, without a second attempt (and a second timeout)."""

    def __init__(self, inventory: Inventory, **options: Any) -> None:
        super().__init__(inventory, **options)
        self.failed: dict[str, Exception] = {}

    def warm(self, hosts: list[Host], workers: int) -> None:
        def one(host: Host) -> None:
            try:
                super(WarmConnector, self).session(host)
            except Exception as exc:  # noqa: BLE001 - re-raised by session() in its phase
                self.failed[host.name] = exc

        unique = list({h.name: h for h in hosts}.values())
        if unique:
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
                list(pool.map(one, unique))

    def session(self, host: Host) -> Any:
        failed = self.failed.get(host.name)
        if failed is not None:
            raise failed
        return super().session(host)


def run_phases(phases: list[Phase], inventory: Inventory, *, name: str, check: bool,
               parallel: int, options: Mapping[str, Any], accept_new_host_keys: bool = False,
               out: IO[str] | None = None, needs_first: str | None = None,
               then: Callable[[RunResult], list[Phase]] | None = None,
               warm: list[Host] | None = None,
               on_result: Callable[[HostResult], None] | None = None,
               framed: bool = True) -> RunResult:
    """Converge each phase's hosts in turn. `needs_first`: a host whose failure skips the
    phases after its own; `then`: once the given phases ran, called with the result so far,
    returns the phases to run next; `warm`: hosts to connect to at once before the first
    phase (the hosts of later phases too); `on_result`: called with each host's result as
    soon as it is known (other hosts of the phase may still be running); `framed`: print
    the title line and the recap (False: the hosts' lines only)."""
    hosts_seen = {h.name for _, hs, _ in phases for h in hs}
    printer = Printer(out or sys.stdout, max((len(h) for h in inventory.hosts), default=4))
    connector = WarmConnector(inventory, accept_new_host_keys=accept_new_host_keys)
    mode = " (check mode: nothing will be changed)" if check else ""
    if framed:
        printer.line(f"{name} on {inventory.site}: {len(hosts_seen)}+ host(s){mode}")
    result = RunResult(name, check)
    started = time.monotonic()
    blocked: str | None = None
    pending = list(phases)
    try:
        connector.warm([*(h for _, hs, _ in phases for h in hs), *(warm or [])],
                       max(1, parallel))
        while pending or then is not None:
            if not pending:
                assert then is not None
                pending, then = list(then(result)), None
                continue
            runbook, hosts, width = pending.pop(0)
            if not hosts:
                continue
            if blocked is not None:
                for host in hosts:
                    _merge(result, HostResult(host.name, Status.FAILED, error=blocked))
                continue
            workers = max(1, min(parallel, width) if width else parallel)
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_converge_host, runbook, host, inventory, connector,
                                       check, options, printer) for host in hosts]
                if on_result is not None:
                    for future in as_completed(futures):
                        on_result(future.result())
                outcomes = [f.result() for f in futures]
            for outcome in outcomes:
                _merge(result, outcome)
                if outcome.host == needs_first and outcome.status in ("failed", "unreachable"):
                    blocked = (f"not run: the first server {needs_first} failed "
                               f"({outcome.error})")
    finally:
        connector.close_all()
    result.seconds = time.monotonic() - started
    if framed:
        printer.line(recap(result))
    return result


def converged_already(runbook: Runbook, hosts: list[Host], inventory: Inventory, *,
                      name: str, parallel: int, options: Mapping[str, Any],
                      accept_new_host_keys: bool = False,
                      out: IO[str] | None = None) -> RunResult | None:
    """Read every host at once in check mode (one round); when nothing would change
    anywhere, that is the run: its lines and recap printed, the result returned. Else None
    (nothing printed, nothing changed) and the caller converges in its phases."""
    import io

    sink = io.StringIO()
    result = run_phases([(runbook, hosts, 0)], inventory, name=name, check=True,
                        parallel=parallel, options=options,
                        accept_new_host_keys=accept_new_host_keys, out=sink, framed=False)
    if not result.ok or result.changed or len(result.hosts) != len({h.name for h in hosts}):
        return None
    result.check = False  # nothing to change: the same result a converging run has
    stream = out or sys.stdout
    stream.write(f"{name} on {inventory.site}: {len(result.hosts)} host(s), nothing to "
                 "change\n" + sink.getvalue() + recap(result) + "\n")
    stream.flush()
    return result


def _merge(result: RunResult, outcome: HostResult) -> None:
    """A host seen in two phases keeps one result: steps added, the worst status kept."""
    known = result.hosts.get(outcome.host)
    if known is None:
        result.hosts[outcome.host] = outcome
        return
    known.steps.extend(outcome.steps)
    known.seconds += outcome.seconds
    rank = {"ok": 0, "changed": 1, "failed": 2, "unreachable": 3}
    if rank[outcome.status] > rank[known.status]:
        known.status, known.error = outcome.status, outcome.error
