"""demo: the whole lab in one command: check it, reset it before a talk, rehearse it."""

from __future__ import annotations

import json
import time
from typing import Any

from invoke import Collection, Context, Exit

from runbooks.core.cli import (
    collector_paused,
    load_inventory_or_exit,
    parallel_of,
    task,
    usage_errors_exit,
)

SHARED = ("inventory", "parallel", "accept_new_host_keys")
HELP = {
    "host": "Only these hosts: names or roles, comma separated (default: every host).",
    "report": "Also write the whole run as JSON to this file (secrets masked).",
    "verbose": "Print everything as it happens (default: a line per runbook, then the "
               "screen).",
}


CONNECT_TIMEOUT = 5.0  # seconds: a board that is off costs this once, not once per runbook


def _hosts(inv: Any, spec: str | None) -> list[Any]:
    from runbooks.core.inventory import InventoryError

    try:
        return list(inv.select(spec))
    except InventoryError as exc:
        raise Exit(str(exc), code=2) from None


def _connector(inv: Any, accept: bool, hosts: list[Any], workers: int) -> Any:
    """One connector for the whole run (the lab not running: one line, exit 2), its hosts'
    connections already opening while demo's modules load (runbooks/demo/early.py)."""
    from runbooks.core.session import Connector
    from runbooks.demo.early import Early

    with usage_errors_exit():
        connector = Connector(inv, accept_new_host_keys=accept,
                              connect_timeout=CONNECT_TIMEOUT)
    return Early(connector, hosts, workers)


def _start(c: Context, inventory: str | None, host: str | None, parallel: int,
           accept: bool, verbose: bool) -> tuple[Any, list[Any], float, int, Any, Any,
                                                 dict[str, float]]:
    """A demo command's start: (inventory, hosts, start time, workers, connector with the
    connections already opening, output, usual step times)."""
    inv = load_inventory_or_exit(c, inventory)
    hosts = _hosts(inv, host)
    started = time.monotonic()
    with usage_errors_exit():
        workers = parallel_of(c, parallel)
    connector = _connector(inv, accept, hosts, workers)
    from runbooks.demo import history, run

    output = run.Output(run.default_out(), verbose)
    usual = history.usual_times(history.read_runs(inv.site))
    return inv, hosts, started, workers, connector, output, usual


