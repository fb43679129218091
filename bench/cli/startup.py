"""`inv --list` (the CLI's start-up) in two checkouts, interleaved: wall and CPU medians.

    git archive main | tar -x -C /tmp/before        # the checkout to compare with
    python bench/cli/startup.py /tmp/before . --runs 30

CPU time (user + system of the child, from os.times) is what the wall time would be on an
idle machine; both are printed. Nothing is changed; no lab is needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkouts", nargs=2, help="two greenroom checkouts (before, after)")
    ap.add_argument("--runs", type=int, default=30, help="runs per checkout (interleaved)")
    args = ap.parse_args()
    inv = shutil.which("inv") or os.path.join(os.path.dirname(sys.executable), "inv")
    wall: dict[str, list[float]] = {d: [] for d in args.checkouts}
    cpu: dict[str, list[float]] = {d: [] for d in args.checkouts}
    for _ in range(args.runs):
        for folder in args.checkouts:
            before, start = os.times(), time.perf_counter()
            subprocess.run([inv, "--list"], cwd=folder, check=True, capture_output=True)
            wall[folder].append(time.perf_counter() - start)
            after = os.times()
            cpu[folder].append(after.children_user - before.children_user
                               + after.children_system - before.children_system)
    print(f"load average {os.getloadavg()[0]:.1f}")
    for folder in args.checkouts:
        print(f"{folder}: wall median {statistics.median(wall[folder]) * 1000:.0f} ms, "
              f"CPU median {statistics.median(cpu[folder]) * 1000:.0f} ms ({args.runs} runs)")


if __name__ == "__main__":
    main()
