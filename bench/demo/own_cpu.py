"""Our own `inv` process's CPU per demo command, this checkout against another, taking turns.

Run as root from the repository root, under the lab lock:
    python3 bench/demo/own_cpu.py --compare-at DIR [--runs 8] [--tasks check,reset]

The lab is brought up from this checkout and converged once (demo.reset); then each task runs
--runs times from this checkout and from DIR in turns (both only read a converged lab), and
for each run the `inv` process's own CPU (user + sys, from wait4's rusage: its threads, not
the guests') and wall time are kept. Prints median and best of each, and the ratio of the
medians. Both checkouts should have their bytecode compiled (`python -m compileall -q -j0
tasks.py runbooks`), as users have it. $KUBECONFIG and $XDG_STATE_HOME point at a scratch
directory, removed at the end; the lab is taken down at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INV = ["-i", "hosts/lab.yaml"]


def run_once(task: str, cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(CPU seconds of the `inv` process, wall seconds, exit status) of one demo.TASK."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "invoke", f"demo.{task}", *INV], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, wall, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-at", required=True, metavar="DIR",
                        help="the other checkout (bytecode compiled), e.g. a `git worktree "
                             "add --detach DIR <commit>`")
    parser.add_argument("--runs", type=int, default=8, help="runs of each task per checkout")
    parser.add_argument("--tasks", default="check,reset",
                        help="demo tasks to time, comma separated (default check,reset)")
    args = parser.parse_args()
    other = Path(args.compare_at).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="bench-own-cpu-"))
    env = dict(os.environ, KUBECONFIG=str(scratch / "kubeconfig"),
               XDG_STATE_HOME=str(scratch / "state"))
    load = os.getloadavg()
    started = time.strftime("%H:%M:%S", time.gmtime())
    subprocess.run([sys.executable, "-m", "invoke", "lab.up", *INV], cwd=REPO, env=env,
                   check=True, capture_output=True)
    rows = []
    try:
        run_once("reset", REPO, env)  # converge once
        for task in args.tasks.split(","):
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(run_once(task, REPO, env))
                theirs.append(run_once(task, other, dict(env, PYTHONPATH=str(other))))
            for name, got in ((f"demo.{task}", ours), (f"demo.{task} at {other.name}", theirs)):
                cpu = [c for c, _, _ in got]
                wall = [w for _, w, _ in got]
                failed = sum(1 for _, _, code in got if code != 0)
                rows.append((name, statistics.median(cpu), min(cpu), statistics.median(wall),
                             min(wall), failed))
    finally:
        subprocess.run([sys.executable, "-m", "invoke", "lab.down", *INV], cwd=REPO, env=env,
                       capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print("| command | our process's CPU, median / best (ms) | wall, median / best (s) "
          "| runs not GO |")
    print("|---|---|---|---|")
    for name, cpu, cpu_best, wall, wall_best, failed in rows:
        print(f"| {name} | {cpu * 1000:.0f} / {cpu_best * 1000:.0f} | {wall:.2f} / "
              f"{wall_best:.2f} | {failed} |")
    for ours, theirs in zip(rows[::2], rows[1::2], strict=True):
        print(f"{ours[0]}: CPU {ours[1] / theirs[1]:.2f}x, wall {ours[3] / theirs[3]:.2f}x "
              f"of {theirs[0]} (medians)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    end = os.getloadavg()
    print(f"commit {commit}, {started}-{time.strftime('%H:%M:%S', time.gmtime())} UTC, "
          f"load average {load[0]:.1f} at the start and {end[0]:.1f} at the end")


if __name__ == "__main__":
    main()
