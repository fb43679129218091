"""Which registry to talk to and how: the target address, plain HTTP or HTTPS, the clients.

Plain HTTP (Docker's convention for insecure registries) for loopback addresses, for the
inventory's own registry and for every HOST:PORT named with --insecure; HTTPS otherwise.
"""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGES = PROJECT / "files" / "registry" / "images.yaml"


class TargetError(ValueError):
    """The target registry cannot be determined (message says what to do)."""


def is_loopback(hostport: str) -> bool:
    """Whether `host[:port]` names a loopback address (or localhost)."""
    if hostport.startswith("["):
        host = hostport[1:].split("]", 1)[0]
    elif hostport.count(":") == 1:
        host = hostport.rsplit(":", 1)[0]
    else:
        host = hostport
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hostport(text: str, what: str) -> str:
    """Validate `HOST:PORT` (the port is required)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"{what} {text!r}: expected HOST:PORT, e.g. 192.168.10.2:5001")
    return text


def inventory_registry(path: str) -> str:
    """`address:port` of the inventory's registry (runbooks.common.registry decides it)."""
    from runbooks.common.registry import registry_endpoint
    from runbooks.core.inventory import InventoryError, load_inventory

    try:
        inv = load_inventory(path)
    except InventoryError as exc:
        raise TargetError(str(exc)) from None
    endpoint = registry_endpoint(inv)
    if endpoint is None:
        raise TargetError(f"{path}: no 'registry:' section; add `registry: {{host: <name>, "
                          "port: 5001}}` or pass --to HOST:PORT")
    return str(endpoint)


def required_inventory(path: str | None) -> str:
    """The inventory path the task passed (greenroom.inventory from invoke.yaml unless
    --inventory); TargetError when there is none."""
    if not path:
        raise TargetError("no inventory: pass --inventory FILE (or set greenroom.inventory "
                          "in invoke.yaml)")
    return path


def resolve_target(to: str | None, inventory: str | None) -> tuple[str, bool]:
    """(HOST:PORT, from_inventory): --to wins, else the inventory's registry (the task
    passes greenroom.inventory from invoke.yaml when --inventory is not given)."""
    if to:
        return check_hostport(to, "--to"), False
    return inventory_registry(required_inventory(inventory)), True


class Clients:
    """One RegistryClient per registry host, created on first use (thread-safe)."""

    def __init__(self, insecure: set[str], jobs: int, attempts: int = 5, backoff: float = 0.25):
        self.insecure, self.jobs = insecure, jobs
        self.attempts, self.backoff = attempts, backoff
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def plain_http(self, host: str) -> bool:
        """Whether `host` is reached over plain HTTP."""
        return is_loopback(host) or host in self.insecure

    def get(self, host: str) -> Any:
        """The client for `host` (the API host, e.g. registry-1.docker.io)."""
        from .client import RegistryClient

        with self._lock:
            if host not in self._clients:
                self._clients[host] = RegistryClient(
                    host, insecure=self.plain_http(host), jobs=self.jobs,
                    attempts=self.attempts, backoff=self.backoff)
            return self._clients[host]

    def close(self) -> None:
        """Close every session."""
        for client in self._clients.values():
            client.session.close()
