"""greenroom's client CPU per host, against the tuned floor's, on a real sshd (no lab).

    python bench/fleet/client_cpu.py CHECKOUT [CHECKOUT ...] [--hosts 50] [--rounds 3]

Root (it starts sshd on 127.0.0.2 as the engine tests do). N inventory hosts are N names
that `~/.ssh/config` (a temporary HOME) resolves to that one sshd, each with its own copy of
the benchmark plan's files under a temporary directory (nothing of this machine changes; the
live sysctl is only read). One host at a time, so the process's CPU time (its transport
threads included) divides by the host count: the tuned floor (level 7: connect, check the
host key, log in, `true`), greenroom's `Connector.session` (connect and log in), and a
whole greenroom no-op run (`run_runbook`, session + facts + plan + recap). Each checkout's
engine runs in its own process; medians of `--rounds`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

CHILD = r"""
import io, json, os, socket, statistics, sys
checkout, work = sys.argv[1], sys.argv[2]
port, hosts, rounds = (int(n) for n in sys.argv[3:6])
sys.path[:0] = [checkout, os.path.join(checkout, "bench", "fleet")]
import paramiko
from runbooks.core import session as S
from runbooks.core.access import Access, plug_in
from runbooks.core.inventory import load_inventory
from runbooks.core.runner import Runbook, run_runbook
from runbooks.common.kernel import Sysctl
from runbooks.core.steps import Directory, File, LineInFile, Plan, Tokens
import plan as bench
from runbooks.core.steps import files
files.BACKUP_DIR = os.path.join(work, "backups")  # never this machine's /var/backups
key, known = os.path.join(work, "home/.ssh/id_ed25519"), os.path.join(work, "home/.ssh/known_hosts")
plug_in(lambda inv: Access(key_filename=key, known_hosts=known))
live = open("/proc/sys/net/ipv4/ip_forward").read().strip()
def plan(ctx):
    r = os.path.join(work, "root", ctx.host.name)
    return Plan().add(
        File(f"{r}/k8s.conf", bench.MODULES), File(f"{r}/sysctl-k8s.conf", bench.SYSCTL),
        Tokens(f"{r}/cmdline.txt", ["cgroup_memory=1", "cgroup_enable=memory"]),
        LineInFile(f"{r}/fstab", "#/swapfile none swap sw 0 0", match="/swapfile"),
        Sysctl("net.ipv4.ip_forward", live, file=f"{r}/90-bench.conf"),
        File(f"{r}/config.toml", bench.containerd_config(ctx.host.name)),
        Directory(f"{r}/certs.d"))
runbook = Runbook("prepare-board", ("pi",), plan)
inv = load_inventory(os.path.join(work, "inventory.yaml"))
targets = list(inv.hosts.values())
pkey = paramiko.PKey.from_path(key)
host_keys = paramiko.HostKeys(); host_keys.load(known)
class QuickAck(socket.socket):
    def recv(self, n, flags=0):
        data = super().recv(n, flags)
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data
def floor():
    sock = socket.create_connection(("127.0.0.2", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = QuickAck(sock.family, sock.type, sock.proto, fileno=sock.detach())
    transport = paramiko.Transport(sock)
    known = host_keys.lookup(f"[127.0.0.2]:{port}")
    options = transport.get_security_options()
    options.key_types = [t for t in known.keys() if t in options.key_types]
    transport.start_client(timeout=10)
    offered = transport.get_remote_server_key()
    assert known.get(offered.get_name()) == offered
    transport.auth_publickey("root", pkey)
    channel = transport.open_session(); channel.exec_command("true")
    assert channel.recv_exit_status() == 0
    transport.close()
def cpu():
    t = os.times(); return t.user + t.system
first = run_runbook(runbook, inv, targets, out=io.StringIO())
assert first.ok, first.as_report()
samples = {"tuned floor (level 7), per host": [], "greenroom Connector.session, per host": [],
           "greenroom no-op run, per host": []}
for _ in range(rounds):
    start = cpu()
    for _host in targets: floor()
    samples["tuned floor (level 7), per host"].append(cpu() - start)
    connector = S.Connector(inv)
    start = cpu()
    for host in targets: connector.session(host)
    samples["greenroom Connector.session, per host"].append(cpu() - start)
    connector.close_all()
    start = cpu()
    result = run_runbook(runbook, inv, targets, parallel=1, out=io.StringIO())
    samples["greenroom no-op run, per host"].append(cpu() - start)
    assert result.ok and result.changed == 0, result.as_report()
print(json.dumps({k: 1000 * statistics.median(v) / hosts for k, v in samples.items()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", help="greenroom checkouts to measure")
    parser.add_argument("--hosts", type=int, default=50, help="inventory hosts (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, median (default 3)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("client_cpu.py starts sshd: run it as root")
    sys.path.insert(0, str(REPO))
    from tests.support.sshd import keygen, start_sshd

    work = Path(tempfile.mkdtemp(prefix="greenroom-client-cpu-"))
    key = keygen(work / "key")
    server = start_sshd(work / "sshd", "127.0.0.2", key)
    try:
        ssh = work / "home" / ".ssh"
        ssh.mkdir(parents=True, mode=0o700)
        (ssh / "id_ed25519").write_bytes(key.read_bytes())
        (ssh / "id_ed25519").chmod(0o600)
        (ssh / "known_hosts").write_text(server.known_hosts_line())
        (ssh / "config").write_text("Host *.bench\n  HostName 127.0.0.2\n")
        lines = ["site: clientcpu", "defaults: {user: root}", "network:", "  vlan: {id: 100}",
                 "  subnet: 192.168.10.0/25", "  gateway: 192.168.10.2",
                 "  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}",
                 "hosts:"]
        for i in range(1, args.hosts + 1):
            name = f"b{i:03d}"
            lines.append(f"  {name}: {{address: {name}.bench, port: {server.port}, "
                         "roles: [pi]}")
            board = work / "root" / name
            board.mkdir(parents=True)
            (board / "cmdline.txt").write_text("console=serial0,115200 rootwait\n")
            (board / "fstab").write_text("proc /proc proc defaults 0 0\n"
                                         "/swapfile none swap sw 0 0\n")
        (work / "inventory.yaml").write_text("\n".join(lines) + "\n")
        env = dict(os.environ, HOME=str(work / "home"))
        env.pop("SSH_AUTH_SOCK", None)
        print(f"load average {os.getloadavg()[0]:.1f}; {args.hosts} hosts, "
              f"{args.rounds} rounds; client CPU in ms per host")
        for checkout in args.checkouts:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(Path(checkout).resolve()), str(work),
                 str(server.port), str(args.hosts), str(args.rounds)],
                env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{checkout}: {done.stderr[-3000:]}")
            for what, ms in json.loads(done.stdout.splitlines()[-1]).items():
                print(f"{checkout}: {what}: {ms:.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
