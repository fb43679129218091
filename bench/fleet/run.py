"""Fleet benchmark: the same "prepare a board" plan on 10, 20, 50 and 100 virtual-lab hosts.

The lab brings up the 100 light boards of `fleet-100.yaml` (timed); each size uses the first
N. greenroom, pyinfra 3 and ansible-core (at 10 and 20 hosts only: it takes minutes) each
converge the boards from the same starting state (first run), then run again with nothing
to change (no-op run); the floors connect to every host and run one `true`: the raw Fabric
floor as users write it (`fabric_floor.py`, untuned) and the floor tuned as far as
Fabric/Paramiko allow (`tuned_floor.py`, level 7, host keys checked strictly, nothing
weaker than OpenSSH's default algorithms). All are timed as whole processes, in one run of
this script, and reported as ratios. Every packet stays on the lab's own management bridge.

"greenroom, kept" is greenroom with its SSH connections kept between runs
(GREENROOM_SSH_KEEP=60, a keeper of the bench's own): its first run at each size is a no-op
that starts the keeper and opens the connections (what a cold run pays for the keeper), its
no-op runs then take turns with the cold greenroom's and the floors' (the floors unchanged);
its CPU includes the keeper's. The goals are evaluated for both rows, each labelled.

Run as root from the repository: `python bench/fleet/run.py` (or `nox -s bench`);
`--floor-levels` instead times every level of `tuned_floor.py` (what each tuning gains).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

SIZES = (10, 20, 50, 100)
ANSIBLE_SIZES = (10, 20)
REPEAT = 3
SUBNET = "10.233.0"
INVENTORY = HERE / "fleet-100.yaml"
FLOOR_LEVELS = 8  # tuned_floor.py levels 0..7
SMALL = 20  # at this size and below the no-op runs are short and noisy: twice --repeat
SETTLE = 0.3  # s after a run before reading the boards' CPU (their sshd ends its session)

RESET = r"""
set -e
[ -f /root/.bench-cmdline ] || cp /boot/firmware/cmdline.txt /root/.bench-cmdline
[ -f /root/.bench-fstab ] || { cp /etc/fstab /root/.bench-fstab;
  grep -q '^/swapfile' /root/.bench-fstab ||
  echo '/swapfile none swap sw 0 0' >> /root/.bench-fstab; }
cp /root/.bench-cmdline /boot/firmware/cmdline.txt
cp /root/.bench-fstab /etc/fstab
rm -rf /etc/modules-load.d/k8s.conf /etc/sysctl.d/k8s.conf /etc/sysctl.d/90-bench.conf \
  /etc/containerd /var/backups/greenroom
sysctl -q -w net.ipv4.ip_forward=0
"""


def inventory_of(count: int, path: Path = INVENTORY) -> str:
    """`fleet-100.yaml` cut to its first `count` boards: greenroom's inventory at one size.

    Each tool reads an inventory of the boards it manages, as a site of that size has
    (pyinfra's and ansible-core's are written per size too); until session 6 greenroom read
    all 100 boards at every size and selected N with `-H` (validating 100 hosts: about 10 ms
    of CPU more at 10 boards)."""
    lines, kept = [], 0
    for line in path.read_text().splitlines():
        if line.startswith("  b"):
            kept += 1
            if kept > count:
                continue
        lines.append(line)
    return "\n".join(lines) + "\n"


class Sample(dict):
    """One timed process: `wall` (s), `cpu` (the process's own user + system CPU, s, its
    children's included) and `hosts` (the CPU the run cost on the boards, s: every process
    in the boards' network namespaces, the sshd that served it and what it started)."""


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO,
          hosts_cpu: Callable[[], float] | None = None) -> Sample:
    """Run one tool's whole process; its wall time, its own CPU (wait4) and the boards'."""
    on_hosts = hosts_cpu() if hosts_cpu else 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            err.seek(0)
            raise SystemExit(f"{argv[:3]} failed ({proc.returncode}):\n"
                             f"{out.read()[-3000:].decode(errors='replace')}\n"
                             f"{err.read()[-3000:].decode(errors='replace')}")
    if hosts_cpu:
        time.sleep(SETTLE)  # the sshd that served the last session ends and is waited for
        on_hosts = hosts_cpu() - on_hosts
    return Sample(wall=elapsed, cpu=usage.ru_utime + usage.ru_stime, hosts=on_hosts)


