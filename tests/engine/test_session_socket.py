"""The socket a session runs on (real sshd on loopback): TCP_NODELAY before the SSH
handshake's first packet, delayed ACKs turned off after every read, and connection errors
still named as before. Timing is the benchmark's business (bench/fleet); these tests check
the settings that the measured gains come from."""

from __future__ import annotations

import socket

import paramiko
import pytest

from runbooks.core import session as session_mod
from runbooks.core.inventory import load_inventory
from runbooks.core.session import Connector, HostUnreachable
from tests.support.sshd import free_port


def test_no_delay_is_set_before_the_handshake(site, monkeypatch):
    seen: list[tuple[type, int]] = []
    original = paramiko.Transport.start_client

    def start_client(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((type(self.sock), self.sock.getsockopt(socket.IPPROTO_TCP,
                                                             socket.TCP_NODELAY)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(paramiko.Transport, "start_client", start_client)
    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    try:
        session = connector.session(inv.hosts["alpha"])
        assert session.run("echo hi").stdout == "hi\n"
    finally:
        connector.close_all()
    assert len(seen) == 1
    kind, no_delay = seen[0]
    assert no_delay != 0
    if session_mod.QUICKACK is not None:
        assert issubclass(kind, session_mod._QuickAckSocket)


def test_every_read_turns_delayed_acks_off_again(monkeypatch):
    if session_mod.QUICKACK is None:
        pytest.skip("TCP_QUICKACK is Linux's")
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = session_mod._tuned_socket(socket.create_connection(server.getsockname()))
        peer, _ = server.accept()
        calls: list[tuple[int, int, int]] = []

        class Spy(session_mod._QuickAckSocket):
            def setsockopt(self, *args):  # type: ignore[no-untyped-def,override]
                calls.append(args)
                return super().setsockopt(*args)

        client.__class__ = Spy
        try:
            for chunk in (b"hostkeys", b"debug", b"confirmation"):
                peer.sendall(chunk)
                assert client.recv(100) == chunk
            assert calls == [(socket.IPPROTO_TCP, session_mod.QUICKACK, 1)] * 3
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert client.gettimeout() is None  # create_connection's default kept
            peer.close()
            assert client.recv(100) == b""  # the end of the stream reads as before
        finally:
            client.close()
            peer.close()


def test_a_refused_connection_is_unreachable_with_address(site):
    port = free_port("127.0.0.2")  # nothing listens there
    site.inventory.write_text(site.inventory.read_text().replace(
        f"port: {site.servers['alpha'].port}", f"port: {port}"))
    inv = load_inventory(site.inventory)
    connector = Connector(inv)
    with pytest.raises(HostUnreachable, match=rf"cannot connect to 127\.0\.0\.2:{port}: "
                                              r".*[Cc]onnection refused"):
        connector.session(inv.hosts["alpha"])
    # the other host is not disturbed
    assert connector.session(inv.hosts["beta"]).run("true").ok
    connector.close_all()


def test_a_host_behind_a_gateway_is_reached_through_it(site):
    text = site.inventory.read_text()
    beta = site.servers["beta"]
    site.inventory.write_text(text.replace(
        f"port: {beta.port}, roles: [pi]}}", f"port: {beta.port}, roles: [pi], via: alpha}}"))
    inv = load_inventory(site.inventory)
    assert inv.hosts["beta"].via == "alpha"
    connector = Connector(inv)
    try:
        through = connector.session(inv.hosts["beta"])
        assert through.run("echo $SSH_CONNECTION").stdout.split()[2] == "127.0.0.3"
        gateway = connector.connection(inv.hosts["alpha"])
        assert isinstance(through.connection.transport.sock, paramiko.Channel)
        assert gateway.transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        connector.close_all()
