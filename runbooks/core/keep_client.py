"""Sessions whose SSH connection is kept open between runs by the keeper (keep_server).

paramiko's transport cannot be handed to another process, so a kept session sends each
command (`Session._exec_raw`: line, stdin, timeout) over a Unix socket to the keeper, which
runs it on its own connection to the host and sends back what the host answered. Everything
else of a session stays here: sudo's setup, the command wrapping, the results.

The switch: the inventory's `ssh: {keep: SECONDS}` (default 60; 0: off), overridden by
`GREENROOM_SSH_KEEP=SECONDS` in the environment. The keeper is started on demand, detached;
when it cannot be started or does not answer an open, the run connects directly as it
always did (said only with GREENROOM_VERBOSE set). A keeper that goes away while a command
runs is a lost connection (HostUnreachable): the command may have run, so it is never sent
again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbooks.core import keep_wire, secrets
from runbooks.core.keep_paths import (
    PACKAGE_ROOT,
    KeepDirRefused,
    keep_dir,
    private_dir,
    socket_path,
)
from runbooks.core.session import (
    SUDO_PASSWORD_ENV,
    CommandResult,
    HostKeyRefused,
    HostUnreachable,
    Session,
    SessionError,
)

if TYPE_CHECKING:
    from runbooks.core.inventory import Host

VERBOSE_ENV = "GREENROOM_VERBOSE"
START_WAIT = 5.0  # seconds a started keeper has to listen
# seconds the keeper may answer later than the host had to (a keeper that hangs is gone)
ANSWER_SLACK = 30.0
SSH_CONFIGS = ("~/.ssh/config", "/etc/ssh/ssh_config")
# never handed to the keeper's environment: its memory holds no secret beyond a request
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET")


class KeeperUnavailable(Exception):
    """No keeper answers (it could not start, or it went away)."""


def _mtime(path: str | None) -> int | None:
    if not path:
        return None
    try:
        return os.stat(os.path.expanduser(path)).st_mtime_ns
    except OSError:
        return None


def identity(host: Host, *, key: str | None, known_hosts: str, extra_known_hosts: str | None,
             accept_new: bool, timeout: float) -> dict[str, Any]:
    """What makes a kept connection the one this host wants: another value of any of these
    (files by their modification time too), another connection."""
    return {
        "name": host.name, "address": host.address, "port": host.port, "user": host.user,
        "key": key, "key_mtime": _mtime(key),
        "known_hosts": known_hosts, "extra_known_hosts": extra_known_hosts,
        "known_mtimes": [_mtime(known_hosts), _mtime(extra_known_hosts)],
        "ssh_configs": [_mtime(path) for path in SSH_CONFIGS],
        "accept_new": accept_new, "timeout": timeout,
        "home": os.path.expanduser("~"), "agent": os.environ.get("SSH_AUTH_SOCK"),
    }


def _say(text: str) -> None:
    if os.environ.get(VERBOSE_ENV):
        print(f"[greenroom] ssh keep: {text}", file=sys.stderr)


def keeper_environment() -> dict[str, str]:
    """The keeper's environment: ours without secrets, the package importable."""
    env = {name: value for name, value in os.environ.items()
           if name != SUDO_PASSWORD_ENV and not any(w in name.upper() for w in SECRET_WORDS)
           and secrets.mask(value) == value}  # nor a value registered as a secret
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def keeper_command(path: Path, keep: int) -> list[str]:
    """The keeper's argv: the socket and the idle time, nothing else."""
    return [sys.executable, "-m", "runbooks.core.keep_server", str(path), str(keep)]


