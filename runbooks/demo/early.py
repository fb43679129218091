"""Connections opened while the rest of demo starts: the SSH handshakes (mostly waiting for
the hosts) run beside the imports of every runbook's plan and probe modules.

`Early(connector, hosts, parallel)` starts opening a session to every host at once, in the
background; whoever asks for a host's session while that open is under way waits for it (its
failure, HostUnreachable, is raised to each of them: a host that is off costs the connect
timeout once, not once per asker). Every later call, and everything else, is the
connector's own (it keeps its sessions, and reconnects after a reboot as it always does).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Early:
    """A connector whose hosts' first sessions are already being opened."""

    def __init__(self, connector: Any, hosts: list[Any], parallel: int) -> None:
        self._connector = connector
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts) or 1)),
                                        thread_name_prefix="connect")
        self._opening: dict[str, Future[Any]] = {
            host.name: self._pool.submit(connector.session, host) for host in hosts}
        self._pool.shutdown(wait=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    def session(self, host: Any) -> Any:
        with self._lock:
            opening = self._opening.get(host.name)
        if opening is None:
            return self._connector.session(host)
        try:
            return opening.result()
        finally:
            with self._lock:
                self._opening.pop(host.name, None)

    def close_all(self) -> None:
        with self._lock:
            opening, self._opening = list(self._opening.values()), {}
        for future in opening:  # never asked for: let it finish, then close with the rest
            try:
                future.result()
            except Exception:  # noqa: BLE001 - a host never used; nothing to close
                continue
        self._connector.close_all()


class Later:
    """A host's session opened only when first used: a plan built ahead from hints needs
    none until it runs a command, so it is planned while the host's connection opens
    (check.check_host). The open runs once; its session, or its failure, is every later
    asker's (a host that is off is tried once)."""

    def __init__(self, open_: Any) -> None:
        self._open = open_
        self._lock = threading.Lock()
        self._session: Any = None
        self._error: BaseException | None = None

    def get(self) -> Any:
        with self._lock:  # a second asker waits for the first one's open
            if self._session is None and self._error is None:
                try:
                    self._session = self._open()
                except Exception as exc:  # noqa: BLE001 - raised to every asker below
                    self._error = exc
            if self._error is not None:
                raise self._error
            return self._session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)
