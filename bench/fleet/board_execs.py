"""Programs a no-op starts on a lab board, per tool: `strace -f` on the board's own sshd.

    python bench/fleet/board_execs.py [--size 10] [--compare DIR]

Brings the lab up with `fleet-100.yaml` (as run.py does, and down at the end), converges the
first N boards with greenroom, then attaches `strace -f -e trace=execve` to the first
board's sshd listener and runs one no-op of each tool on the N boards: greenroom, the
compared checkout's greenroom (`--compare`), the untuned Fabric floor. Prints, per tool, the
programs that board started for it (sshd's own re-exec apart): deterministic, no timing.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from run import INVENTORY, REPO, RESET, compile_bytecode, inventory_of, read_netns  # noqa: E402

EXECVE = re.compile(r'execve\("([^"]+)"')


def listener(netns: str) -> int:
    """The pid of the board's sshd that listens on port 22."""
    done = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "ss", "-tlnpH",
                           "sport = :22"], capture_output=True, text=True, check=True)
    return int(re.findall(r"pid=(\d+)", done.stdout)[0])


def traced(pid: int, argv: list[str], cwd: Path) -> list[str]:
    """The programs started under `pid` while `argv` ran (sshd's re-exec left out)."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=execve", "-o", out.name,
                                   "-p", str(pid)], stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
        time.sleep(0.5)  # the session's sshd ends
        tracer.terminate()
        tracer.wait()
        return [Path(m).name for m in EXECVE.findall(Path(out.name).read_text())
                if Path(m).name != "sshd"]


def main() -> None:
    from runbooks.core.inventory import load_inventory
    from runbooks.core.session import Connector
    from runbooks.lab.access import lab_access, plug_in

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10, help="boards per run (default 10)")
    parser.add_argument("--compare", metavar="DIR", default=None,
                        help="another greenroom checkout, traced the same way")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("this uses the virtual lab: run it as root")
    plug_in()
    inv_cmd = [sys.executable, "-m", "invoke"]
    compile_bytecode()
    subprocess.run([*inv_cmd, "lab.up", "--inventory", str(INVENTORY)], cwd=REPO, check=True)
    try:
        inventory = load_inventory(INVENTORY)
        access = lab_access(inventory)
        hosts = list(inventory.hosts.values())[:args.size]
        connector = Connector(inventory)
        for host in hosts:
            connector.session(host).run(RESET)
        connector.close_all()
        grinv = Path(tempfile.mkdtemp(prefix="greenroom-execs-")) / "fleet.yaml"
        grinv.write_text(inventory_of(args.size))
        run = [sys.executable, str(HERE / "greenroom_run.py"), "-i", str(grinv),
               "--parallel", str(args.size)]
        subprocess.run(run, cwd=HERE, check=True, capture_output=True)  # converged
        pairs = "[" + ",".join(f'["{h.address}", "{access.key_filename}"]' for h in hosts) + "]"
        tools = {"greenroom": run,
                 "fabric floor": [sys.executable, str(HERE / "tuned_floor.py"), "0", pairs,
                                  access.known_hosts]}
        if args.compare:
            other = Path(args.compare).resolve()
            tools["greenroom compared"] = [sys.executable,
                                           str(other / "bench" / "fleet" / "greenroom_run.py"),
                                           *run[2:]]
        pid = listener(read_netns(inventory.site, hosts[0].name))
        for name, argv in tools.items():
            started = traced(pid, argv, HERE)
            counts = collections.Counter(started)
            print(f"{name}: {len(started)} programs on {hosts[0].name} per no-op: "
                  + ", ".join(f"{p} {n}" if n > 1 else p for p, n in counts.items()))
    finally:
        subprocess.run([*inv_cmd, "lab.down", "--inventory", str(INVENTORY)], cwd=REPO,
                       check=False)


if __name__ == "__main__":
    main()
