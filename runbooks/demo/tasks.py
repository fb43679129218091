"""demo: the whole lab in one command: every runbook in order, one recap."""

from __future__ import annotations

import json

from invoke import Collection, Context, Exit

from runbooks.core.cli import COMMON_HELP, load_inventory_or_exit, settings, task
from runbooks.demo.order import runbooks_in_order


@task(help={
    "inventory": COMMON_HELP["inventory"],
    "check": COMMON_HELP["check"],
    "parallel": COMMON_HELP["parallel"],
    "report": "Write every runbook's result as JSON to this file.",
    "accept_new_host_keys": COMMON_HELP["accept_new_host_keys"],
})
def rehearse(c: Context, inventory: str | None = None, check: bool = False,
             parallel: int = 0, report: str | None = None,
             accept_new_host_keys: bool = False) -> None:
    """Converge every runbook on the site, in build order, and end with one recap.

    On the virtual lab (`inv lab.up` first) this rehearses the whole demo. A runbook whose
    hosts failed does not stop the ones after it; the exit status is non-zero if any failed.
    """
    from runbooks.core.runner import run_runbook, select_hosts

    inv = load_inventory_or_exit(c, inventory)
    results = []
    for runbook in runbooks_in_order():
        hosts = select_hosts(inv, runbook, None)
        if not hosts:
            print(f"{runbook.name}: no host with role {', '.join(runbook.roles)}; skipped")
            continue
        try:
            results.append(run_runbook(
                runbook, inv, hosts, check=check,
                parallel=parallel or int(settings(c).get("parallel", 10)),
                accept_new_host_keys=accept_new_host_keys))
        except Exception as exc:
            if type(exc).__name__ == "LabNotRunning":
                raise Exit(str(exc), code=2) from None
            raise
        print()
    print("REHEARSAL")
    for result in results:
        statuses = ", ".join(f"{h} {r.status}" for h, r in result.hosts.items())
        print(f"  {result.runbook:14} {'ok' if result.ok else 'FAILED':7} "
              f"{result.changed:3} changed  {result.seconds:6.1f}s  ({statuses})")
    ok = all(r.ok for r in results)
    print("GO: every runbook converged" if ok else "NO-GO: see the failures above")
    if report:
        with open(report, "w") as out:
            json.dump({"ok": ok, "runbooks": [r.as_report() for r in results]}, out, indent=2)
    if not ok:
        raise Exit(code=1)


ns = Collection("demo")
ns.add_task(rehearse)
