"""The connection keeper: a per-user process holding SSH connections open between runs.

Started on demand by the first `inv` process that wants a kept connection (keep_client),
detached, with the socket's path and the idle time as its only arguments. It answers one
request per Unix socket connection, from processes of its own user only (SO_PEERCRED):

- `open`: make sure the connection of an identity (address, port, user, key file, known_hosts
  files, trust on first use, connect timeout) is open; the engine's own code opens it
  (`Connector`: the SSH config, tuned socket, host-key policy, key parsing, errors named);
- `exec`: run one command line on it (`Session._exec_raw`) and answer rc, signal, stdout and
  stderr, or the error's text; a connection found dead first is opened again, once, before
  anything is sent, its host key checked strictly (no trust on first use);
- `drop` (identities or addresses), `status`, `stop`.

It exits after `keep` seconds without a request (each request may set a new value), closing
its connections. It writes no log: a command's stdin (a sudo password) and output live only
in the request being served.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbooks.core import keep_wire
from runbooks.core.keep_paths import private_dir

ACCEPT_POLL = 0.5  # seconds between looks at the idle time
STOP_WAIT = 5.0  # seconds a stopped keeper lets the requests under way finish
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def identity_key(identity: dict[str, Any]) -> str:
    """The name of an identity's connection: a hash of all of it (another value of any
    part, another connection)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    _pid, uid, _gid = _CREDS.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
    return int(uid)


class NeedsFabric(Exception):
    """The SSH configuration needs Fabric for this host (ProxyJump, a Fabric config file)."""


@dataclass
class KeptHost:
    """What the engine's connection code reads of a host."""

    name: str
    address: str
    port: int | None
    user: str | None
    via: None = None


class _Inventory:
    """The Connector's view of an inventory: no hosts, no sections, no plug-in."""

    hosts: dict[str, Any] = {}
    sections: dict[str, Any] = {}


@dataclass
class Kept:
    """One kept connection."""

    identity: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)
    connector: Any = None
    session: Any = None
    opened: float = 0.0
    used: float = 0.0

    def alive(self) -> bool:
        transport = getattr(self.session.connection, "transport", None) \
            if self.session is not None else None
        return bool(transport is not None and transport.is_active())

    def close(self) -> None:
        if self.connector is not None:
            self.connector.close_all()
        self.connector = self.session = None


def _open(identity: dict[str, Any], strict: bool) -> tuple[Any, Any]:
    """(connector, session) for `identity`, opened by the engine's code."""
    from runbooks.core.session import Connector, Session

    connector = Connector(_Inventory(),  # type: ignore[arg-type]
                          accept_new_host_keys=bool(identity["accept_new"]) and not strict,
                          connect_timeout=float(identity["timeout"]))
    connector.known_hosts = Path(identity["known_hosts"])
    connector._extra_known_hosts = identity["extra_known_hosts"]  # noqa: SLF001
    connector._key_filename = identity["key"]  # noqa: SLF001
    host = KeptHost(identity["name"], identity["address"], identity["port"], identity["user"])
    direct = connector._direct_connection(host)  # type: ignore[arg-type]  # noqa: SLF001
    if direct is None:
        raise NeedsFabric(identity["name"])
    conn = connector._opened(host, direct)  # type: ignore[arg-type]  # noqa: SLF001
    return connector, Session(host, conn)  # type: ignore[arg-type]