KEPT = "greenroom, kept"


def keeper_cpu(folder: Path) -> float:
    """CPU time (s) used so far by the keepers listening in `folder` (detached: no child of
    the timed process, so its wait4 does not count them)."""
    tick = os.sysconf("SC_CLK_TCK")
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            if b"runbooks.core.keep_server" not in args or not any(
                    a.startswith(str(folder).encode()) for a in args):
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                ticks += sum(int(n) for n in f.read().rsplit(b")", 1)[1].split()[11:13])
        except OSError:
            continue
    return ticks / tick


def kept_timed(argv: list[str], env: dict[str, str], folder: Path,
               hosts_cpu: Callable[[], float]) -> Sample:
    """`timed`, the keeper's CPU during the run added to the process's own."""
    before = keeper_cpu(folder)
    sample = timed(argv, env=env, cwd=HERE, hosts_cpu=hosts_cpu)
    sample["cpu"] += keeper_cpu(folder) - before
    return sample


def stop_keepers(env: dict[str, str]) -> None:
    """Stop the bench's keeper (the next size starts its own, paying the start again)."""
    subprocess.run([sys.executable, "-m", "invoke", "ssh.close"], cwd=REPO, env=env,
                   capture_output=True, check=False)


def netns_cpu(netns: list[str]) -> Callable[[], float]:
    """A function giving the CPU time (s) used so far by the processes in these network
    namespaces and by their children they waited for (utime + stime + cutime + cstime of
    /proc/PID/stat): on a lab board that is its sshd and all it started. Sessions that
    ended were waited for by the board's sshd, so their time is in its cutime/cstime."""
    inodes = {os.stat(f"/run/netns/{name}").st_ino for name in netns}
    tick = os.sysconf("SC_CLK_TCK")

    def total() -> float:
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry.name}/ns/net").st_ino not in inodes:
                    continue
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            ticks += sum(int(n) for n in fields[11:15])  # utime stime cutime cstime
        return ticks / tick

    return total


