"""Fixtures for engine tests against real sshd servers on loopback addresses.

`site` gives two real SSH hosts (127.0.0.2 and 127.0.0.3), a fake HOME whose ~/.ssh holds
the client key and known_hosts, and an inventory file describing them. Steps in these tests
act on files under the test's temp dir only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sshd import SshServer, keygen, start_sshd

NETWORK = """\
network:
  vlan: {id: 100}
  subnet: 192.168.10.0/25
  gateway: 192.168.10.2
  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}
"""


@dataclass
class Site:
    home: Path
    root: Path  # where the steps of a test write
    servers: dict[str, SshServer]
    inventory: Path

    def write_inventory(self, extra_hosts: str = "") -> Path:
        lines = ["site: enginetest", "defaults: {user: root}", NETWORK.rstrip(), "hosts:"]
        for name, server in self.servers.items():
            lines.append(f"  {name}: {{address: {server.address}, port: {server.port}, "
                         "roles: [pi]}")
        self.inventory.write_text("\n".join(lines) + "\n" + extra_hosts)
        return self.inventory


@pytest.fixture(scope="session")
def sshd_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    if os.geteuid() != 0:
        pytest.skip("engine SSH tests start sshd as root: run as root (CI does)")
    base = tmp_path_factory.mktemp("sshd")
    key = keygen(base / "id_ed25519")
    servers = {name: start_sshd(base / name, address, key)
               for name, address in (("alpha", "127.0.0.2"), ("beta", "127.0.0.3"))}
    yield key, servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def site(sshd_pair: tuple[Path, dict], tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Site:
    key, servers = sshd_pair
    home = tmp_path / "home"
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    (ssh / "id_ed25519").write_bytes(key.read_bytes())
    (ssh / "id_ed25519").chmod(0o600)
    (ssh / "known_hosts").write_text("".join(s.known_hosts_line() for s in servers.values()))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    root = tmp_path / "root"
    root.mkdir()
    from runbooks.core.steps import files

    monkeypatch.setattr(files, "BACKUP_DIR", str(tmp_path / "backups"))
    result = Site(home, root, servers, tmp_path / "site.yaml")
    result.write_inventory()
    return result
