"""The RouterOS SSH double's server threads (tests/support/routeros_sshd.py): a client that
goes away at any point (a reset during the key exchange, a channel closed before its answer)
ends that connection's thread quietly; the server goes on serving the next client."""

from __future__ import annotations

import socket
import struct
import threading
import time

import paramiko
import pytest

from tests.support.routeros_double import RouterOSDouble
from tests.support.routeros_sshd import RouterOSServer


@pytest.fixture
def thread_errors(monkeypatch) -> list[BaseException]:
    """Exceptions that ended any thread (what pytest reports as an unhandled thread
    exception warning), collected instead."""
    found: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook",
                        lambda args: found.append(args.exc_value or Exception("?")))
    return found


def reset_after_banner(port: int) -> None:
    """Connect, read the server's banner, send ours and a half packet, then close with a
    TCP reset (SO_LINGER 0): the server's read fails with ECONNRESET mid key exchange."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.recv(256)
        sock.sendall(b"SSH-2.0-reset-test\r\n" + struct.pack(">I", 1000) + b"\x05")
        time.sleep(0.2)  # the server has read our banner and waits for the packet's rest
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def connection_threads() -> list[str]:
    """The server's per-connection threads still alive."""
    return [t.name for t in threading.enumerate() if t.name.endswith("(_connection)")]


def run_command(server: RouterOSServer, key: paramiko.PKey, command: str) -> str:
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{server.port}", server.host_key.get_name(),
                               server.host_key)
    client.connect("127.0.0.1", server.port, username="admin", pkey=key,
                   look_for_keys=False, allow_agent=False, timeout=10)
    try:
        _, stdout, _ = client.exec_command(command, timeout=10)
        return stdout.read().decode()
    finally:
        client.close()


def test_a_client_reset_during_the_key_exchange_ends_its_thread_quietly(thread_errors):
    key = paramiko.RSAKey.generate(1024)
    double = RouterOSDouble("routeros7", {}, {"/system identity print": "name: edge\n"})
    with RouterOSServer(double, key) as server:
        for _ in range(3):
            reset_after_banner(server.port)
        deadline = time.monotonic() + 10
        while connection_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connection_threads() == []
        assert run_command(server, key, "/system identity print").strip()  # still serving
    assert thread_errors == []
