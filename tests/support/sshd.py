"""A real OpenSSH server on a loopback address, for engine tests that need no lab.

The server runs as root in a private mount namespace (its privilege-separation directory
lives on a tmpfs only it sees), listens on 127.0.0.x only, and accepts one test key. Tests
point steps at files under their own temp dirs, so nothing of the machine changes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class SshServer:
    address: str
    port: int
    key: Path
    host_key: Path
    process: subprocess.Popen[bytes]
    log: Path

    def known_hosts_line(self) -> str:
        pub = Path(str(self.host_key) + ".pub").read_text().split()
        return f"[{self.address}]:{self.port} {pub[0]} {pub[1]}\n"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path


def start_sshd(workdir: Path, address: str, client_key: Path,
               max_sessions: int = 100) -> SshServer:
    """Start sshd on `address` accepting `client_key` for root; waits until it listens.
    `max_sessions`: channels at once on one connection (OpenSSH's own default is 10)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = keygen(workdir / "host_key")
    authorized = workdir / "authorized_keys"
    authorized.write_text(Path(str(client_key) + ".pub").read_text())
    authorized.chmod(0o600)
    port = free_port(address)
    config = workdir / "sshd_config"
    config.write_text(
        f"ListenAddress {address}\nPort {port}\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile none\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nStrictModes no\n"
        f"MaxSessions {max_sessions}\n"
        "MaxStartups 100\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    log = workdir / "sshd.log"
    script = (
        "mount -t tmpfs greenroom-sshd /run && mkdir -p /run/sshd && chmod 755 /run/sshd && "
        # root's own ~/.bashrc (sourced by bash for ssh commands) is not the lab's business
        "{ [ ! -e /root/.bashrc ] || mount --bind /dev/null /root/.bashrc; } && "
        f'exec {sshd} -D -e -f "$1"'
    )
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
         str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        try:
            with socket.create_connection((address, port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError(f"sshd did not listen on {address}:{port}: {log.read_text()}")
    return SshServer(address, port, client_key, host_key, process, log)
