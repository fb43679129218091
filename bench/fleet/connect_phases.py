"""Where one SSH connection's time goes: key exchange, authentication, first channel, command.

Starts a real OpenSSH server on a loopback address (as the engine tests do: root, private
mount namespace, nothing of the machine changed), then opens connections one after the
other, alternating the variants, and prints the median of each phase (connect = key
exchange + authentication, command = channel open + `true` until its exit status):

- `paramiko`: paramiko's own socket (as Fabric and the untuned floor open it)
- `nodelay`: TCP_NODELAY set before the handshake
- `quickack`: that, and TCP_QUICKACK set again after every read (greenroom's socket)
- `greenroom`: greenroom's `Connector` (Fabric connection, host key checked, its socket)

    python bench/fleet/connect_phases.py [--runs 20]

No lab needed; sequential connections on an otherwise idle loopback show the latency each
socket setting removes (a delayed ACK is ~40 ms on Linux), without 100 boards' CPU load.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import paramiko  # noqa: E402

from runbooks.core import session as session_mod  # noqa: E402
from tests.support.sshd import keygen, start_sshd  # noqa: E402

PHASES = ("kex", "auth", "open", "exec", "connect", "command", "total")


def raw(address: str, port: int, pkey: paramiko.PKey, variant: str) -> dict[str, float]:
    """One connection with paramiko's Transport on a socket prepared as `variant` says."""
    marks = [time.perf_counter()]
    sock = socket.create_connection((address, port), timeout=10)
    if variant == "nodelay":
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    elif variant == "quickack":
        sock = session_mod._tuned_socket(sock)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        marks.append(time.perf_counter())
        transport.auth_publickey("root", pkey)
        marks.append(time.perf_counter())
        channel = transport.open_session()
        marks.append(time.perf_counter())
        channel.exec_command("true")
        channel.recv_exit_status()
        marks.append(time.perf_counter())
    finally:
        transport.close()
    return _phases(marks)


def _phases(marks: list[float]) -> dict[str, float]:
    found = {name: (b - a) * 1000
             for name, a, b in zip(PHASES[:4], marks[:-1], marks[1:], strict=True)}
    found["connect"] = found["kex"] + found["auth"]
    found["command"] = found["open"] + found["exec"]
    found["total"] = (marks[-1] - marks[0]) * 1000
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="connections per variant")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("starts sshd as root (as the engine tests do): run it as root")
    work = Path(tempfile.mkdtemp(prefix="greenroom-phases-"))
    key = keygen(work / "id_ed25519")
    server = start_sshd(work / "sshd", "127.0.0.2", key)
    try:
        pkey = paramiko.PKey.from_path(str(key))
        known = work / "known_hosts"
        known.write_text(server.known_hosts_line())
        greenroom = _greenroom(work, server, key, known)
        samples: dict[str, dict[str, list[float]]] = {}
        variants = ("paramiko", "nodelay", "quickack", "greenroom")
        for _ in range(args.runs):
            for variant in variants:
                got = (greenroom() if variant == "greenroom"
                       else raw(server.address, server.port, pkey, variant))
                for phase, ms in got.items():
                    samples.setdefault(variant, {}).setdefault(phase, []).append(ms)
        print(f"medians of {args.runs} sequential connections to a loopback sshd (ms), "
              f"load average {os.getloadavg()[0]:.1f}:")
        print("| variant | " + " | ".join(PHASES) + " |")
        print("|---|" + "---|" * len(PHASES))
        for variant in variants:
            cells = [f"{statistics.median(samples[variant][p]):.1f}"
                     if p in samples[variant] else "-" for p in PHASES]
            print(f"| {variant} | " + " | ".join(cells) + " |")
    finally:
        server.stop()


def _greenroom(work: Path, server, key: Path, known: Path):  # type: ignore[no-untyped-def]
    """A function that opens one session through greenroom's Connector and runs `true`:
    its connection set-up (key exchange, authentication, host key check) and its first
    command (channel open included) timed as a whole each."""
    from runbooks.core import access
    from runbooks.core.inventory import load_inventory

    inventory = work / "site.yaml"
    inventory.write_text(
        "site: phases\ndefaults: {user: root}\nnetwork:\n  vlan: {id: 100}\n"
        "  subnet: 192.168.10.0/25\n  gateway: 192.168.10.2\n"
        "  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}\n"
        f"hosts:\n  one: {{address: {server.address}, port: {server.port}, roles: [pi]}}\n")
    inv = load_inventory(inventory)
    access.plug_in(lambda _inv: access.Access(str(key), str(known)))

    def one() -> dict[str, float]:
        connector = session_mod.Connector(inv)
        try:
            started = time.perf_counter()
            session = connector.session(inv.hosts["one"])
            opened = time.perf_counter()
            session.run("true")
            done = time.perf_counter()
        finally:
            connector.close_all()
        return {"connect": (opened - started) * 1000, "command": (done - opened) * 1000,
                "total": (done - started) * 1000}

    return one


if __name__ == "__main__":
    main()
