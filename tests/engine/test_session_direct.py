"""Direct paramiko connections against real sshd on loopback: a host reached directly is
opened without any Fabric Connection, honouring `~/.ssh/config` (HostName, IdentityFile;
the inventory always names user and port, which win over the config's as with Fabric) and
checking its host key as before; a host that needs Fabric (ProxyJump, a
`via` gateway) still goes through Fabric."""

from __future__ import annotations

import fabric
import paramiko
import pytest

from runbooks.core.inventory import load_inventory
from runbooks.core.session import Connector, HostKeyRefused
from runbooks.core.session_direct import DirectConnection


@pytest.fixture
def fabric_built(monkeypatch) -> list[str]:
    """The hosts a Fabric Connection was built for."""
    built: list[str] = []
    original = fabric.Connection.__init__

    def init(self, host, *args, **kwargs):  # type: ignore[no-untyped-def]
        built.append(host)
        original(self, host, *args, **kwargs)

    monkeypatch.setattr(fabric.Connection, "__init__", init)
    return built


def aliased(site, name: str, alias: str, settings: str):
    """The inventory names host `name` by `alias`, which ~/.ssh/config resolves (HostName)
    with `settings` added; returns the loaded inventory and a Connector for it."""
    server = site.servers[name]
    (site.home / ".ssh" / "config").write_text(
        f"Host {alias}\n  HostName {server.address}\n{settings}")
    site.inventory.write_text(site.inventory.read_text().replace(
        f"{{address: {server.address},", f"{{address: {alias},"))
    inv = load_inventory(site.inventory)
    return inv, Connector(inv)


def test_a_direct_host_gets_no_fabric_connection(site, fabric_built):
    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    try:
        for name in ("alpha", "beta"):
            session = connector.session(inv.hosts[name])
            assert isinstance(session.connection, DirectConnection)
            assert session.run("echo $SSH_CONNECTION").stdout.split()[2] == \
                site.servers[name].address
    finally:
        connector.close_all()
    assert fabric_built == []


def test_the_ssh_config_names_the_host_and_its_key(site, fabric_built):
    alpha = site.servers["alpha"]
    ssh = site.home / ".ssh"
    (ssh / "id_ed25519").rename(ssh / "board_key")  # found only through IdentityFile
    inv, connector = aliased(site, "alpha", "board-alpha", "  IdentityFile ~/.ssh/board_key\n")
    try:
        session = connector.session(inv.hosts["alpha"])
        assert isinstance(session.connection, DirectConnection)
        assert session.run("echo $SSH_CONNECTION").stdout.split()[2:] == \
            [alpha.address, str(alpha.port)]
    finally:
        connector.close_all()
    assert fabric_built == []


def test_an_unknown_host_key_is_still_refused(site):
    (site.home / ".ssh" / "known_hosts").write_text(site.servers["beta"].known_hosts_line())
    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    try:
        with pytest.raises(HostKeyRefused, match=r"unknown host key for \[127\.0\.0\.2\]"):
            connector.session(inv.hosts["alpha"])
        assert connector.session(inv.hosts["beta"]).run("true").ok
    finally:
        connector.close_all()


def test_proxyjump_still_goes_through_fabric(site, fabric_built):
    alpha, beta = site.servers["alpha"], site.servers["beta"]
    inv, connector = aliased(site, "beta", "jumped-beta",
                             f"  ProxyJump root@{alpha.address}:{alpha.port}\n")
    try:
        session = connector.session(inv.hosts["beta"])
        assert isinstance(session.connection, fabric.Connection)
        assert isinstance(session.connection.transport.sock, paramiko.Channel)
        assert session.run("echo $SSH_CONNECTION").stdout.split()[2] == beta.address
        # the other host, reached directly, is not affected
        assert isinstance(connector.session(inv.hosts["alpha"]).connection, DirectConnection)
    finally:
        connector.close_all()
    assert "jumped-beta" in fabric_built


def test_a_gateway_and_the_host_behind_it_go_through_fabric(site, fabric_built):
    beta = site.servers["beta"]
    site.inventory.write_text(site.inventory.read_text().replace(
        f"port: {beta.port}, roles: [pi]}}", f"port: {beta.port}, roles: [pi], via: alpha}}"))
    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    try:
        behind = connector.session(inv.hosts["beta"])
        gateway = connector.session(inv.hosts["alpha"])
        assert isinstance(behind.connection, fabric.Connection)
        # one connection to the gateway, shared by its own session and the tunnel
        assert gateway.connection is connector.connection(inv.hosts["alpha"])
    finally:
        connector.close_all()
