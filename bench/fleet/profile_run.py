"""Where a fleet run's time goes: greenroom's converging and no-op runs, instrumented.

Runs the benchmark plan (`plan.py`) in this process through the engine's own
`run_runbook`, with the session layer wrapped to count and time every round trip (connection
set-up, fact batches, change actions) per host, and the process's CPU time. Optionally
under py-spy (`--py-spy OUT`: collapsed stacks of every thread, on CPU), summarised
by function. The lab must be up with `bench/fleet/fleet-100.yaml` (see run.py):

    flock /tmp/greenroom-lab.lock sh -c 'inv lab.up -i bench/fleet/fleet-100.yaml &&
      python bench/fleet/profile_run.py --size 100; inv lab.down -i bench/fleet/fleet-100.yaml'
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# --repo DIR: profile another checkout's engine (e.g. main before a change) with this script
if "--repo" in sys.argv:
    REPO = Path(sys.argv[sys.argv.index("--repo") + 1]).resolve()
sys.path[:0] = [str(REPO), str(HERE)]

from plan import RUNBOOK  # noqa: E402
from run import RESET  # noqa: E402

from runbooks.core import session as session_mod  # noqa: E402
from runbooks.core.inventory import load_inventory  # noqa: E402
from runbooks.core.runner import run_runbook  # noqa: E402
from runbooks.lab.access import plug_in  # noqa: E402

INVENTORY = HERE / "fleet-100.yaml"


class Meter:
    """Per-host round trips, by kind, with their wall time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trips: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)
        self.connect: dict[str, float] = {}

    def install(self) -> None:
        meter = self
        original_exec = session_mod.Session._exec_raw
        original_session = session_mod.Connector.session

        def exec_raw(self, line, data, timeout=None):  # type: ignore[no-untyped-def]
            kind = "facts" if "@@greenroom-" in line else "action"
            started = time.perf_counter()
            try:
                return original_exec(self, line, data, timeout)
            finally:
                with meter.lock:
                    meter.trips[self.host.name].append((kind, time.perf_counter() - started))

        def session(self, host):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            known = host.name in self._sessions
            try:
                return original_session(self, host)
            finally:
                if not known:
                    meter.connect[host.name] = time.perf_counter() - started

        session_mod.Session._exec_raw = exec_raw  # type: ignore[method-assign]
        session_mod.Connector.session = session  # type: ignore[method-assign]

    def clear(self) -> None:
        self.trips.clear()
        self.connect.clear()

    def summary(self, label: str, wall: float, cpu: float) -> str:
        per_host = [len(t) for t in self.trips.values()] or [0]
        kinds: collections.Counter[str] = collections.Counter()
        seconds: dict[str, list[float]] = collections.defaultdict(list)
        for trips in self.trips.values():
            for kind, took in trips:
                kinds[kind] += 1
                seconds[kind].append(took)
        parts = [f"{label}: wall {wall:.2f}s, CPU {cpu:.2f}s ({cpu / wall:.0%} of one core), "
                 f"{len(self.connect)} connections (median {_median(self.connect.values())}, "
                 f"max {_max(self.connect.values())})",
                 f"  round trips per host: {statistics.median(per_host):.0f} "
                 f"(min {min(per_host)}, max {max(per_host)})"]
        for kind in sorted(kinds):
            parts.append(f"  {kind}: {kinds[kind]} round trips, median "
                         f"{_median(seconds[kind])}, max {_max(seconds[kind])}, sum "
                         f"{sum(seconds[kind]):.2f}s")
        return "\n".join(parts)


def _median(values) -> str:  # type: ignore[no-untyped-def]
    values = list(values)
    return f"{statistics.median(values) * 1000:.0f}ms" if values else "-"


def _max(values) -> str:  # type: ignore[no-untyped-def]
    values = list(values)
    return f"{max(values) * 1000:.0f}ms" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="how many boards (first N)")
    parser.add_argument("--noop-runs", type=int, default=2, help="no-op runs after the first")
    parser.add_argument("--repo", help="the checkout whose engine runs (default: this one)")
    parser.add_argument("--py-spy", metavar="OUT", help="also record the first run with "
                        "py-spy into OUT (collapsed stacks, on-CPU samples), summarised")
    args = parser.parse_args()
    plug_in()
    serialize_fabric_connections()
    inventory = load_inventory(INVENTORY)
    hosts = list(inventory.hosts.values())[: args.size]
    connector = session_mod.Connector(inventory)
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        for done in pool.map(lambda h: connector.session(h).run(RESET), hosts):
            if not done.ok:
                raise SystemExit(f"reset failed: {done.stderr}")
    connector.close_all()

    meter = Meter()
    meter.install()
    spy = None
    if args.py_spy:
        import subprocess

        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                "--threads", "--rate", "100", "--format", "raw",
                                "--output", args.py_spy,
                                "--pid", str(os.getpid())],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let py-spy attach
    for label in ["first run"] + [f"no-op run {i + 1}" for i in range(args.noop_runs)]:
        meter.clear()
        pids, busy = last_pid(), machine_busy()
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_runbook(RUNBOOK, inventory, hosts, out=io.StringIO())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        busy = machine_busy() - busy
        if not result.ok:
            raise SystemExit(f"{label} failed: {result.as_report()}")
        print(meter.summary(f"{label} ({result.changed} steps changed on {len(hosts)} hosts)",
                            wall, cpu), flush=True)
        print(f"  processes started on the machine meanwhile (others' included): "
              f"{last_pid() - pids}; machine CPU meanwhile {busy:.2f}s "
              f"(the hosts' sshd and processes, this client, others' work)", flush=True)
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on ^C, not on SIGTERM
            spy.wait()
            spy = None
            print(summarise(Path(args.py_spy)))


def serialize_fabric_connections() -> None:
    """Build Fabric connections one at a time, for any checkout (--repo): engines before
    42eea3e built them at once on a shared Config and failed at random with 100 hosts."""
    import fabric.connection

    lock = threading.Lock()
    original = fabric.connection.Connection.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            original(self, *args, **kwargs)

    fabric.connection.Connection.__init__ = init  # type: ignore[method-assign]


def last_pid() -> int:
    """The most recently assigned PID, machine-wide (/proc/loadavg's last field)."""
    return int(Path("/proc/loadavg").read_text().split()[-1])


def machine_busy() -> float:
    """CPU seconds every core of this machine spent busy so far (/proc/stat: all but idle
    and iowait): with the lab's boards on this machine, their processes' CPU too."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def summarise(path: Path, top: int = 25) -> str:
    """Self and inclusive samples per function from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")")
                  for f in stack.split(";")[1:]]
        total += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"py-spy: {total} samples (all threads, on CPU only)", "  self:"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["  inclusive:"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