class Keeper:
    """The keeper's state and its request handlers."""

    def __init__(self, keep: float) -> None:
        self.keep = keep
        self.started = time.monotonic()
        self.last = self.started
        self.active = 0
        self.stopping = False
        self._lock = threading.Lock()
        self.kept: dict[str, Kept] = {}

    # -- requests ----------------------------------------------------------------------------
    def answer(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any],
                                                                           tuple[bytes, ...]]:
        """The answer to one request (never raises for a host's trouble)."""
        keep = header.get("keep")
        if isinstance(keep, (int, float)) and keep > 0:
            self.keep = float(keep)
        op = header.get("op")
        if op == "open":
            return self._ready_answer(header["identity"]), ()
        if op == "exec":
            return self._exec(header, blobs)
        if op == "drop":
            return {"dropped": self.drop(header.get("keys", []), header.get("addresses", []))}, ()
        if op == "status":
            return self.status(), ()
        if op == "stop":
            self.stopping = True
            return {"stopping": True, "pid": os.getpid()}, ()
        return {"error": "protocol", "message": f"unknown request {op!r}"}, ()

    def _ready(self, identity: dict[str, Any]) -> Kept:
        key = identity_key(identity)
        with self._lock:
            kept = self.kept.setdefault(key, Kept(identity))
        with kept.lock:
            if kept.session is not None and kept.alive():
                return kept
            strict = kept.session is not None  # it was open: reopened, key checked strictly
            kept.close()
            try:
                kept.connector, kept.session = _open(identity, strict)
            except BaseException:
                with self._lock:
                    if self.kept.get(key) is kept:
                        del self.kept[key]
                raise
            kept.opened = kept.used = time.monotonic()
            return kept

    def _ready_answer(self, identity: dict[str, Any]) -> dict[str, Any]:
        try:
            self._ready(identity)
        except Exception as exc:  # noqa: BLE001 - every failure is an answer
            return _error(exc)
        return {"ok": True}

    def _exec(self, header: dict[str, Any],
              blobs: list[bytes]) -> tuple[dict[str, Any], tuple[bytes, ...]]:
        from runbooks.core.session import HostUnreachable

        try:
            kept = self._ready(header["identity"])
        except Exception as exc:  # noqa: BLE001
            return _error(exc), ()
        data = blobs[0] if header.get("stdin") else None
        try:
            result = kept.session._exec_raw(header["line"], data, header.get("timeout"))
        except HostUnreachable as exc:
            return _error(exc), ()
        finally:
            kept.used = time.monotonic()
        return ({"rc": result.rc, "signal": result.signal},
                (result.stdout.encode(), result.stderr.encode()))

    def drop(self, keys: list[str], addresses: list[str]) -> int:
        """Close the connections named by identity key or by address; how many."""
        with self._lock:
            gone = [k for k, kept in self.kept.items()
                    if k in keys or kept.identity.get("address") in addresses]
            dropped = [self.kept.pop(k) for k in gone]
        for kept in dropped:
            with kept.lock:
                kept.close()
        return len(dropped)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            rows = [{"host": k.identity["name"], "address": k.identity["address"],
                     "user": k.identity["user"], "idle": round(now - k.used, 1),
                     "age": round(now - k.opened, 1), "alive": k.alive()}
                    for k in self.kept.values() if k.session is not None]
        return {"pid": os.getpid(), "keep": self.keep, "connections": rows,
                "idle": round(now - self.last, 1)}

    def close_all(self) -> None:
        with self._lock:
            kept, self.kept = list(self.kept.values()), {}
        for one in kept:
            try:
                one.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close any way
                pass

    # -- serving -----------------------------------------------------------------------------
    def serve_one(self, conn: socket.socket) -> None:
        """Answer one client (closed unanswered when it is another user's)."""
        try:
            if peer_uid(conn) != os.getuid():
                return
            header, blobs = keep_wire.receive(conn)
            answer, out = self.answer(header, blobs)
            keep_wire.send(conn, answer, out)
        except (keep_wire.WireError, OSError, KeyError, TypeError):
            pass
        finally:
            conn.close()
            with self._lock:
                self.active -= 1
                self.last = time.monotonic()

    def idle_out(self) -> bool:
        with self._lock:
            return self.stopping or (
                self.active == 0 and time.monotonic() - self.last > self.keep)

    def _accepted(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        with self._lock:
            self.active += 1
            self.last = time.monotonic()
        threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()

    def serve(self, listener: socket.socket, leave: Callable[[], None] = lambda: None) -> None:
        """Answer clients until idle (or stopped). Then `leave` takes the socket's name away
        (a client from then on starts a new keeper), the clients that connected before it
        are still answered (a request sent is never dropped unanswered: the client could not
        tell it from a command lost on the way), and the connections are closed."""
        listener.settimeout(ACCEPT_POLL)
        while not self.idle_out():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self._accepted(conn)
        leave()
        listener.setblocking(False)
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # BlockingIOError: none left waiting
                break
            self._accepted(conn)
        # the requests under way finish (each bounded by its timeout); a stop waits 5 s
        deadline = time.monotonic() + STOP_WAIT if self.stopping else None
        while self.active and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
        self.close_all()


def _error(exc: BaseException) -> dict[str, Any]:
    from runbooks.core.session import HostKeyRefused, HostUnreachable, SessionError

    if isinstance(exc, NeedsFabric):
        kind = "fabric"
    elif isinstance(exc, HostKeyRefused):
        kind = "refused"
    elif isinstance(exc, HostUnreachable):
        kind = "unreachable"
    elif isinstance(exc, SessionError):
        kind = "session"
    else:
        kind = "keeper"
    return {"error": kind, "message": str(exc) or type(exc).__name__}


def listen(path: Path) -> tuple[socket.socket, Any] | None:
    """The keeper's listening socket at `path` and its lock, or None when another keeper
    holds the lock (it won the start: clients use it)."""
    private_dir(path.parent)
    lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the keeper's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    try:
        path.unlink()  # a socket left by a keeper that died
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(64)
    return listener, lock


def main(argv: list[str]) -> int:
    """`python -m runbooks.core.keep_server SOCKET KEEP_SECONDS`"""
    path, keep = Path(argv[0]), float(argv[1])
    found = listen(path)
    if found is None:
        return 0
    listener, lock = found
    left: list[bool] = []

    def leave() -> None:
        """Unlink the socket, then let the next keeper start (it takes the lock first)."""
        if not left:
            left.append(True)
            try:  # still ours: a new keeper binds only once it holds the lock we hold
                path.unlink()
            except OSError:
                pass
            lock.close()

    try:
        Keeper(keep).serve(listener, leave)
    finally:
        leave()
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
