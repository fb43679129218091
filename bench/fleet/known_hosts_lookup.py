"""known_hosts lookups per connection: paramiko's HostKeys against greenroom's index.

    python bench/fleet/known_hosts_lookup.py [--hosts 100] [--extra 100]

Builds a known_hosts with one entry per host plus `--extra` entries of other hosts, plain
(as the virtual lab writes it) and hashed (as Debian's `HashKnownHosts yes` does), then
times what a run does: for every host, the six lookups one connection makes (measured with
paramiko 4: the key types to offer, the key the host showed, in its own and the "system"
host keys), CPU time per host, median of 5 rounds. No network, no lab.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import paramiko  # noqa: E402

from runbooks.core.session_hostkeys import indexed_host_keys  # noqa: E402

LOOKUPS_PER_CONNECTION = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100, help="hosts in the run")
    parser.add_argument("--extra", type=int, default=100, help="other hosts' entries")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="greenroom-known-hosts-"))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "key")],
                   check=True)
    blob = (work / "key.pub").read_text().split()[1]
    hosts = [f"10.233.{i // 250}.{i % 250 + 2}" for i in range(args.hosts)]
    others = [f"other-{i}.example" for i in range(args.extra)]
    print(f"{args.hosts} hosts, {args.extra} other entries; CPU per host (ms), "
          f"{LOOKUPS_PER_CONNECTION} lookups each, median of 5 rounds:")
    print("| known_hosts | paramiko HostKeys | greenroom index | ratio |")
    print("|---|---|---|---|")
    for kind in ("plain", "hashed"):
        path = work / f"known_hosts.{kind}"
        names = [paramiko.HostKeys.hash_host(n) if kind == "hashed" else n
                 for n in hosts + others]
        path.write_text("".join(f"{n} ssh-ed25519 {blob}\n" for n in names))
        per_host = {}
        for label, build in (("paramiko", lambda p=path: paramiko.HostKeys(str(p))),
                             ("greenroom", lambda p=path: indexed_host_keys([str(p)]))):
            rounds = []
            for _ in range(5):
                keys = build()  # a run parses its known_hosts once (not timed)
                started = time.process_time()
                for host in hosts:
                    for _ in range(LOOKUPS_PER_CONNECTION):
                        keys.lookup(host)
                rounds.append((time.process_time() - started) / len(hosts) * 1000)
            per_host[label] = statistics.median(rounds)
        print(f"| {kind} | {per_host['paramiko']:.3f} | {per_host['greenroom']:.3f} | "
              f"{per_host['paramiko'] / per_host['greenroom']:.0f}x |")


if __name__ == "__main__":
    main()