class KeepClient:
    """Talks to this user's keeper for this code (started on first need)."""

    def __init__(self, keep: int, path: Path | None = None, start: bool = True) -> None:
        self.keep = keep
        self.path = path or socket_path()
        self._start = start
        self._lock = threading.Lock()
        self._broken: str | None = None  # why no keeper answers: every host goes direct

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        return sock

    def _started(self) -> socket.socket:
        """A connection to the keeper, starting it when none listens."""
        if self._broken:
            raise KeeperUnavailable(self._broken)
        try:
            return self._connect()
        except (FileNotFoundError, ConnectionRefusedError):
            if not self._start:
                raise KeeperUnavailable("no keeper is running") from None
        with self._lock:
            try:
                return self._connect()
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            try:
                private_dir(self.path.parent)
                subprocess.Popen(keeper_command(self.path, self.keep), env=keeper_environment(),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True,
                                 close_fds=True, cwd="/")
            except (KeepDirRefused, OSError) as exc:
                self._broken = f"cannot start the keeper: {exc}"
                raise KeeperUnavailable(self._broken) from exc
            deadline = time.monotonic() + START_WAIT
            while True:
                try:
                    return self._connect()
                except (FileNotFoundError, ConnectionRefusedError) as exc:
                    if time.monotonic() > deadline:
                        self._broken = f"the keeper did not listen at {self.path}"
                        raise KeeperUnavailable(self._broken) from exc
                    time.sleep(0.01)

    def request(self, header: dict[str, Any], blobs: tuple[bytes, ...] = (),
                timeout: float | None = None) -> tuple[dict[str, Any], list[bytes]]:
        """One request and its answer; KeeperUnavailable when no keeper answers it."""
        try:
            sock = self._started()
        except OSError as exc:
            raise KeeperUnavailable(str(exc)) from exc
        try:
            sock.settimeout(timeout)
            keep_wire.send(sock, {**header, "keep": self.keep}, blobs)
            return keep_wire.receive(sock)
        except (keep_wire.WireError, OSError) as exc:
            raise KeeperUnavailable(f"the keeper stopped answering: {exc}") from exc
        finally:
            sock.close()

    def session(self, host: Host, ident: dict[str, Any],
                opener: Callable[[], Any] | None = None) -> KeptSession | None:
        """A kept session to `host` (its connection opened by the keeper), None when the
        keeper cannot serve it (then connect directly); HostUnreachable or HostKeyRefused
        as a direct open would raise them."""
        try:
            answer, _ = self.request({"op": "open", "identity": ident},
                                     timeout=2 * float(ident["timeout"]) + ANSWER_SLACK)
        except KeeperUnavailable as exc:
            _say(f"{exc}; connecting directly")
            return None
        error = answer.get("error")
        if error in ("fabric", "keeper", "protocol"):
            _say(f"{host.name}: {answer.get('message')}; connecting directly")
            return None
        if error is not None:
            raise _host_error(answer)
        return KeptSession(host, self, ident, opener)

    def drop(self, ident: dict[str, Any] | None = None,
             addresses: list[str] | None = None) -> int:
        """Close kept connections (of `ident`, or to `addresses`); never starts a keeper."""
        from runbooks.core.keep_server import identity_key

        client = KeepClient(self.keep, self.path, start=False)
        try:
            answer, _ = client.request({"op": "drop",
                                        "keys": [identity_key(ident)] if ident else [],
                                        "addresses": addresses or []}, timeout=30)
        except KeeperUnavailable:
            return 0
        return int(answer.get("dropped", 0))


def _host_error(answer: dict[str, Any]) -> Exception:
    message = str(answer.get("message"))
    error = answer.get("error")
    if error == "refused":
        return HostKeyRefused(message)
    if error == "session":
        return SessionError(message)
    return HostUnreachable(message)


class _KeptConnection:
    """A kept session's connection: commands go to the keeper's; only what needs a paramiko
    transport in this process (a port forward: runbooks/demo/images.py) opens one, on first
    use, through `opener` (the Connector's own direct connection, closed with its others)."""

    def __init__(self, opener: Callable[[], Any] | None) -> None:
        self._opener = opener
        self._lock = threading.Lock()

    @property
    def transport(self) -> Any:
        if self._opener is None:
            return None
        with self._lock:
            return self._opener().transport

    @transport.setter
    def transport(self, value: Any) -> None:
        raise AttributeError("a kept session's transport is its Connector's to open")

    def close(self) -> None:
        return None


class KeptSession(Session):
    """A Session whose commands run on the keeper's connection."""

    def __init__(self, host: Host, client: KeepClient, ident: dict[str, Any],
                 opener: Callable[[], Any] | None = None) -> None:
        super().__init__(host, _KeptConnection(opener))
        self.client = client
        self.identity = ident

    def _exec_raw(self, line: str, data: bytes | None,
                  timeout: float | None = None) -> CommandResult:
        with self._channels:
            try:
                answer, blobs = self.client.request(
                    {"op": "exec", "identity": self.identity, "line": line,
                     "timeout": timeout, "stdin": data is not None},
                    (data,) if data is not None else (),
                    timeout=None if timeout is None else timeout + ANSWER_SLACK)
            except KeeperUnavailable as exc:
                raise HostUnreachable(
                    f"connection to {self.host.name} lost: the SSH connection keeper went "
                    f"away while a command ran ({exc})") from exc
        if answer.get("error") is not None:
            raise _host_error(answer)
        stdout, stderr = (blobs + [b"", b""])[:2]
        return CommandResult(int(answer["rc"]), stdout.decode(), stderr.decode(),
                             signal=answer.get("signal"))

    def close(self) -> None:
        """Nothing to close here: the connection stays with the keeper."""


def running_keepers(directory: Path | None = None) -> list[Path]:
    """Sockets of keepers in this user's directory (any code version)."""
    folder = directory or keep_dir()
    try:
        return sorted(folder.glob("keep-*.sock"))
    except OSError:
        return []


def ask(path: Path, op: str) -> dict[str, Any] | None:
    """One request (`status`, `stop`) to the keeper at `path`; None when none answers."""
    try:
        answer, _ = KeepClient(0, path, start=False).request({"op": op}, timeout=30)
    except KeeperUnavailable:
        return None
    return answer


def drop_addresses(addresses: list[str]) -> int:
    """Close every kept connection to `addresses` (all keepers of this user); how many."""
    count = 0
    for path in running_keepers():
        count += KeepClient(0, path, start=False).drop(addresses=addresses)
    return count