def main() -> None:
    from runbooks.core.inventory import load_inventory
    from runbooks.core.session import Connector
    from runbooks.lab.access import lab_access, plug_in

    plug_in()  # as tasks.py does: the engine reaches the lab's hosts with its key

    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="fleet sizes, comma separated (default 10,20,50,100)")
    parser.add_argument("--ansible-sizes", default=",".join(map(str, ANSIBLE_SIZES)),
                        help="sizes ansible-core runs at (default 10,20; '' for none)")
    parser.add_argument("--only-greenroom", action="store_true",
                        help="time greenroom alone (before/after comparisons of our own code)")
    parser.add_argument("--floor-levels", action="store_true",
                        help="time only the floors, every level of tuned_floor.py")
    parser.add_argument("--compare", metavar="DIR", default=None,
                        help="another greenroom checkout (e.g. main before a change): its "
                        "first run is timed just before this checkout's, its no-op runs "
                        "alternate with this checkout's and the floors'")
    parser.add_argument("--no-keep", action="store_true",
                        help="leave out the 'greenroom, kept' rows (connections kept "
                        "between runs)")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help=f"no-op runs per tool, the median counts (default {REPEAT})")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.sizes.split(","))
    ansible_sizes = {int(n) for n in args.ansible_sizes.split(",") if n}
    if os.geteuid() != 0:
        raise SystemExit("the fleet benchmark uses the virtual lab: run it as root")
    peers = () if args.only_greenroom or args.floor_levels else ("pyinfra", "ansible-playbook")
    # the peers as installed beside this interpreter (a venv not on PATH), else on PATH
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = {tool: shutil.which(tool, path=search) for tool in peers}
    for tool, where in found.items():
        if where is None:
            raise SystemExit(f"{tool} is not installed: `nox -s bench` installs the peers")
    work = Path(tempfile.mkdtemp(prefix="greenroom-fleet-"))
    inv_path = INVENTORY
    inv_cmd = [sys.executable, "-m", "invoke"]
    compile_bytecode()
    if args.compare:
        compile_bytecode(Path(args.compare).resolve())
    started = time.perf_counter()
    subprocess.run([*inv_cmd, "lab.up", "--inventory", str(inv_path)], cwd=REPO, check=True)
    lab_up = time.perf_counter() - started
    print(f"lab.up, {len(inventory_hosts(inv_path))} boards: {lab_up:.1f}s", flush=True)
    try:
        inventory = load_inventory(inv_path)
        print(f"load average before the runs: {os.getloadavg()}", flush=True)
        access = lab_access(inventory)
        hosts = list(inventory.hosts.values())
        connector = Connector(inventory)

        def reset(subset) -> None:
            with ThreadPoolExecutor(max_workers=len(subset)) as pool:
                for done in pool.map(lambda h: connector.session(h).run(RESET), subset):
                    if not done.ok:
                        raise SystemExit(f"reset failed: {done.stderr}")

        results: Results = {}
        keep_dir = work / "run"
        keep_dir.mkdir(mode=0o700)
        # keeping is on by default: the cold runs turn it off explicitly
        cold_env = dict(os.environ, GREENROOM_SSH_KEEP="0")
        kept_env = dict(cold_env, GREENROOM_SSH_KEEP="60", XDG_RUNTIME_DIR=str(keep_dir))
        env = dict(cold_env, ANSIBLE_HOST_KEY_CHECKING="False",
                   ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
                   ANSIBLE_SSH_ARGS=f"-o UserKnownHostsFile={access.known_hosts} "
                                    "-o ControlMaster=auto -o ControlPersist=60s",
                   ANSIBLE_PRIVATE_KEY_FILE=access.key_filename,
                   ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_NOCOWS="1")
        for size in sizes:
            subset = hosts[:size]
            grinv = work / f"greenroom_{size}.yaml"
            grinv.write_text(inventory_of(size))
            pyinv = work / f"pyinfra_{size}.py"
            pyinv.write_text("hosts = " + repr([
                (h.address, {"ssh_user": "root", "ssh_key": access.key_filename,
                             "ssh_known_hosts_file": access.known_hosts}) for h in subset]) + "\n")
            ansinv = work / f"ansible_{size}.ini"
            ansinv.write_text("\n".join(f"{h.name} ansible_host={h.address} ansible_user=root"
                                        for h in subset) + "\n")
            tools = {
                "greenroom": [sys.executable, str(HERE / "greenroom_run.py"), "-i",
                              str(grinv), "--parallel", str(size)],
                "pyinfra": [found.get("pyinfra") or "pyinfra", str(pyinv),
                            str(HERE / "deploy.py"), "-y", "--parallel", str(size)],
                "ansible-core": [found.get("ansible-playbook") or "ansible-playbook", "-i",
                                 str(ansinv), "-f", str(size), str(HERE / "playbook.yml")],
            }
            pairs = json.dumps([[h.address, access.key_filename] for h in subset])

            def floor(level: int, pairs: str = pairs) -> list[str]:
                return [sys.executable, str(HERE / "tuned_floor.py"), str(level), pairs,
                        access.known_hosts]

            hosts_cpu = netns_cpu([str(read_netns(inventory.site, h.name)) for h in subset])
            row: dict[str, Row] = {}
            if args.floor_levels:
                # alternating levels, REPEAT rounds, so load drifts hit every level alike
                for _ in range(args.repeat):
                    for level in range(FLOOR_LEVELS):
                        row.setdefault(f"floor level {level}", Row()).noops.append(
                            timed(floor(level), cwd=HERE, hosts_cpu=hosts_cpu))
                for name, got in row.items():
                    print(f"{size} hosts {name}  {got.line()}", flush=True)
                results[size] = row
                continue
            if args.only_greenroom:
                tools = {"greenroom": tools["greenroom"]}
            elif size not in ansible_sizes:
                del tools["ansible-core"]
            floors = {"fabric floor": floor(0), "tuned floor": floor(FLOOR_LEVELS - 1)}
            if args.compare:
                before = Path(args.compare).resolve() / "bench" / "fleet" / "greenroom_run.py"
                floors["greenroom compared"] = [sys.executable, str(before),
                                                *tools["greenroom"][2:]]
            for tool, argv in tools.items():
                if tool == "greenroom" and args.compare:
                    # the compared checkout's first run too, from the same reset state, just
                    # before this checkout's (its converged boards are reset again below)
                    reset(subset)
                    row["greenroom compared"] = Row(first=timed(
                        floors["greenroom compared"], env=env, cwd=HERE, hosts_cpu=hosts_cpu))
                reset(subset)
                row.setdefault(tool, Row()).first = timed(argv, env=env, cwd=HERE,
                                                          hosts_cpu=hosts_cpu)
                if tool == "greenroom" and not args.no_keep:
                    # a no-op that starts the keeper and opens every connection
                    row[KEPT] = Row(first=kept_timed(argv, kept_env, keep_dir, hosts_cpu))
                # greenroom's no-op alternates with the floors' (and the compared
                # checkout's): the ratios the goals are about see the same load, round by
                # round; the floors change nothing on the boards. The peers' no-op (seconds
                # each at 100 hosts) at most 3 times, ansible-core's once.
                repeat = 1 if tool == "ansible-core" else \
                    noop_repeat(args.repeat, size) if tool == "greenroom" else \
                    min(args.repeat, REPEAT)
                paired = {tool: argv, **(floors if tool == "greenroom" else {})}
                if KEPT in row and tool == "greenroom":
                    paired[KEPT] = argv
                for _ in range(repeat):
                    for name, each in paired.items():
                        row.setdefault(name, Row()).noops.append(
                            kept_timed(each, kept_env, keep_dir, hosts_cpu) if name == KEPT
                            else timed(each, env=env if name == tool else cold_env, cwd=HERE,
                                       hosts_cpu=hosts_cpu))
                for name in paired:
                    print(f"{size} hosts {name:18} {row[name].line()}", flush=True)
                if KEPT in row and tool == "greenroom":
                    stop_keepers(kept_env)
            results[size] = row
        connector.close_all()
    finally:
        subprocess.run([*inv_cmd, "lab.down", "--inventory", str(inv_path)], cwd=REPO,
                       check=False)
        shutil.rmtree(work, ignore_errors=True)
    if args.floor_levels:
        print(floor_report(results))
    elif not args.only_greenroom:
        report(results, lab_up, shlex.join(sys.argv[1:]))
    else:
        print(noop_report(results))


