"""What a converging run costs ON THE HOST: processes and CPU of the plan's first batch.

    python bench/fleet/host_processes.py CHECKOUT [CHECKOUT ...] [--runs 50]

Each checkout's engine plans the benchmark plan (`plan.py`) against a fresh copy of a
board's files under a temporary directory (the paths prefixed; the live sysctl step left
out, it would change this machine), and the whole first round trip it sends (every change
and the facts that verify them) is run as sshd runs it, `bash -c "exec sh -s"` with the
script on stdin: once under `strace -f` to count the processes it starts (deterministic),
then `--runs` times for its CPU (user + system of the children, getrusage), the files
reset before each run. No network; nothing outside the temporary directory changes.
On the lab's boards every one of these processes shares the client's cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Prints the first batch's script for the plan under ROOT, as the converger would send it.
SCRIPT = r"""
import io, os, subprocess, sys
checkout, root = sys.argv[1], sys.argv[2]
sys.path[:0] = [checkout, sys.argv[3]]
from runbooks.core import apply
from runbooks.core.facts import FactResult, gather
from runbooks.core.steps import Directory, File, LineInFile, Tokens
from runbooks.common.kernel import Sysctl
import plan as bench
from runbooks.core.steps import files
files.BACKUP_DIR = root + "/var/backups/greenroom"  # never this machine's /var/backups


class Local:
    def run(self, command, stdin=None):
        done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True,
                              text=True)
        done.rc = done.returncode
        return done


class Capture:
    script = ""

    def run(self, command, stdin=None):
        Capture.script = stdin
        raise SystemExit(0)


r = lambda p: root + p
steps = [
    File(r("/etc/modules-load.d/k8s.conf"), bench.MODULES),
    File(r("/etc/sysctl.d/k8s.conf"), bench.SYSCTL),
    Tokens(r("/boot/firmware/cmdline.txt"), ["cgroup_memory=1", "cgroup_enable=memory"]),
    LineInFile(r("/etc/fstab"), "#/swapfile none swap sw 0 0", match="/swapfile"),
    Sysctl("net.ipv4.ip_forward", 1, file=r("/etc/sysctl.d/90-bench.conf")).parts[1],
    File(r("/etc/containerd/config.toml"), bench.containerd_config("b01")),
    Directory(r("/etc/containerd/certs.d")),
]
commands = {f"{i}.{k}": c for i, s in enumerate(steps) for k, c in s.facts().items()}
facts = gather(Local(), commands)
actions = []
for i, step in enumerate(steps):
    mine = {k.split(".", 1)[1]: v for k, v in facts.items() if k.split(".", 1)[0] == str(i)}
    for change in step.plan(mine):
        actions.extend(change.actions)
try:
    apply.run_batch(Capture(), actions, commands)
except SystemExit:
    pass
sys.stdout.write(Capture.script)
"""

BOARD = {
    "boot/firmware/cmdline.txt": "console=serial0,115200 root=/dev/mmcblk0p2 rootwait\n",
    "etc/fstab": "proc /proc proc defaults 0 0\n/swapfile none swap sw 0 0\n",
}


def reset(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for name, text in BOARD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for folder in ("etc/modules-load.d", "etc/sysctl.d", "var/backups"):
        (root / folder).mkdir(parents=True, exist_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", help="greenroom checkouts to compare")
    parser.add_argument("--runs", type=int, default=50, help="timed runs of each (default 50)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="greenroom-host-processes-"))
    scripts = {}
    for checkout in args.checkouts:
        root = base / "root"
        reset(root)
        scripts[checkout] = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(Path(checkout).resolve()), str(root), str(HERE)],
            capture_output=True, text=True, check=True).stdout
    env = dict(os.environ, LANG="C.UTF-8")
    print(f"load average {os.getloadavg()[0]:.1f}; the first batch (6 files, a directory, "
          f"their verifying facts), {args.runs} runs each")
    for checkout, script in scripts.items():
        reset(base / "root")
        trace = base / "trace"
        subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace),
                        "bash", "-c", "exec sh -s"], input=script, text=True, env=env,
                       capture_output=True, check=True)
        lines = [line for line in trace.read_text().splitlines() if "execve(" in line]
        programs = sorted(line.split('"')[1].rsplit("/", 1)[-1] for line in lines)
        cpu = []
        for _ in range(args.runs):
            reset(base / "root")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(["bash", "-c", "exec sh -s"], input=script, text=True, env=env,
                           stdout=subprocess.DEVNULL, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(1000 * (after.ru_utime - before.ru_utime
                               + after.ru_stime - before.ru_stime))
        counts = {p: programs.count(p) for p in dict.fromkeys(programs)}
        print(f"{checkout}: {len(lines)} programs started "
              f"({', '.join(f'{p} {n}' for p, n in counts.items())}); CPU mean "
              f"{statistics.mean(cpu):.1f} ms, median {statistics.median(cpu):.1f} ms")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
