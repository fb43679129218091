"""SSH sessions to inventory hosts: opened once per host, reused for every command.

A host reached directly is opened by paramiko with the values Fabric would use
(`session_direct`: `~/.ssh/config`'s HostName, User, Port and IdentityFile, keys, agents);
one behind a gateway (`via`, ProxyJump, ProxyCommand), or any host when a Fabric config file
exists, by Fabric. Commands then run on raw paramiko channels of that connection, which costs
one round trip each and nothing more. Host keys are checked against known_hosts: an unknown key
is refused with its fingerprint unless the user opted into trust on first use, and a changed
key is always refused. When the login user is not root, privileged commands go through sudo;
a sudo password travels only on the command's standard input, never in argv or output.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import shlex
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from runbooks.core import secrets
from runbooks.core.access import access_for
from runbooks.core.session_direct import DirectConnection, SshSettings
from runbooks.core.session_hostkeys import indexed_host_keys

if TYPE_CHECKING:
    import fabric
    import paramiko

    from runbooks.core.inventory import Host, Inventory

T = TypeVar("T")

SUDO_PASSWORD_ENV = "GREENROOM_SUDO_PASSWORD"
PRIVILEGE_TIMEOUT = 30.0  # seconds `sudo -n true` may take while a session is set up
MAX_CHANNELS = 8  # commands at once on one connection: below OpenSSH's MaxSessions 10


class HostUnreachable(Exception):
    """The host could not be reached or the connection was lost."""


class HostKeyRefused(HostUnreachable):
    """The host presented a key that known_hosts does not vouch for."""


class SessionError(Exception):
    """The host was reached, but a session could not be set up (e.g. sudo refused)."""


@dataclass(frozen=True)
class CommandResult:
    """What one remote command returned."""

    rc: int
    stdout: str
    stderr: str
    signal: str | None = None  # the signal that killed it ("TERM"), when one did

    @property
    def ok(self) -> bool:
        return self.rc == 0


def fingerprint(key: paramiko.PKey) -> str:
    """The SHA256 fingerprint of a host key, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _host_key_policy(accept_new: bool, known_hosts: Path, lock: threading.Lock) -> Any:
    import paramiko

    class Policy(paramiko.MissingHostKeyPolicy):
        """Refuse unknown host keys, or record them when trust on first use was asked for."""

        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            if not accept_new:
                raise HostKeyRefused(
                    f"unknown host key for {hostname}: {key.get_name()} {fingerprint(key)}; "
                    "check it against the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
                    "then run again with --accept-new-host-keys to trust it"
                )
            client.get_host_keys().add(hostname, key.get_name(), key)
            with lock:
                known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with known_hosts.open("a") as out:
                    out.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")

    return Policy()


class Connected(Protocol):
    """What a session needs of its connection (a Fabric `Connection` or a
    `DirectConnection`)."""

    transport: Any  # a paramiko Transport once open (Fabric's attribute is untyped)

    def close(self) -> None: ...


