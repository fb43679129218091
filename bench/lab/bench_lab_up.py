"""Benchmark: wall time of a warm `inv lab.up` (rootfs cached, lab down) for the default
lab (hosts/lab.yaml) and for a generated 20-board lab, until every guest answers SSH.

Run as root from the repository root:  python3 bench/lab/bench_lab_up.py [--runs 3]
Each run: `inv lab.down`, then time `inv lab.up` (a fresh process, as a user types it).
The 20-board inventory is generated into a temporary directory and removed afterwards;
the labs keep their state in another (XDG_STATE_HOME, tests/support/privatestate.py),
never in the user's ~/.local/state/greenroom.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.privatestate import private_state  # noqa: E402

BOARDS = 20


def board_inventory(count: int = BOARDS) -> str:
    """A lab inventory with a gateway and ``count`` systemd Raspberry Pi boards."""
    lines = [
        "site: bench20",
        "defaults: {user: root, port: 22}",
        "network:",
        "  vlan: {id: 300}",
        "  subnet: 192.168.30.0/24",
        "  gateway: 192.168.30.1",
        "  dhcp: {range: [192.168.30.100, 192.168.30.200], dns: [192.168.30.1], "
        "default_lease: 600, max_lease: 7200}",
        "lab:",
        "  management: 10.231.16.0/24",
        "  upstream: 10.231.17.0/24",
        "  clients: [microvm]",
        "hosts:",
        "  gw:",
        "    address: 10.231.16.2",
        "    roles: [gateway]",
        "    vlan: {parent: eth1, name: eth1.300}",
        "    upstream: eth1",
        "    lab: {kind: systemd}",
    ]
    for i in range(count):
        lines += [f"  rp{i:02d}:", f"    address: 10.231.16.{10 + i}", "    roles: [pi]",
                  "    board: raspberrypi",
                  f"    vlan: {{parent: eth0, address: 192.168.30.{10 + i}/24}}",
                  "    lab: {kind: systemd, boot: firmware}"]
    return "\n".join(lines) + "\n"


def inv(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


def time_up(inventory: str, runs: int) -> list[float]:
    """Seconds per warm `inv lab.up` (the lab taken down before each run)."""
    inv("lab.up", "-i", inventory)  # makes sure the rootfs cache is warm
    times = []
    for _ in range(runs):
        inv("lab.down", "-i", inventory)
        started = time.perf_counter()
        inv("lab.up", "-i", inventory)
        times.append(time.perf_counter() - started)
    inv("lab.down", "-i", inventory)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = {}
    results["default lab (hosts/lab.yaml: 4 hosts + microvm)"] = time_up(
        str(REPO / "hosts/lab.yaml"), args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench20.yaml"
        path.write_text(board_inventory())
        results[f"{BOARDS}-board lab (gateway + {BOARDS} boards + microvm)"] = time_up(
            str(path), args.runs)
    for name, times in results.items():
        print(f"{name}: median {statistics.median(times):.2f}s, "
              f"min {min(times):.2f}s, max {max(times):.2f}s over {len(times)} runs")


if __name__ == "__main__":
    with private_state():  # the labs' state in a directory of the run's own, not the user's
        main()
