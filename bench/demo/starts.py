"""Process starts and CPU per host of one whole `inv` command on the lab (default: one
demo.check), from the kernel's own events: what a check makes the GUESTS do.

Run as root from the repository root on an up, converged lab, under the lab lock:
    python3 bench/demo/starts.py [--runs 3] [--top 25] [--at DIR] [-- demo.check -i hosts/lab.yaml]
`perf record -a` of process forks and execs (sched:sched_process_fork/exec) and of CPU time
(cpu-clock, one sample per ms) while the command runs; each process is put on the host
whose guest it was forked in (its oldest ancestor's network namespace, one of the lab's
/run/netns), or on "local" (the command itself and its children), or "other" (everything
else on the machine: other engineers' jobs). Prints per host: process starts, CPU ms of
those processes and of the host's long-lived ones (sshd, systemd); then the most started
programs. Counts, not seconds: the primary measure.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_LINE = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<pid>\d+)\s+(?P<event>[\w:-]+):\s*(?P<trace>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


def netns_names() -> dict[int, str]:
    """Inode of each named network namespace -> its name."""
    found = {}
    for entry in Path("/run/netns").glob("*"):
        try:
            found[entry.stat().st_ino] = entry.name
        except OSError:
            continue
    return found


def parse(script: str) -> tuple[dict[int, int], list[tuple[int, str]], collections.Counter]:
    """perf script text -> (child -> parent), [(pid, program) per exec], CPU samples by pid
    (with the comm of the sample: `pid:comm`)."""
    parent: dict[int, int] = {}
    execs: list[tuple[int, str]] = []
    samples: collections.Counter = collections.Counter()
    for line in script.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        pid, event = int(match["pid"]), match["event"]
        fields = dict(_FIELD.findall(match["trace"]))
        if event.endswith("sched_process_fork"):
            parent[int(fields["child_pid"])] = int(fields["pid"])
        elif event.endswith("sched_process_exec"):
            execs.append((pid, Path(fields.get("filename", "?")).name))
        elif "clock" in event:
            samples[(pid, match["comm"])] += 1
    return parent, execs, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="commands recorded (averaged)")
    parser.add_argument("--top", type=int, default=25, help="programs listed")
    parser.add_argument("--python", default=sys.executable, help="interpreter whose inv runs")
    parser.add_argument("--at", default=None, metavar="DIR",
                        help="run the command from another checkout DIR (its code on "
                             "PYTHONPATH, DIR the working directory), e.g. a base to compare")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then inv's arguments")
    args = parser.parse_args()
    argv = [a for a in args.command if a != "--"] or ["demo.check", "-i", "hosts/lab.yaml"]
    inv = str(Path(args.python).with_name("inv"))
    netns = netns_names()
    out = Path(tempfile.mkdtemp(prefix="bench-starts-")) / "perf.data"
    loop = "; ".join([f"{inv} {' '.join(argv)} >/dev/null 2>&1"] * args.runs)
    subprocess.run(["perf", "record", "-q", "-a", "-o", str(out), "-e",
                    "sched:sched_process_fork,sched:sched_process_exec", "-e", "cpu-clock",
                    "-c", "1000000", "--", "sh", "-c", f"echo $$ > {out}.pid; {loop}"],
                   cwd=args.at or REPO, check=True,
                   env=dict(os.environ, PYTHONPATH=args.at) if args.at else None)
    root = int(Path(f"{out}.pid").read_text())
    script = subprocess.run(["perf", "script", "-i", str(out), "-F", "comm,pid,event,trace"],
                            capture_output=True, text=True, check=True).stdout
    parent, execs, samples = parse(script)

    def host_of(pid: int, seen: dict[int, str] = {}) -> str:  # noqa: B006 - a cache
        if pid in seen:
            return seen[pid]
        chain, top = [], pid
        while top in parent and top != root:
            chain.append(top)
            top = parent[top]
        if top == root:
            where = "local"
        else:
            try:
                where = netns.get(os.stat(f"/proc/{top}/ns/net").st_ino, "other")
            except OSError:
                where = "other"
        for p in [pid, *chain]:
            seen[p] = where
        return where

    starts: collections.Counter = collections.Counter()
    programs: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for pid, program in execs:
        where = host_of(pid)
        starts[where] += 1
        programs[where][program] += 1
    cpu: collections.Counter = collections.Counter()
    cpu_by: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for (pid, comm), count in samples.items():
        if pid == 0:
            continue
        where = host_of(pid)
        cpu[where] += count
        cpu_by[where][comm] += count
    runs = args.runs
    print(f"{' '.join(argv)}{' at ' + args.at if args.at else ''}, {runs} run(s), per run: "
          "process starts and CPU ms per host")
    print(f"{'host':14} {'starts':>7} {'cpu ms':>7}  top CPU (ms)")
    names = sorted(set(starts) | set(cpu), key=lambda h: (h in ("local", "other"), h))
    for where in names:
        top = ", ".join(f"{c} {n / runs:.0f}" for c, n in cpu_by[where].most_common(4))
        print(f"{where:14} {starts[where] / runs:7.1f} {cpu[where] / runs:7.0f}  {top}")
    guests = [h for h in names if h not in ("local", "other")]
    print(f"{'guests, all':14} {sum(starts[h] for h in guests) / runs:7.1f} "
          f"{sum(cpu[h] for h in guests) / runs:7.0f}")
    print("\nprograms started in the guests (per run):")
    total: collections.Counter = collections.Counter()
    for where in guests:
        total.update(programs[where])
    for program, count in total.most_common(args.top):
        per = ", ".join(f"{h} {programs[h][program] / runs:g}" for h in guests
                        if programs[h][program])
        print(f"  {count / runs:6.1f}  {program:22} {per}")
    out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