def _title(command: str, inv: Any, hosts: list[Any]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"{command}  site {inv.site}  {len(hosts)} host(s)  {stamp}"


@task(shared=SHARED, help=HELP)
def check(c: Context, inventory: str | None = None, host: str | None = None,
          parallel: int = 0, report: str | None = None, verbose: bool = False,
          accept_new_host_keys: bool = False) -> None:
    """Read-only GO / NO-GO for the whole lab on one screen; exits 0 only on GO.

    Every host in parallel: reachable; clock within the demo section's tolerance of this
    machine's and synchronised to the gateway; free disk; each runbook's checks (gateway
    health, registry and every listed image with its locked digest, the boards' memory
    cgroup and swap, the cluster's when present); each runbook converged (no drift) and
    nothing left over for demo.reset. Changes nothing.
    """
    with collector_paused():  # a check is start-up and one round: bounded, short
        inv, hosts, started, workers, connector, output, usual = _start(
            c, inventory, host, parallel, accept_new_host_keys, verbose)
        from runbooks.demo import run

        outcome = run.Outcome("demo.check", inv.site)
        try:
            run.check_phase(inv, hosts, connector, workers, output, outcome)
        finally:
            connector.close_all()
        run.finish(outcome, started, output, report, usual,
                   _title("demo.check", inv, hosts))
    if not outcome.ok:
        raise Exit(code=1)


def do_reset(c: Context, inventory: str | None, host: str | None, check: bool,
             from_scratch: bool, parallel: int, report: str | None, verbose: bool,
             accept_new_host_keys: bool, command: str = "demo.reset") -> None:
    with collector_paused():  # start-up and the first check (on a converged lab, the run)
        inv, hosts, started, workers, connector, output, usual = _start(
            c, inventory, host, parallel, accept_new_host_keys, verbose)
        from runbooks.demo import run

        outcome = run.Outcome(command + (" --from-scratch" if from_scratch else ""),
                              inv.site, check_mode=check)
        mode = " (check mode: nothing will be changed)" if check else ""
        output.line(f"{command} on {inv.site}: {len(hosts)} host(s){mode}")
    try:
        with collector_paused():
            green = not from_scratch and run.already_green(inv, hosts, connector, workers,
                                                           output, outcome, usual)
        if not green:  # the reset's phases, as long as they take: the collector as usual
            run.reset_phases(inv, hosts, connector, check, from_scratch, workers, output,
                             outcome, usual)
            run.check_phase(inv, hosts, connector, workers, output, outcome)
    finally:
        connector.close_all()
    title = _title(command, inv, hosts)
    if check:
        title += f"  check mode: {outcome.changed} change(s) shown above, none made"
    with collector_paused():  # the screen, the history and the report, then the exit
        run.finish(outcome, started, output, report, usual, title)
    if not outcome.ok:
        raise Exit(code=1)


@task(shared=SHARED, help={**HELP,
            "check": "Show everything the reset would do (every change, with diffs in "
                     "--verbose) and change nothing.",
            "from_scratch": "Also reset and reinstall the cluster (the k3s or microk8s "
                            "runbook's reset, keeping cached images)."})
def reset(c: Context, inventory: str | None = None, host: str | None = None,
          check: bool = False, from_scratch: bool = False, parallel: int = 0,
          report: str | None = None, verbose: bool = False,
          accept_new_host_keys: bool = False) -> None:
    """Put the whole demo back to known-good before a talk, then GO / NO-GO.

    Starts with demo.check: when it says GO there is nothing to reset. Otherwise steps
    drifted clocks; converges every runbook in build order; runs each runbook's reset (stale
    DHCP leases pruned, ...) and the inventory's demo section (workloads removed, the site's
    reset steps); then demo.check again. Works offline. A host that stays unreachable is
    NO-GO, named, while every other host is reset.
    """
    do_reset(c, inventory, host, check, from_scratch, parallel, report, verbose,
             accept_new_host_keys)


@task(shared=("inventory",), help={
            "last": "How many runs to show (default 10).",
            "json": "Print the runs as JSON for scripts."})
def history(c: Context, inventory: str | None = None, last: int = 10,
            json_: bool = False) -> None:
    """The last demo.check / demo.reset / demo.rehearse runs of the site, with timings.

    Kept per site in the user's state directory (~/.local/state/greenroom/demo/SITE.jsonl).
    """
    from runbooks.demo import history as past

    inv = load_inventory_or_exit(c, inventory)
    runs = past.read_runs(inv.site)
    if json_:
        print(json.dumps(runs[-int(last):], indent=2))
        return
    if not runs:
        print(f"no demo runs recorded for site {inv.site} yet ({past.history_path(inv.site)})")
        return
    print(past.table(runs, int(last)))


@task(shared=SHARED, help={**HELP,
            "check": "Bring the lab up, then show what the reset would do; change nothing "
                     "in the guests.",
            "from_scratch": "Also reset and reinstall the cluster."})
def rehearse(c: Context, inventory: str | None = None, host: str | None = None,
             check: bool = False, from_scratch: bool = False, parallel: int = 0,
             report: str | None = None, verbose: bool = False,
             accept_new_host_keys: bool = False) -> None:
    """The headline command on the virtual lab: lab.up, then demo.reset, ending GO / NO-GO.

    Needs a lab inventory (one with a `lab:` section, like hosts/lab.yaml); on a real site
    run demo.reset.
    """
    inv = load_inventory_or_exit(c, inventory)
    if "lab" not in inv.sections:
        raise Exit(f"{inv.path}: demo.rehearse runs on a virtual lab inventory (one with a "
                   "`lab:` section, like hosts/lab.yaml); on a real site run "
                   "`inv demo.reset`", code=2)
    from runbooks.demo.order import load

    control = load("runbooks.lab.control")  # the lab plugs in by name, like every runbook
    with usage_errors_exit():
        control.up(inv, log=print if verbose else (lambda _msg: None))
    print(f"lab.up: {inv.site} is up")
    do_reset(c, inventory, host, check, from_scratch, parallel, report, verbose,
             accept_new_host_keys, command="demo.rehearse")


ns = Collection("demo")
ns.add_task(check)
ns.add_task(reset)
ns.add_task(history)
ns.add_task(rehearse)
