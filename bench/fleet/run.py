"""Fleet benchmark: the same "prepare a board" plan on 10, 20, 50 and 100 virtual-lab hosts.

The lab brings up the 100 light boards of `fleet-100.yaml` (timed); each size uses the first
N. greenroom, pyinfra 3 and ansible-core (at 10 and 20 hosts only: it takes minutes) each
converge the boards from the same starting state (first run), then run again with nothing
to change (no-op run); the floors connect to every host and run one `true`: the raw Fabric
floor as users write it (`fabric_floor.py`, untuned) and the floor tuned as far as
Fabric/Paramiko allow (`tuned_floor.py`, level 7, host keys checked strictly, nothing
weaker than OpenSSH's default algorithms). All are timed as whole processes, in one run of
this script, and reported as ratios. Every packet stays on the lab's own management bridge.

Run as root from the repository: `python bench/fleet/run.py` (or `nox -s bench`);
`--floor-levels` instead times every level of `tuned_floor.py` (what each tuning gains).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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


def inventory_text(count: int) -> str:
    lines = [
        "site: fleet",
        "defaults: {user: root, port: 22}",
        "network:",
        "  vlan: {id: 100}",
        "  subnet: 192.168.10.0/25",
        "  gateway: 192.168.10.2",
        "  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}",
        f"lab: {{management: {SUBNET}.0/24, upstream: 10.233.1.0/24, clients: []}}",
        "hosts:",
    ]
    for i in range(1, count + 1):
        lines.append(f"  b{i:02d}: {{address: {SUBNET}.{10 + i}, roles: [pi], "
                     "board: raspberrypi, lab: {kind: chroot, boot: firmware}}")
    return "\n".join(lines) + "\n"


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                         f"{done.stderr[-3000:]}")
    return elapsed


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

        results: dict[int, dict[str, dict[str, float]]] = {}
        env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False",
                   ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
                   ANSIBLE_SSH_ARGS=f"-o UserKnownHostsFile={access.known_hosts} "
                                    "-o ControlMaster=auto -o ControlPersist=60s",
                   ANSIBLE_PRIVATE_KEY_FILE=access.key_filename,
                   ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_NOCOWS="1")
        for size in sizes:
            subset = hosts[:size]
            names = ",".join(h.name for h in subset)
            pyinv = work / f"pyinfra_{size}.py"
            pyinv.write_text("hosts = " + repr([
                (h.address, {"ssh_user": "root", "ssh_key": access.key_filename,
                             "ssh_known_hosts_file": access.known_hosts}) for h in subset]) + "\n")
            ansinv = work / f"ansible_{size}.ini"
            ansinv.write_text("\n".join(f"{h.name} ansible_host={h.address} ansible_user=root"
                                        for h in subset) + "\n")
            tools = {
                "greenroom": [sys.executable, str(HERE / "greenroom_run.py"), "-i",
                              str(inv_path), "-H", names, "--parallel", str(size)],
                "pyinfra": [found.get("pyinfra") or "pyinfra", str(pyinv),
                            str(HERE / "deploy.py"), "-y", "--parallel", str(size)],
                "ansible-core": [found.get("ansible-playbook") or "ansible-playbook", "-i",
                                 str(ansinv), "-f", str(size), str(HERE / "playbook.yml")],
            }
            pairs = json.dumps([[h.address, access.key_filename] for h in subset])

            def floor(level: int, pairs: str = pairs) -> list[str]:
                return [sys.executable, str(HERE / "tuned_floor.py"), str(level), pairs,
                        access.known_hosts]

            row: dict[str, dict[str, float]] = {}
            if args.floor_levels:
                # alternating levels, REPEAT rounds, so load drifts hit every level alike
                samples: dict[int, list[float]] = {lv: [] for lv in range(FLOOR_LEVELS)}
                for _ in range(args.repeat):
                    for level in range(FLOOR_LEVELS):
                        samples[level].append(timed(floor(level), cwd=HERE))
                for level, times in samples.items():
                    row[f"floor level {level}"] = {"noop": statistics.median(times)}
                    print(f"{size} hosts floor level {level}  {statistics.median(times):6.2f}s "
                          f"({', '.join(f'{t:.2f}' for t in times)})", flush=True)
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
                    compared_first = timed(floors["greenroom compared"], env=env, cwd=HERE)
                    print(f"{size} hosts greenroom compared first {compared_first:6.2f}s",
                          flush=True)
                reset(subset)
                first = timed(argv, env=env, cwd=HERE)
                # the peers' no-op (seconds each at 100 hosts) at most 3 times
                repeat = 1 if tool == "ansible-core" else \
                    args.repeat if tool == "greenroom" else min(args.repeat, REPEAT)
                # greenroom's no-op alternates with the floors (same load for the ratio
                # the goals are about); the floors change nothing on the boards
                paired = floors if tool == "greenroom" else {}
                noops: dict[str, list[float]] = {name: [] for name in (tool, *paired)}
                for _ in range(repeat):
                    noops[tool].append(timed(argv, env=env, cwd=HERE))
                    for name, floor_argv in paired.items():
                        noops[name].append(timed(floor_argv, cwd=HERE))
                row[tool] = {"first": first, "noop": statistics.median(noops[tool])}
                print(f"{size} hosts {tool:13} first {first:6.2f}s  no-op "
                      f"{row[tool]['noop']:6.2f}s ({_list(noops[tool])})", flush=True)
                for name in paired:
                    row[name] = {"noop": statistics.median(noops[name])}
                    if name == "greenroom compared":
                        row[name]["first"] = compared_first
                    print(f"{size} hosts {name:13} no-op {row[name]['noop']:6.2f}s "
                          f"({_list(noops[name])})", flush=True)
            results[size] = row
        connector.close_all()
    finally:
        subprocess.run([*inv_cmd, "lab.down", "--inventory", str(inv_path)], cwd=REPO,
                       check=False)
        shutil.rmtree(work, ignore_errors=True)
    if args.floor_levels:
        print(floor_report(results))
    elif not args.only_greenroom:
        report(results, lab_up)
    else:
        print(noop_report(results))


def _list(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def compile_bytecode(repo: Path = REPO) -> None:
    """Compile greenroom's modules (and this bench's) to bytecode once, before any timing.

    pip compiles every package it installs, so the floors' and peers' libraries start from
    cached bytecode; greenroom runs from this checkout, and with PYTHONDONTWRITEBYTECODE set
    (as in our CI shells) every timed greenroom process would compile its own modules again
    (about 70 ms of CPU each, measured): a cost users of an installed greenroom never pay."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(repo / "runbooks"),
                    str(repo / "bench" / "fleet")], check=True)