class Session:
    """One open connection to one host; `run` executes a shell command there."""

    def __init__(self, host: Host, connection: Connected) -> None:
        self.host = host
        self.connection = connection
        # sshd serves at most MaxSessions channels at once per connection (10 unless
        # configured otherwise) and refuses the next ("open failed"); commands beyond our
        # cap wait for a free channel instead
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS)
        self._sudo: str | None = None  # None: root; "nopasswd"; "password"
        self._password: str | None = None
        self._programs = True  # False once a program sent without `sh -c` did not run

    # -- privilege -------------------------------------------------------------------------
    def setup_privilege(self, password_lock: threading.Lock, shared: dict[str, str]) -> None:
        """Decide how privileged commands run for a non-root login user."""
        if self.host.user == "root":
            return
        if self._exec_raw("sudo -n true", None, timeout=PRIVILEGE_TIMEOUT).ok:
            self._sudo = "nopasswd"
            return
        with password_lock:
            password = shared.get("password") or secrets.from_env(SUDO_PASSWORD_ENV)
            if password is None:
                if not sys.stdin.isatty():
                    raise SessionError(
                        f"{self.host.user}@{self.host.name} needs a sudo password: set "
                        f"{SUDO_PASSWORD_ENV} or run from a terminal to be asked once"
                    )
                password = getpass.getpass(f"sudo password for {self.host.user}: ")
                secrets.register(password)
            shared["password"] = password
        self._sudo, self._password = "password", password
        if not self.run("true").ok:
            raise SessionError(
                f"sudo refused the password for {self.host.user}@{self.host.name}; "
                f"check {SUDO_PASSWORD_ENV} or the user's sudo rights"
            )

    def _wrap(self, command: str, privileged: bool, shell: bool = True) -> tuple[str, str]:
        """The command line to send and the stdin prefix it needs."""
        script = "sh -c " + shlex.quote(command) if shell else command
        if not privileged or self._sudo is None:
            return script, ""
        if self._sudo == "nopasswd":
            return "sudo -n -- " + script, ""
        # -k: always ask, so the password line is always consumed by sudo, never by the command.
        return "sudo -k -S -p '' -- " + script, f"{self._password}\n"

    # -- commands --------------------------------------------------------------------------
    def run(
        self,
        command: str,
        stdin: str | bytes | None = None,
        privileged: bool = True,
        timeout: float | None = None,
        shell: bool = True,
    ) -> CommandResult:
        """Run `command` with POSIX sh on the host; stdin is sent and then closed.
        `shell=False`: `command` is sent as it is, to the login shell (see `run_program`)."""
        line, prefix = self._wrap(command, privileged, shell)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        if prefix:
            data = prefix.encode() + (data or b"")
        return self._exec_raw(line, data, timeout)

    def run_program(self, line: str, accept: Callable[[CommandResult], T | None]) -> T | None:
        """Run one program's command line without `sh -c` around it (privileged: through
        sudo as `run` does): the login shell reads it, so every word of `line` must be one
        that any shell leaves as it is. `accept` turns the result into the caller's answer,
        None when it shows the program did not run as meant (no such program, a shell that
        read the line otherwise): then this returns None, and so does every later call on
        this session without sending anything (the caller's fallback runs instead)."""
        if not self._programs:
            return None
        found = accept(self.run(line, shell=False))
        if found is None:
            self._programs = False
        return found

    def _exec_raw(
        self, line: str, data: bytes | None, timeout: float | None = None
    ) -> CommandResult:
        with self._channels:
            return self._exec_channel(line, data, timeout)

    def _exec_channel(
        self, line: str, data: bytes | None, timeout: float | None = None
    ) -> CommandResult:
        import paramiko

        channel = None
        try:
            transport = self.connection.transport
            if transport is None or not transport.is_active():
                raise HostUnreachable(f"connection to {self.host.name} is closed")
            _record_channel_ends(transport)
            channel = _open_channel(transport)
            channel.settimeout(timeout)
            gate = threading.Lock()
            setattr(channel, SEND_GATE_ATTRIBUTE, gate)
            channel.exec_command(line)
            with gate:  # see _handle_channel_close: our EOF never follows our CLOSE
                if data:
                    _send_stdin(channel, data)
                if not channel.closed:
                    channel.shutdown_write()
            stdout = channel.makefile("rb").read()
            stderr = channel.makefile_stderr("rb").read()
            rc = channel.recv_exit_status()
            channel.close()
        except (TimeoutError, paramiko.SSHException, EOFError, OSError) as exc:
            if channel is not None:
                channel.close()
            if isinstance(exc, TimeoutError) and timeout is not None:
                raise HostUnreachable(
                    f"{self.host.name} did not answer within {timeout:g}s (the host hangs, or "
                    "the command is still running there)") from exc
            raise HostUnreachable(
                f"connection to {self.host.name} lost: {exc or type(exc).__name__}"
            ) from exc
        if rc == -1:
            killed = getattr(channel, EXIT_SIGNAL_ATTRIBUTE, None)
            if killed is not None:  # the host is up; the command died: a failed command
                return CommandResult(128 + _signal_number(killed), stdout.decode(
                    errors="replace"), stderr.decode(errors="replace")
                    + f"\n[greenroom] the command was killed by signal {killed} on "
                    f"{self.host.name}\n", signal=killed)
            why = ("the host closed the channel without an exit status"
                   if getattr(channel, CLOSED_BY_HOST_ATTRIBUTE, False)
                   else "the SSH connection closed")
            raise HostUnreachable(
                f"connection to {self.host.name} lost while a command ran ({why})")
        # not masked here: facts must see the host's real content (a file holding a
        # secret would otherwise never look converged); output and reports mask it
        return CommandResult(rc, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def close(self) -> None:
        self.connection.close()


EXIT_SIGNAL_ATTRIBUTE = "greenroom_exit_signal"
CLOSED_BY_HOST_ATTRIBUTE = "greenroom_closed_by_host"
SEND_GATE_ATTRIBUTE = "greenroom_send_gate"
# how long the transport thread waits for a command's last stdin/EOF to go out before it
# handles the host's CLOSE anyway (bounds a stall should a re-key hold that send up)
SEND_GATE_WAIT = 2.0


def _open_channel(transport: paramiko.Transport, timeout: float = 10.0) -> paramiko.Channel:
    """A new session channel. The host counts our channels that are still closing (it frees
    one only when our CLOSE reaches it), so even below MAX_CHANNELS it may refuse with
    "open failed" (too many sessions): the command has not started, and we open again once
    one of those closes are through (within `timeout`).

    Opens on one connection go one at a time: paramiko keeps a single "last error" per
    connection, which the refused open reads back to raise its ChannelException; with two
    refusals at once, one open took both and the other found none and raised a bare
    SSHException("Unable to open channel."), which is no refusal and was never retried (16
    commands at once on a loaded machine failed that way)."""
    import time

    import paramiko

    deadline = time.monotonic() + timeout
    while True:
        try:
            with _opening_lock(transport):
                return transport.open_session(timeout=timeout)
        except paramiko.ChannelException as exc:
            if exc.code != paramiko.common.OPEN_FAILED_CONNECT_FAILED or \
                    time.monotonic() > deadline:
                raise
            time.sleep(0.05)


OPENING_LOCK_ATTRIBUTE = "greenroom_opening_lock"
_OPENING_LOCKS_GUARD = threading.Lock()


def _opening_lock(transport: paramiko.Transport) -> threading.Lock:
    """The lock that lets one channel open at a time on `transport` (made on first use)."""
    with _OPENING_LOCKS_GUARD:
        lock = getattr(transport, OPENING_LOCK_ATTRIBUTE, None)
        if lock is None:
            lock = threading.Lock()
            setattr(transport, OPENING_LOCK_ATTRIBUTE, lock)
        return cast(threading.Lock, lock)


def _send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    """Send the command's standard input; a command that ended without reading all of it
    (the host closed the channel meanwhile) is not a lost connection."""
    try:
        channel.sendall(data)
    except OSError:
        if not channel.closed:
            raise


def _signal_number(name: str) -> int:
    """SSH names signals without "SIG" (RFC 4254 6.10); 0 for one this Python does not know."""
    import signal

    try:
        return int(signal.Signals["SIG" + name])
    except KeyError:
        return 0


def _record_channel_ends(transport: paramiko.Transport) -> None:
    """Make `transport` record how each of its channels ended, on the channel itself.

    paramiko drops the `exit-signal` request, so a command killed by a signal (the server
    then sends exit-signal instead of exit-status) looked exactly like a lost connection.
    Recorded: the signal's name (`greenroom_exit_signal`) and whether the host closed the
    channel (`greenroom_closed_by_host`; not set when the connection itself went away)."""
    from paramiko.common import MSG_CHANNEL_CLOSE, MSG_CHANNEL_REQUEST

    # paramiko's per-message channel handlers: a private table, not in its type stubs
    owner = cast(_ChannelHandlers, transport)
    table = owner._channel_handler_table
    if table.get(MSG_CHANNEL_REQUEST) is not _handle_channel_request:
        _PARAMIKO_HANDLERS.setdefault("request", table[MSG_CHANNEL_REQUEST])
        _PARAMIKO_HANDLERS.setdefault("close", table[MSG_CHANNEL_CLOSE])
        owner._channel_handler_table = {
            **table, MSG_CHANNEL_REQUEST: _handle_channel_request,
            MSG_CHANNEL_CLOSE: _handle_channel_close}


ChannelHandler = Callable[["paramiko.Channel", "paramiko.Message"], None]


class _ChannelHandlers(Protocol):
    """The part of paramiko's Transport that dispatches channel messages to handlers."""

    _channel_handler_table: dict[int, ChannelHandler]


# paramiko's own handlers (Channel._handle_request, Channel._handle_close), kept from the
# first transport's table: ours do their part and then call them
_PARAMIKO_HANDLERS: dict[str, ChannelHandler] = {}


def _handle_channel_request(channel: paramiko.Channel, message: paramiko.Message) -> None:
    """paramiko's own handler, except for exit-signal (recorded on the channel)."""
    start = message.packet.tell()
    if message.get_text() == "exit-signal":
        message.get_boolean()  # want reply: never for exit-signal
        setattr(channel, EXIT_SIGNAL_ATTRIBUTE, message.get_text())
        return
    message.packet.seek(start)
    _PARAMIKO_HANDLERS["request"](channel, message)


def _handle_channel_close(channel: paramiko.Channel, message: paramiko.Message) -> None:
    """The host closed the channel: paramiko answers with our CLOSE, after which OpenSSH
    frees the channel and DROPS THE WHOLE CONNECTION on any later packet for it ("ieof
    packet referred to nonexistent channel"). paramiko builds a channel's EOF (and stdin
    data) under the channel's lock but sends it after releasing it, so a command that ends
    before our EOF is on the wire (a fast command, a busy machine, many channels at once)
    could see our EOF sent after our CLOSE, and every command of that connection lost with
    it. The send gate makes the two exclusive: the EOF goes out first, or not at all."""
    gate = getattr(channel, SEND_GATE_ATTRIBUTE, None)
    held = gate.acquire(timeout=SEND_GATE_WAIT) if gate is not None else False
    try:
        setattr(channel, CLOSED_BY_HOST_ATTRIBUTE, True)
        _PARAMIKO_HANDLERS["close"](channel, message)
    finally:
        if gate is not None and held:
            gate.release()


def _open(conn: fabric.Connection | DirectConnection) -> None:
    """Open `conn` (once) on a socket tuned for SSH's small packets from the first one on.

    - TCP_NODELAY: without it every small packet we send waits for the host's delayed ACK
      (~40 ms). paramiko opens its own socket inside `SSHClient.connect`, so the option set
      after `open()` came too late for the key exchange and authentication (measured on
      loopback: authentication 52 ms instead of 11 ms per host).
    - Quick ACKs (`_QuickAckSocket`): after authentication OpenSSH sends two small packets
      (its host keys, the key's options), then holds the channel-open confirmation back
      (Nagle) until we ACK them, which our kernel delays ~40 ms: every first command of a
      connection waited for it (channel open 45 ms -> 2 ms on loopback).
    A direct connection gets a socket of ours, connected as paramiko would (each address of
    the host in turn, the connect timeout); one through a gateway (`via`, ProxyJump,
    ProxyCommand) is Fabric's to open: it travels in a channel of the gateway's
    connection, which has both."""
    if conn.is_connected:
        return
    if isinstance(conn, DirectConnection):
        sock = _tuned_socket(socket.create_connection((conn.host, conn.port),
                                                      timeout=conn.connect_timeout))
        try:
            conn.open(sock)
        except BaseException:
            sock.close()
            raise
        return
    if conn.gateway is not None or "sock" in conn.connect_kwargs:
        conn.open()
        return
    sock = _tuned_socket(socket.create_connection((conn.host, conn.port),
                                                  timeout=conn.connect_timeout))
    try:
        conn.connect_kwargs["sock"] = sock
        conn.open()
    except BaseException:
        sock.close()
        raise
    finally:
        conn.connect_kwargs.pop("sock", None)


QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _QuickAckSocket(socket.socket):
    """A TCP socket that ACKs what it received at once (Linux's TCP_QUICKACK is no lasting
    mode: the kernel falls back to delayed ACKs, so it is set again after every read;
    setting it also sends an ACK that is pending)."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        try:
            self.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)  # type: ignore[arg-type]
        except OSError:
            pass  # closed meanwhile: the caller sees that on its next read
        return data


def _tuned_socket(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if QUICKACK is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock
    timeout = sock.gettimeout()
    tuned = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    tuned.settimeout(timeout)
    return tuned


class Connector:
    """Opens sessions to an inventory's hosts, once each, following `via` gateways."""

    def __init__(
        self,
        inventory: Inventory,
        accept_new_host_keys: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        self.inventory = inventory
        self.accept_new = accept_new_host_keys
        self.connect_timeout = connect_timeout
        self.known_hosts = Path(os.path.expanduser("~/.ssh/known_hosts"))
        self._extra_known_hosts: str | None = None
        self._key_filename: str | None = None
        # a plug-in (the virtual lab) may add a key and known_hosts, or refuse with a
        # UsageError (lab not running) before any packet is sent
        access = access_for(inventory)
        self._extra_known_hosts = access.known_hosts
        self._key_filename = access.key_filename
        self._lock = threading.Lock()
        self._known_hosts_lock = threading.Lock()
        self._password_lock = threading.Lock()
        self._shared: dict[str, str] = {}
        self._connections: dict[str, fabric.Connection] = {}
        self._direct: dict[str, DirectConnection] = {}
        self._ssh_settings: SshSettings | None = None
        # hosts others reach through (`via`): their sessions share the gateway's connection
        self._gateways = {h.via for h in inventory.hosts.values() if h.via}
        self._sessions: dict[str, Session] = {}
        self._opening: dict[str, threading.RLock] = {}  # one per host: opened by one thread
        self._host_keys: paramiko.HostKeys | None = None
        self._pkey: paramiko.PKey | bool | None = None
        self._build_lock = threading.Lock()
        # values a runbook shares among the hosts of one run (its one Connector), by key: the
        # k3s join token, read once per run (runbooks/k3s/plan.py); gone with the run
        self.run_values: dict[str, Any] = {}
        self.run_values_lock = threading.Lock()
        # connections kept open between runs by the keeper (keep_client): seconds, 0 = off
        from runbooks.core.keep_paths import keep_seconds

        self.keep = keep_seconds(inventory)
        self._keep_client: Any = None

    def new_run(self) -> None:
        """Forget what the hosts of the last run shared (`run_values`): a caller that runs
        several runbooks over this one Connector (demo.reset's phases: a check that found no
        k3s token yet, then the converge that starts k3s) starts each run afresh."""
        with self.run_values_lock:
            self.run_values.clear()

    def _fabric_config(self) -> Any:
        """A Fabric Config of the connection's own (about 1 ms): Fabric connections that
        share one Config fail at random when many threads open them at once (seen at 100
        hosts: "No attribute or config key found for 'authentication'", Valid keys: [])."""
        from fabric import Config

        return Config()

    def _shared_host_keys(self) -> paramiko.HostKeys:
        with self._lock:
            if self._host_keys is None:
                self._host_keys = indexed_host_keys([
                    path for path in (str(self.known_hosts), self._extra_known_hosts)
                    if path and os.path.exists(path)])
            return self._host_keys

    def _key_kwargs(self) -> dict[str, Any]:
        """The plug-in's key, parsed once per run (paramiko would otherwise read the file and
        try three key classes on it for every host), or its file name if it cannot be."""
        import paramiko

        with self._lock:
            if self._pkey is None:
                try:
                    self._pkey = paramiko.PKey.from_path(str(self._key_filename))
                except (paramiko.SSHException, OSError, ValueError, TypeError):
                    self._pkey = False  # encrypted or unknown: paramiko's own way, per host
            if self._pkey is False:
                return {"key_filename": self._key_filename}
            return {"pkey": self._pkey}

    def _settings(self) -> SshSettings:
        with self._lock:
            if self._ssh_settings is None:
                self._ssh_settings = SshSettings()
            return self._ssh_settings

    def _client_kwargs(self) -> dict[str, Any]:
        """connect_kwargs of every connection: the plug-in's key, if any, and nothing else."""
        if not self._key_filename:
            return {}
        return {**self._key_kwargs(), "look_for_keys": False, "allow_agent": False}

    def _check_host_keys(self, client: paramiko.SSHClient) -> None:
        client.set_missing_host_key_policy(
            _host_key_policy(self.accept_new, self.known_hosts, self._known_hosts_lock)
        )
        # known_hosts is parsed once per run and shared read-only by every client
        # (paramiko checks both its "system" and its own host keys), its lookups indexed.
        client._system_host_keys = self._shared_host_keys()  # type: ignore[attr-defined]  # noqa: SLF001

    def _direct_connection(self, host: Host) -> DirectConnection | None:
        """A (not yet opened) direct connection for `host`, or None when `host` needs Fabric
        (a gateway on either side, ProxyJump/ProxyCommand, a Fabric config file)."""
        with self._lock:
            existing = self._direct.get(host.name)
        if existing is not None:
            return existing
        if host.via or host.name in self._gateways:
            return None
        ssh = self._settings().direct(host.address)
        if ssh is None:
            return None
        conn = DirectConnection.build(host.address, host.user, host.port,
                                      self.connect_timeout, self._client_kwargs(), ssh)
        self._check_host_keys(conn.client)
        with self._lock:
            return self._direct.setdefault(host.name, conn)

    def _connection(self, host: Host) -> fabric.Connection:
        """The (not yet opened) Fabric connection for `host`, gateways included."""
        from fabric import Connection

        with self._lock:
            existing = self._connections.get(host.name)
        if existing is not None:
            return existing
        gateway = None
        if host.via:
            gateway = self._connection(self.inventory.hosts[host.via])
            with self._host_lock(host.via):  # opened once, whichever dependent comes first
                _open(gateway)
        connect_kwargs = self._client_kwargs()
        # built one at a time (CPU work under the GIL anyway): Invoke's config machinery
        # is not safe to run from many threads at once
        with self._build_lock:
            conn = Connection(
                host=host.address,
                user=host.user,
                port=host.port,
                config=self._fabric_config(),
                gateway=gateway,
                connect_timeout=self.connect_timeout,
                connect_kwargs=connect_kwargs,
            )
        self._check_host_keys(conn.client)
        with self._lock:
            return self._connections.setdefault(host.name, conn)

    def _host_lock(self, name: str) -> threading.RLock:
        with self._lock:
            return self._opening.setdefault(name, threading.RLock())

    def session(self, host: Host) -> Session:
        """An open session to `host`; raises HostUnreachable or SessionError.

        Threads asking for the same host at once (a cluster runbook's nodes all reading
        their first server) get the one session: a second open of the same Fabric
        connection would replace its transport mid-handshake, and the first thread's
        commands would go to a connection not yet logged in (the host answers
        "unimplemented", channels time out)."""
        with self._lock:
            existing = self._sessions.get(host.name)
        if existing is not None:
            return existing
        with self._host_lock(host.name):
            with self._lock:
                existing = self._sessions.get(host.name)
            if existing is not None:
                return existing
            session = self._kept_session(host)
            if session is None:
                direct = self._direct_connection(host)
                conn = self.connection(host) if direct is None else self._opened(host, direct)
                session = Session(host, conn)
            session.setup_privilege(self._password_lock, self._shared)
            with self._lock:
                self._sessions[host.name] = session
            return session

    def _kept_session(self, host: Host) -> Session | None:
        """A session on the keeper's connection to `host` (see keep_client), or None: keeping
        is off, or the host is not one the keeper serves (behind or a gateway: `via`), or no
        keeper answers (the run then connects directly)."""
        if not getattr(self, "keep", 0) or host.via or host.name in self._gateways:
            return None
        from runbooks.core import keep_client

        with self._lock:
            if self._keep_client is None:
                self._keep_client = keep_client.KeepClient(self.keep)
            client = self._keep_client
        return client.session(host, keep_client.identity(
            host, key=self._key_filename, known_hosts=str(self.known_hosts),
            extra_known_hosts=self._extra_known_hosts, accept_new=self.accept_new,
            timeout=self.connect_timeout), lambda: self._own_connection(host))

    def _own_connection(self, host: Host) -> Any:
        """This process's own open connection to `host`, for what needs its transport here
        (a port forward) when the host's commands go to the keeper: closed by close_all."""
        direct = self._direct_connection(host)
        return self.connection(host) if direct is None else self._opened(host, direct)

    def connection(self, host: Host) -> fabric.Connection:
        """The open Fabric connection to `host`, host key checked, without the POSIX
        session's setup: for devices whose SSH speaks their own CLI (RouterOS)."""
        return self._opened(host, None)

    def _opened(self, host: Host, conn: Any) -> Any:
        """`conn` (None: the host's Fabric connection) opened, errors named for users."""
        import paramiko

        try:
            if conn is None:
                conn = self._connection(host)
            with self._host_lock(host.name):
                _open(conn)
        except HostUnreachable:
            raise
        except paramiko.BadHostKeyException as exc:
            raise HostKeyRefused(
                f"the host key of {host.name} ({host.address}) has CHANGED: it now offers "
                f"{fingerprint(exc.key)}; refusing to connect. If the host was reinstalled, "
                f"remove the old key with `ssh-keygen -R {host.address}` and run again"
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise HostUnreachable(
                f"authentication failed for {conn.user}@{host.address}: {exc}"
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            where = f"{host.address}:{host.port}" + (f" via {host.via}" if host.via else "")
            raise HostUnreachable(f"cannot connect to {where}: {exc}") from exc
        return conn

    def forget(self, host: Host) -> None:
        """Drop a host's session (after a reboot or a lost connection)."""
        with self._lock:
            session = self._sessions.pop(host.name, None)
            conn = self._connections.pop(host.name, None)
            direct = self._direct.pop(host.name, None)
        kept = getattr(session, "identity", None)
        keeper = getattr(self, "_keep_client", None)
        if kept is not None and keeper is not None:
            keeper.drop(kept)  # the host rebooted: the keeper's connection too
        for closable in (session, conn, direct):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # noqa: BLE001 - closing a dead connection may fail any way
                    pass

    def close_all(self) -> None:
        with self._lock:
            conns: list[Connected] = [*self._connections.values(), *self._direct.values()]
            self._connections.clear()
            self._direct.clear()
            self._sessions.clear()
        for conn in reversed(conns):
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
