"""demo: the whole lab in one command: every runbook in order, one recap."""

from __future__ import annotations

from invoke import Collection, Context, Exit

from runbooks.core.cli import load_inventory_or_exit, parallel_of, task, usage_errors_exit
from runbooks.demo.order import runbooks_in_order


@task(shared=("inventory", "check", "parallel", "accept_new_host_keys"),
      help={"report": "Write every runbook's result as JSON to this file."})
def rehearse(c: Context, inventory: str | None = None, check: bool = False,
             parallel: int = 0, report: str | None = None,
             accept_new_host_keys: bool = False) -> None:
    """Converge every runbook on the site, in build order, and end with one recap.

    On the virtual lab (`inv lab.up` first) this rehearses the whole demo. A runbook whose
    hosts failed does not stop the ones after it; the exit status is non-zero if any failed.
    """
    from runbooks.core.runner import run_runbook, select_hosts, write_json

    inv = load_inventory_or_exit(c, inventory)
    results = []
    with usage_errors_exit():  # the lab not running, a bad --parallel: one line, exit 2
        count = parallel_of(c, parallel)
        for runbook in runbooks_in_order():
            hosts = select_hosts(inv, runbook, None)
            if not hosts:
                print(f"{runbook.name}: no host with role {', '.join(runbook.roles)}; skipped")
                continue
            results.append(run_runbook(runbook, inv, hosts, check=check, parallel=count,
                                       accept_new_host_keys=accept_new_host_keys))
            print()
    print("REHEARSAL")
    for result in results:
        statuses = ", ".join(f"{h} {r.status}" for h, r in result.hosts.items())
        print(f"  {result.runbook:14} {'ok' if result.ok else 'FAILED':7} "
              f"{result.changed:3} changed  {result.seconds:6.1f}s  ({statuses})")
    ok = all(r.ok for r in results)
    print("GO: every runbook converged" if ok else "NO-GO: see the failures above")
    if report:  # through the engine's one report writer: secrets masked, atomic
        write_json({"ok": ok, "runbooks": [r.as_report() for r in results]}, report)
    if not ok:
        raise Exit(code=1)


ns = Collection("demo")
ns.add_task(rehearse)
