"""What a no-op costs ON THE HOST: the benchmark plan's fact batch against the floors' `true`.

    python bench/fleet/host_cpu.py CHECKOUT [CHECKOUT ...] [--runs 300]

Each checkout's engine writes the command line it sends for the plan's facts (its files
copied under a temporary directory, the live sysctl read from /proc): `sh -c SCRIPT`, or
since session 8 the files reader (one perl, no `sh -c`); each is then run as sshd runs a
command, `bash -c LINE` with a UTF-8 LANG, alternating with the floors' `bash -c true`, and
the CPU of every run (user + system of the children, getrusage) is averaged. No network,
nothing of this machine changes. On the lab's boards all of this shares the
client's cores, so it adds to the wall time of a 100-board run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = r"""
import os, shlex, sys
checkout, root = sys.argv[1], sys.argv[2]
sys.path[:0] = [checkout]
from runbooks.core import facts
from runbooks.core.facts import dir_command, file_command, prepare, sysctl_command
names = ["k8s.conf", "sysctl-k8s.conf", "cmdline.txt", "fstab", "90-bench.conf", "config.toml"]
commands = {name: file_command(os.path.join(root, name)) for name in names}
commands.update(certs=dir_command(os.path.join(root, "certs.d")), root=dir_command(root),
                live=sysctl_command("net.ipv4.ip_forward"))
program = facts._prepare(commands)[2] if hasattr(facts, "_prepare") else None
print(program or "sh -c " + shlex.quote(prepare(commands)[0]), end="")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", help="greenroom checkouts to compare")
    parser.add_argument("--runs", type=int, default=300, help="runs of each (default 300)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="greenroom-host-cpu-"))
    files = {"k8s.conf": "overlay\nbr_netfilter\n",
             "sysctl-k8s.conf": "net.bridge.bridge-nf-call-iptables = 1\n",
             "cmdline.txt": "console=serial0,115200 rootwait cgroup_memory=1 "
                            "cgroup_enable=memory\n",
             "fstab": "proc /proc proc defaults 0 0\n#/swapfile none swap sw 0 0\n",
             "90-bench.conf": "net.ipv4.ip_forward = 1\n",
             "config.toml": (HERE / "containerd.toml.j2").read_text()}
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "certs.d").mkdir()
    commands = {"true (the floors)": "true"}
    for checkout in args.checkouts:
        commands[checkout] = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(Path(checkout).resolve()), str(root)],
            capture_output=True, text=True, check=True).stdout
    env = dict(os.environ, LANG="C.UTF-8")
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(["bash", "-c", command], stdout=subprocess.DEVNULL, env=env,
                           check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(1000 * (after.ru_utime - before.ru_utime
                                     + after.ru_stime - before.ru_stime))
    print(f"load average {os.getloadavg()[0]:.1f}; host CPU per no-op, {args.runs} runs each")
    for name, samples in cpu.items():
        print(f"{name}: mean {statistics.mean(samples):.2f} ms, "
              f"median {statistics.median(samples):.2f} ms")


if __name__ == "__main__":
    main()