def noop_repeat(repeat: int, size: int) -> int:
    """greenroom's (and the floors') no-op runs at one size: twice --repeat at SMALL hosts
    and below, where one run is well under a second and the load moves it most."""
    return repeat * 2 if size <= SMALL else repeat


def read_netns(site: str, host: str) -> str:
    """The network namespace of one lab board, from the lab's state file."""
    from runbooks.lab.access import read_state

    state = read_state(site) or {}
    return state["guests"][host]["netns"]


class Row:
    """One tool at one size: its first run and its no-op runs (Samples)."""

    def __init__(self, first: Sample | None = None) -> None:
        self.first = first
        self.noops: list[Sample] = []

    def median(self, key: str = "wall") -> float:
        return statistics.median(s[key] for s in self.noops)

    def spread(self, key: str = "wall") -> str:
        values = [s[key] for s in self.noops]
        return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else ""

    def line(self) -> str:
        """The samples as printed while the benchmark runs and kept in results.md."""
        first = (f"first {self.first['wall']:6.2f}s (cpu {self.first['cpu']:.2f}, "
                 f"hosts {self.first['hosts']:.2f})  " if self.first else "")
        if not self.noops:
            return first
        return (first + f"no-op {self.median():6.2f}s ({_list(self.noops, 'wall')}); "
                f"cpu ({_list(self.noops, 'cpu')}); hosts ({_list(self.noops, 'hosts')})")


