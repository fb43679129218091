"""Direct paramiko connections for hosts whose SSH setup needs nothing of Fabric's own.

Fabric builds a `Config` and a `Connection` per host (about 1.8 ms of CPU each, and the
Config reads and parses the SSH config files again every time), one at a time because
Invoke's config code is not thread-safe. For a host reached directly (no `via`, no
ProxyJump or ProxyCommand, and no Fabric config file on this machine that could change
what Fabric does) the same connection costs a lookup in the SSH config parsed once per run:
`SshSettings` reads `~/.ssh/config` and `/etc/ssh/ssh_config` as Fabric does (same parser,
same order, so the same HostName, User, Port, IdentityFile and ConnectTimeout answers), and
`DirectConnection` hands paramiko's `SSHClient.connect` the arguments Fabric's `open()`
would. Host keys, authentication (keys, agent) and algorithms are paramiko's in both paths,
checked by the same policy; nothing is negotiated differently.
"""

from __future__ import annotations

import getpass
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"
USER_SSH_CONFIG = "~/.ssh/config"
# Fabric's own config files (Invoke's search: /etc/fabric.* and ~/.fabric.*): when one
# exists, every connection stays Fabric's, so whatever it sets keeps working as before
FABRIC_CONFIG_FILES = tuple(f"{prefix}fabric.{suffix}" for prefix in ("/etc/", "~/.")
                            for suffix in ("yaml", "yml", "json", "py"))
# what only Fabric can do: open the connection through another host or a command
NEEDS_FABRIC = ("proxyjump", "proxycommand")


class SshSettings:
    """The machine's SSH client configuration, read once per run the way Fabric reads it
    (user file first, then the system file, into one paramiko `SSHConfig`)."""

    def __init__(self, user_path: str = USER_SSH_CONFIG,
                 system_path: str = SYSTEM_SSH_CONFIG,
                 fabric_files: tuple[str, ...] = FABRIC_CONFIG_FILES) -> None:
        import paramiko

        self.fabric_configured = next(
            (path for path in map(os.path.expanduser, fabric_files) if os.path.exists(path)),
            None)
        self.config = paramiko.SSHConfig()
        for path in (os.path.expanduser(user_path), os.path.expanduser(system_path)):
            if os.path.isfile(path):
                with open(path) as text:
                    self.config.parse(text)
        self._lock = threading.Lock()

    def lookup(self, address: str) -> dict[str, Any]:
        """The settings for `address` (`Host`/`Match` blocks applied, as Fabric gets them)."""
        with self._lock:
            return dict(self.config.lookup(address))

    def direct(self, address: str) -> dict[str, Any] | None:
        """The settings for `address` when paramiko alone can connect to it, else None."""
        if self.fabric_configured:
            return None
        found = self.lookup(address)
        return None if any(key in found for key in NEEDS_FABRIC) else found


@dataclass
class DirectConnection:
    """The parts of a Fabric `Connection` a session uses, on paramiko's `SSHClient` alone.

    Built with the values Fabric's `Connection.__init__` resolves (host name, user, port,
    connect timeout, `connect_kwargs` with the SSH config's identity files appended)."""

    host: str
    user: str
    port: int
    connect_timeout: int | None
    connect_kwargs: dict[str, Any]
    client: paramiko.SSHClient
    transport: paramiko.Transport | None = field(default=None)
    gateway: None = None

    @classmethod
    def build(cls, address: str, user: str | None, port: int | None,
              connect_timeout: float | None, connect_kwargs: dict[str, Any],
              ssh: dict[str, Any]) -> DirectConnection:
        """As Fabric: explicit user/port win over the SSH config, which wins over the
        defaults (the local user, 22); identity files are added to the keys given."""
        import paramiko

        kwargs = dict(connect_kwargs)
        keys = kwargs.get("key_filename", [])
        keys = [keys] if isinstance(keys, str) else list(keys)
        keys += ssh.get("identityfile", [])
        if keys:
            kwargs["key_filename"] = keys
        if connect_timeout is None and "connecttimeout" in ssh:
            connect_timeout = ssh["connecttimeout"]
        return cls(
            host=ssh.get("hostname", address),
            user=user or ssh.get("user") or getpass.getuser(),
            port=port or int(ssh.get("port", 22)),
            connect_timeout=None if connect_timeout is None else int(connect_timeout),
            connect_kwargs=kwargs,
            client=paramiko.SSHClient(),
        )

    @property
    def is_connected(self) -> bool:
        return self.transport.is_active() if self.transport is not None else False

    def open(self, sock: Any) -> None:
        """Log in over `sock` (connected to host:port) with the arguments Fabric's `open()`
        gives `SSHClient.connect`."""
        kwargs = dict(self.connect_kwargs, username=self.user, hostname=self.host,
                      port=self.port, sock=sock)
        if self.connect_timeout:
            kwargs["timeout"] = self.connect_timeout
        if "key_filename" in kwargs and not kwargs["key_filename"]:
            del kwargs["key_filename"]
        self.client.connect(**kwargs)
        self.transport = self.client.get_transport()

    def close(self) -> None:
        self.client.close()
        self.transport = None
