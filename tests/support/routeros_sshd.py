"""An SSH server on loopback whose exec requests go to the RouterOS DOUBLE (no MikroTik can
run here): `inv router` talks to it exactly as to a router's SSH service, one CLI command per
exec request. RouterOS answers errors on stdout with exit status 0; so does this server.

    with RouterOSServer(double, client_key) as server:   # server.port, server.host_key
        ...
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import paramiko

from tests.support.routeros_double import RouterOSDouble, RouterOSError


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: RouterOSServer) -> None:
        self.server = server
        self.commands: dict[int, str] = {}
        self.ready = threading.Condition()

    def check_auth_publickey(self, username: str, key: Any) -> int:
        ok = username == "admin" and key.get_base64() == self.server.client_key.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        with self.ready:  # answered by the connection's thread once the request is acked
            self.commands[channel.get_id()] = command.decode()
            self.ready.notify_all()
        return True

    def command(self, channel: Any, timeout: float = 10) -> str | None:
        with self.ready:
            self.ready.wait_for(lambda: channel.get_id() in self.commands, timeout)
            return self.commands.pop(channel.get_id(), None)


class RouterOSServer:
    """Serves `double` on 127.0.0.1:<free port> to the holder of `client_key`."""

    def __init__(self, double: RouterOSDouble, client_key: paramiko.PKey) -> None:
        self.double, self.client_key = double, client_key
        self.host_key = _host_key()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RouterOSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _connection(self, client: socket.socket) -> None:
        """Serve one client until it goes away. A client may leave at any moment (a refused
        host key, a reset mid key exchange, a channel closed before its answer): the key
        exchange then re-raises what the transport's reader met (EOFError, an SSHException, or
        an OSError such as ConnectionResetError): this connection is over, and only this one."""
        transport = paramiko.Transport(client)
        transport.add_server_key(self.host_key)
        interface = _Interface(self)
        try:
            transport.start_server(server=interface)
            while transport.is_active():
                channel = transport.accept(1)
                if channel is None:
                    continue
                command = interface.command(channel)
                if command is not None:
                    self.answer(channel, command)
        except (paramiko.SSHException, EOFError, OSError):
            pass  # the client went away
        finally:
            transport.close()

    def answer(self, channel: Any, command: str) -> None:
        with self.lock:
            try:
                out = self.double.run(command)
            except RouterOSError as exc:
                out = f"{exc}\n"
        try:
            channel.sendall(out.encode())
            channel.send_exit_status(0)
        except (paramiko.SSHException, OSError):
            pass  # the client closed this channel first; its other channels go on
        channel.close()


def _host_key() -> paramiko.PKey:
    return paramiko.RSAKey.generate(2048)