def _with_first(noops: Row, first: Row) -> Row:
    mixed = Row(first.first)
    mixed.noops = noops.noops
    return mixed


def _list(samples: list[Sample], key: str) -> str:
    return ", ".join(f"{s[key]:.2f}" for s in samples)


def paired(row: dict[str, Row], a: str, b: str, key: str = "wall") -> list[float]:
    """a/b for each round of no-op runs the two took side by side (same load)."""
    return [x[key] / y[key] for x, y in zip(row[a].noops, row[b].noops, strict=False)
            if y[key] > 0]


def ratio_text(ratios: list[float]) -> str:
    """Median of paired ratios and their spread, like `1.04x (0.97-1.12)`."""
    if not ratios:
        return "-"
    low, high = min(ratios), max(ratios)
    return f"{statistics.median(ratios):.2f}x ({low:.2f}-{high:.2f})"


def compile_bytecode(repo: Path = REPO) -> None:
    """Compile greenroom's modules (and this bench's) to bytecode once, before any timing.

    pip compiles every package it installs, so the floors' and peers' libraries start from
    cached bytecode; greenroom runs from this checkout, and with PYTHONDONTWRITEBYTECODE set
    (as in our CI shells) every timed greenroom process would compile its own modules again
    (about 70 ms of CPU each, measured): a cost users of an installed greenroom never pay."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(repo / "runbooks"),
                    str(repo / "bench" / "fleet")], check=True)


Results = dict[int, dict[str, Row]]


def noop_report(results: Results) -> str:
    """No-op medians (s) and their paired ratio to the untuned floor, per size."""
    names = list(next(iter(results.values())))
    lines = ["| hosts | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for size, row in results.items():
        lines.append(f"| {size} | " + " | ".join(
            f"{row[n].median():.2f} ({ratio_text(paired(row, n, 'fabric floor'))})"
            for n in names) + " |")
    return "\n".join(lines) + "\n"


def inventory_hosts(path: Path) -> list[str]:
    return [line.split(":")[0].strip() for line in path.read_text().splitlines()
            if line.startswith("  b")]


def floor_report(results: Results) -> str:
    sizes = list(results)
    lines = ["| level | " + " | ".join(f"{n} hosts (s)" for n in sizes) + " | vs level 0 |",
             "|---|" + "---|" * len(sizes) + "---|"]
    for level in range(FLOOR_LEVELS):
        name = f"floor level {level}"
        cells = [f"{results[n][name].median():.2f}" for n in sizes]
        ratio = " / ".join(ratio_text(paired(results[n], name, "floor level 0")) for n in sizes)
        lines.append(f"| {level} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines) + "\n"


def table(results: Results) -> list[str]:
    """Per size and tool: first run, no-op median and spread, and the no-op's CPU."""
    lines = ["| hosts | tool | first run (s) | no-op (s), median | no-op spread (s) | "
             "client CPU per no-op (s) | boards' CPU per no-op (s) | no-op vs greenroom |",
             "|---|---|---|---|---|---|---|---|"]
    for size, row in results.items():
        ours = row["greenroom"].median()
        for tool, got in row.items():
            first = f"{got.first['wall']:.2f}" if got.first else "-"
            lines.append(f"| {size} | {tool} | {first} | {got.median():.2f} | {got.spread()} | "
                         f"{got.median('cpu'):.2f} | {got.median('hosts'):.2f} | "
                         f"{got.median() / ours:.2f}x |")
    return lines


