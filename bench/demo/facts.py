"""Where a host's share of demo.check goes: every fact command of the probes and of every
runbook's plan, timed alone (minus one round trip) and all in one batch, per host.

Run as root from the repository root on an up and converged lab, under the lab lock:
    flock /tmp/greenroom-lab.lock python3 bench/demo/facts.py [--top 45]
Prints the slowest rows first: seconds, host, what (a fact key, a plan() call, the batch).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from runbooks.core.context import HostContext  # noqa: E402
from runbooks.core.converge import _step_facts  # noqa: E402
from runbooks.core.facts import gather  # noqa: E402
from runbooks.core.inventory import load_inventory  # noqa: E402
from runbooks.core.session import Connector  # noqa: E402
from runbooks.demo import clock  # noqa: E402
from runbooks.demo.check import applies, converge_parts  # noqa: E402
from runbooks.demo.order import parts, probe_roles  # noqa: E402
from runbooks.lab.access import plug_in  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=45, help="rows to print")
    args = parser.parse_args()
    plug_in()  # the lab's inventory keys and access, as tasks.py plugs them in
    inv = load_inventory(str(REPO / "hosts" / "lab.yaml"))
    connector = Connector(inv)
    rows: list[tuple[float, str, str, str]] = []
    for host in inv.hosts.values():
        session = connector.session(host)
        started = time.monotonic()
        session.run("true")
        trip = time.monotonic() - started
        rows.append((trip, host.name, "round trip", "true"))
        commands = dict(clock.probe_facts(inv))
        for entry, probe in parts("check"):
            if applies(probe_roles(probe), host):
                commands.update({f"{entry.name} {k}": v
                                 for k, v in probe.facts(host, inv).items()})
        for _kind, runbook in converge_parts():
            if not applies(runbook.roles, host):
                continue
            ctx = HostContext(host, inv, session, connector, True, {}, log=lambda _t: None)
            started = time.monotonic()
            plan = runbook.plan(ctx)
            rows.append((time.monotonic() - started, host.name, f"{runbook.name} plan()", ""))
            for key, command in _step_facts(list(enumerate(plan.steps))).items():
                commands[f"{runbook.name} {key}"] = command
        started = time.monotonic()
        gather(session, commands)
        rows.append((time.monotonic() - started, host.name,
                     f"all {len(commands)} facts in one batch", ""))
        for key, command in commands.items():
            started = time.monotonic()
            gather(session, {key: command})
            rows.append((time.monotonic() - started - trip, host.name, key,
                         command[:120].replace("\n", " ")))
    connector.close_all()
    for seconds, host, what, command in sorted(rows, reverse=True)[:args.top]:
        print(f"{seconds:6.3f} {host:6} {what[:60]:60} {command}")


if __name__ == "__main__":
    main()
