"""Fleet benchmark: the same "prepare a board" plan on 10 and 20 virtual-lab hosts.

greenroom, pyinfra 3 and ansible-core each converge the boards from the same starting state
(first run), then run again with nothing to change (no-op run); a raw Fabric script running
one `true` per host is the floor. All are timed as whole processes, in one run of this
script, and reported as ratios. Every packet stays on the lab's own management bridge.

Run as root from the repository: `python bench/fleet/run.py` (or `nox -s bench`).
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

SIZES = (10, 20)
REPEAT = 3
SUBNET = "10.233.0"

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
                        help="fleet sizes, comma separated (default 10,20)")
    parser.add_argument("--only-greenroom", action="store_true",
                        help="time greenroom alone (before/after comparisons of our own code)")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.sizes.split(","))
    if os.geteuid() != 0:
        raise SystemExit("the fleet benchmark uses the virtual lab: run it as root")
    for tool in () if args.only_greenroom else ("pyinfra", "ansible-playbook"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: `nox -s bench` installs the peers")
    work = Path(tempfile.mkdtemp(prefix="greenroom-fleet-"))
    inv_path = work / "fleet.yaml"
    inv_path.write_text(inventory_text(max(sizes)))
    inv_cmd = [sys.executable, "-m", "invoke"]
    subprocess.run([*inv_cmd, "lab.up", "--inventory", str(inv_path)], cwd=REPO, check=True)
    try:
        inventory = load_inventory(inv_path)
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
                "pyinfra": ["pyinfra", str(pyinv), str(HERE / "deploy.py"), "-y",
                            "--parallel", str(size)],
                "ansible-core": ["ansible-playbook", "-i", str(ansinv), "-f", str(size),
                                 str(HERE / "playbook.yml")],
            }
            floor = [sys.executable, str(HERE / "fabric_floor.py"),
                     json.dumps([[h.address, access.key_filename] for h in subset])]
            row: dict[str, dict[str, float]] = {}
            if args.only_greenroom:
                tools = {"greenroom": tools["greenroom"]}
            for tool, argv in tools.items():
                reset(subset)
                first = timed(argv, env=env, cwd=HERE)
                noop = statistics.median(timed(argv, env=env, cwd=HERE) for _ in range(REPEAT))
                row[tool] = {"first": first, "noop": noop}
                print(f"{size} hosts {tool:13} first {first:6.2f}s  no-op {noop:6.2f}s",
                      flush=True)
            row["fabric floor"] = {"noop": statistics.median(
                timed(floor, cwd=HERE) for _ in range(REPEAT))}
            print(f"{size} hosts fabric floor  no-op {row['fabric floor']['noop']:6.2f}s")
            results[size] = row
        connector.close_all()
    finally:
        subprocess.run([*inv_cmd, "lab.down", "--inventory", str(inv_path)], cwd=REPO,
                       check=False)
        shutil.rmtree(work, ignore_errors=True)
    if not args.only_greenroom:
        report(results)


def report(results: dict[int, dict[str, dict[str, float]]]) -> None:
    lines = ["| hosts | tool | first run (s) | no-op run (s) | no-op vs greenroom |",
             "|---|---|---|---|---|"]
    for size, row in results.items():
        ours = row["greenroom"]["noop"]
        for tool, t in row.items():
            first = f"{t['first']:.2f}" if "first" in t else "-"
            lines.append(f"| {size} | {tool} | {first} | {t['noop']:.2f} | "
                         f"{t['noop'] / ours:.2f}x |")
    small, large = results[SIZES[0]], results[SIZES[-1]]
    g, f = small["greenroom"]["noop"], small["fabric floor"]["noop"]
    lines += [
        "",
        f"- greenroom no-op vs pyinfra ({SIZES[0]} hosts): "
        f"{small['pyinfra']['noop'] / g:.1f}x faster (goal >= 3x)",
        f"- greenroom no-op vs ansible-core ({SIZES[0]} hosts): "
        f"{small['ansible-core']['noop'] / g:.1f}x faster (goal >= 20x)",
        f"- greenroom no-op / raw Fabric floor ({SIZES[0]} hosts): {g / f:.2f}x (goal <= 1.5x)",
        f"- growth {SIZES[0]}->{SIZES[-1]} hosts: greenroom "
        f"{large['greenroom']['noop'] / g:.2f}x, floor "
        f"{large['fabric floor']['noop'] / f:.2f}x (goal: no faster than the floor)",
    ]
    text = "\n".join(lines) + "\n"
    (HERE / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