def noop_report(results: dict[int, dict[str, dict[str, float]]]) -> str:
    """No-op medians (s) and their ratio to the untuned floor, per size (--only-greenroom)."""
    lines = ["| hosts | " + " | ".join(next(iter(results.values()))) + " |",
             "|---|" + "---|" * len(next(iter(results.values())))]
    for size, row in results.items():
        floor = row["fabric floor"]["noop"]
        lines.append(f"| {size} | " + " | ".join(
            f"{t['noop']:.2f} ({t['noop'] / floor:.2f}x)" for t in row.values()) + " |")
    return "\n".join(lines) + "\n"


def inventory_hosts(path: Path) -> list[str]:
    return [line.split(":")[0].strip() for line in path.read_text().splitlines()
            if line.startswith("  b")]


def floor_report(results: dict[int, dict[str, dict[str, float]]]) -> str:
    sizes = list(results)
    lines = ["| level | " + " | ".join(f"{n} hosts (s)" for n in sizes) + " | vs level 0 |",
             "|---|" + "---|" * len(sizes) + "---|"]
    for level in range(FLOOR_LEVELS):
        name = f"floor level {level}"
        cells = [f"{results[n][name]['noop']:.2f}" for n in sizes]
        ratio = " / ".join(f"{results[n][name]['noop'] / results[n]['floor level 0']['noop']:.2f}x"
                           for n in sizes)
        lines.append(f"| {level} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines) + "\n"


def report(results: dict[int, dict[str, dict[str, float]]], lab_up: float) -> None:
    lines = ["| hosts | tool | first run (s) | no-op run (s) | no-op vs greenroom |",
             "|---|---|---|---|---|"]
    for size, row in results.items():
        ours = row["greenroom"]["noop"]
        for tool, t in row.items():
            first = f"{t['first']:.2f}" if "first" in t else "-"
            lines.append(f"| {size} | {tool} | {first} | {t['noop']:.2f} | "
                         f"{t['noop'] / ours:.2f}x |")
    sizes = list(results)
    small = results[sizes[0]]
    lines += ["", f"- lab.up with the {len(inventory_hosts(INVENTORY))} boards: {lab_up:.1f}s"]
    for size, row in results.items():
        g, f, t = (row["greenroom"]["noop"], row["fabric floor"]["noop"],
                   row["tuned floor"]["noop"])
        first = row["pyinfra"]["first"] / row["greenroom"]["first"]
        lines.append(
            f"- {size} hosts: no-op {g / f:.2f}x the untuned floor (goal <= 1.2x, and <= 1.0x), "
            f"{g / t:.2f}x the tuned floor; no-op {row['pyinfra']['noop'] / g:.1f}x faster "
            f"than pyinfra; first run {first:.1f}x faster than pyinfra (goal >= 2x)"
            + (f"; no-op {row['ansible-core']['noop'] / g:.0f}x faster than ansible-core"
               if "ansible-core" in row else ""))
    large = results[sizes[-1]]
    lines.append(
        f"- growth {sizes[0]}->{sizes[-1]} hosts (no-op): greenroom "
        f"{large['greenroom']['noop'] / small['greenroom']['noop']:.2f}x, untuned floor "
        f"{large['fabric floor']['noop'] / small['fabric floor']['noop']:.2f}x, tuned floor "
        f"{large['tuned floor']['noop'] / small['tuned floor']['noop']:.2f}x "
        "(goal: no faster than the floor)")
    text = "\n".join(lines) + "\n"
    (HERE / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