def goals(results: Results, ours_name: str = "greenroom") -> list[str]:
    """The issue's goals, met or not, from this run, for greenroom (`ours_name`: "greenroom",
    cold, or KEPT, connections kept from the previous run): no-op ratios to the untuned
    floor are the medians of the paired rounds (greenroom and the floor run side by side),
    with their spread; the others are ratios of medians (the peers run on their own)."""
    sizes = list(results)
    if ours_name != "greenroom":  # its no-ops; the first run (a converge) is the cold one's
        results = {size: {**row, "greenroom": _with_first(row[ours_name], row["greenroom"])}
                   for size, row in results.items()}

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    def floor_goal(limit: float) -> list[str]:
        cells = []
        for size in sizes:
            ratios = paired(results[size], "greenroom", "fabric floor")
            cells.append(f"{ratio_text(ratios)}, {verdict(statistics.median(ratios) <= limit)}")
        return cells

    first = []
    for size in sizes:
        row = results[size]
        x = row["pyinfra"].first["wall"] / row["greenroom"].first["wall"]  # type: ignore[index]
        first.append(f"{x:.1f}x, {verdict(x >= 2)}")
    def cpu_ratio(size: int, key: str) -> float:
        row = results[size]
        return row["greenroom"].median(key) / max(row["fabric floor"].median(key), 1e-9)

    cpu = [f"{cpu_ratio(n, 'cpu'):.2f}x / {cpu_ratio(n, 'hosts'):.2f}x" for n in sizes]
    lines = ["| goal | " + " | ".join(f"{n} hosts" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes),
             "| no-op <= 1.0x the untuned floor (paired) | " + " | ".join(floor_goal(1.0)) + " |",
             "| no-op <= 1.2x the untuned floor (paired) | " + " | ".join(floor_goal(1.2)) + " |",
             "| first run >= 2x pyinfra | " + " | ".join(first) + " |",
             "| (client / boards' CPU per no-op vs the untuned floor) | " + " | ".join(cpu) + " |"]
    if 100 in results:
        row = results[100]
        x = row["pyinfra"].median() / row["greenroom"].median()
        lines.append("| no-op >= 5x pyinfra at 100 | " + " | ".join(
            f"{x:.1f}x, {verdict(x >= 5)}" if n == 100 else "" for n in sizes) + " |")
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        ours = large["greenroom"].median() / small["greenroom"].median()
        floor = large["fabric floor"].median() / small["fabric floor"].median()
        lines.append(f"| no-op growth {sizes[0]} -> {sizes[-1]} no faster than the floor | "
                     + " | ".join("" for _ in sizes[:-1])
                     + f" | greenroom {ours:.2f}x, untuned floor {floor:.2f}x, "
                     f"{verdict(ours <= floor)} |")
    return lines


def report(results: Results, lab_up: float, command: str) -> None:
    samples = [f"{size} hosts {tool:18} {got.line()}"
               for size, row in results.items() for tool, got in row.items()]
    text = "\n".join([
        f"`python bench/fleet/run.py {command}`, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
        f" UTC (end), load average at the end {os.getloadavg()[0]:.1f}; lab.up with the "
        f"{len(inventory_hosts(INVENTORY))} boards: {lab_up:.1f}s. Samples (s; cpu = the "
        "tool's own process, hosts = the boards' sshd and what it started):", "", "```",
        *samples, "```", "", *table(results), "", "Goals, greenroom cold (a new connection "
        "per host every run):", "", *goals(results),
        *(["", f"Goals, {KEPT} (connections kept from the previous run; its first run "
           "here is a no-op that started the keeper; the first-run goal uses the cold "
           "first run):", "", *goals(results, KEPT)]
          if all(KEPT in row for row in results.values()) else [])]) + "\n"
    (HERE / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
