"""Benchmark: `inv k3s` on an already converged 3-node lab cluster against the raw Fabric
floor (connect to the same hosts in parallel, run `true` once each: the 3 nodes and the
gateway, whose registry serves the release files), as whole processes. Also timed: `inv`'s
own start-up (`inv k3s --help`: imports, no connection), to show where the rest goes.

Run as root from the repository root, inside the lab lock:
    flock /tmp/greenroom-lab.lock python3 bench/k3s/bench_k3s.py [--runs 5]
Compiles greenroom's modules to bytecode first (as bench/fleet does), brings the lab up
(hosts/lab.yaml), converges k3s once (not timed), then alternates no-op
`inv k3s` runs and floor runs; prints medians and the ratio; takes the lab down at the end.
The lab keeps its state in a temporary directory of the run's own (XDG_STATE_HOME,
tests/support/privatestate.py), never in the user's ~/.local/state/greenroom.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.privatestate import private_state  # noqa: E402

NODES = ("rp0", "rp1", "lp0")
GATEWAY = "dell"


def inv(*args: str, env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def floor(hosts: list[list[str]], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, str(REPO / "bench/fleet/fabric_floor.py"),
                    json.dumps(hosts)], check=True, env=env)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", metavar="FILE",
                        help="after the timed runs, one more no-op under cProfile into FILE "
                             "(read it with `python -m pstats FILE`)")
    args = parser.parse_args()
    from runbooks.core.inventory import load_inventory
    from runbooks.lab.access import lab_access, plug_in

    plug_in()  # as tasks.py does: inventories may describe the lab (its `lab:` keys)
    # greenroom's modules compiled once, as pip does for installed packages (the floor's
    # Fabric has its .pyc; `inv` never writes them): no timed run compiles source
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "runbooks"),
                    str(REPO / "tasks.py"), str(REPO / "bench")], check=True)
    tmp = tempfile.mkdtemp(prefix="bench-k3s-")
    env = dict(os.environ, KUBECONFIG=f"{tmp}/kubeconfig", PYTHONPATH=str(REPO))
    inventory = load_inventory(REPO / "hosts/lab.yaml")
    subprocess.run([sys.executable, "-m", "invoke", "lab.up"], cwd=REPO, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    try:
        for name in NODES:
            subprocess.run([sys.executable, "-m", "invoke", "lab.reset", name], cwd=REPO,
                           check=True, env=env, stdout=subprocess.DEVNULL)
        first = inv("k3s", env=env)
        access = lab_access(inventory)
        hosts = [[inventory.hosts[n].address, access.key_filename] for n in (*NODES, GATEWAY)]
        # the floor checks host keys against ~/.ssh/known_hosts like any Fabric user
        env_floor = dict(env, HOME=tmp)
        os.makedirs(f"{tmp}/.ssh", exist_ok=True)
        Path(f"{tmp}/.ssh/known_hosts").write_text(Path(access.known_hosts).read_text())
        ours, raw, start = [], [], []
        for _ in range(args.runs):
            ours.append(inv("k3s", env=env))
            raw.append(floor(hosts, env_floor))
            start.append(inv("k3s", "--help", env=env))
        report = Path(tmp) / "noop.json"
        inv("k3s", "--report", str(report), env=env)
        hosts_seconds = {h: r["seconds"] for h, r in json.loads(report.read_text())["hosts"]
                         .items()}
        if args.profile:
            subprocess.run([sys.executable, "-m", "cProfile", "-o", args.profile, "-m",
                            "invoke", "k3s"], cwd=REPO, check=True, env=env,
                           stdout=subprocess.DEVNULL)
        mine, base = statistics.median(ours), statistics.median(raw)
        print(f"first converge (not compared): {first:.2f} s")
        print(f"inv k3s no-op, 3 nodes + gateway: median {mine:.2f} s "
              f"(min {min(ours):.2f}, max {max(ours):.2f}) over {args.runs} runs")
        print(f"fabric floor, same 4 hosts:       median {base:.2f} s "
              f"(min {min(raw):.2f}, max {max(raw):.2f})")
        print(f"inv start-up (k3s --help):        median {statistics.median(start):.2f} s")
        print(f"ratio: {mine / base:.2f}x the floor (goal: within 1.5x)")
        print("each host's part of one no-op round (its facts, one batch): "
              + ", ".join(f"{h} {s:.2f} s" for h, s in sorted(hosts_seconds.items())))
        print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    finally:
        subprocess.run([sys.executable, "-m", "invoke", "lab.down"], cwd=REPO, check=False,
                       env=env, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    with private_state():  # the lab's state in a directory of the run's own, not the user's
        main()
