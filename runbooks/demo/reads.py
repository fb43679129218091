"""demo.check's shared cluster reads: a `kubectl get` that several parts run on the same host
(the speaker double's plan on every node, the audience path's, metallb's probe: each reads the
cluster's Services on its first server) runs once per demo.check, and its answer is handed to
every part that asks, including the host's own fact batch.

demo.check only reads, and all its parts read the cluster within the same second or two, so
one answer per command is what each of them would have got. Only plain `kubectl get`
commands (no shell syntax, no stdin) are shared; anything else runs as asked.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from runbooks.common.kubectl import ON_NODE
from runbooks.core.facts import FactResult


def read_pattern(on_node: Mapping[str, str]) -> re.Pattern[str]:
    """A plain `kubectl get`, by a plain kubectl or by the one each distribution runs on its
    nodes (`on_node`: common.kubectl.ON_NODE), with no shell syntax after it."""
    kubectls = sorted({*on_node.values(), "kubectl"}, key=len, reverse=True)
    return re.compile(rf"(?:{'|'.join(map(re.escape, kubectls))}) get [^;&|<>`$()\n\\]*")


READ = read_pattern(ON_NODE)


def shareable(command: str) -> bool:
    """A read-only `kubectl get` with nothing else in the command."""
    return READ.fullmatch(command.strip()) is not None


class SharedReads:
    """A connector whose sessions run each shareable command once for the whole check."""

    def __init__(self, connector: Any) -> None:
        self._connector = connector
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], threading.Lock] = {}
        self._done: dict[tuple[str, str], Any] = {}
        self._started: set[tuple[str, str]] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    def session(self, host: Any) -> _Shared:
        return _Shared(self, host.name, self._connector.session(host))

    def run(self, host: str, session: Any, command: str) -> Any:
        key = (host, command)
        with self._lock:
            if key in self._done:
                return self._done[key]
            gate = self._pending.setdefault(key, threading.Lock())
        with gate:  # a second asker waits for the first one's answer
            with self._lock:
                if key in self._done:
                    return self._done[key]
            done = session.run(command)
            with self._lock:
                self._done[key] = done
            return done

    def start(self, host: Any, command: str) -> None:
        """Read `command` on `host` now, in the background, once (see `fact`)."""
        key = (host.name, command)
        with self._lock:
            if key in self._done or key in self._started:
                return
            self._started.add(key)

        def read() -> None:
            try:
                self.run(host.name, self._connector.session(host), command)
            except Exception:  # noqa: BLE001 - `fact` reads it again and raises
                return

        threading.Thread(target=read, name=f"read {host.name}", daemon=True).start()

    def claimed(self, host: str) -> set[str]:
        """The commands on `host` already read or being read (`fact` answers them)."""
        with self._lock:
            return {c for (name, c) in (*self._done, *self._started) if name == host}

    def fact(self, host: Any, command: str) -> FactResult:
        """`command`'s answer on `host`: waits for a read under way, reads it if none."""
        done = self.run(host.name, self._connector.session(host), command)
        return FactResult(done.rc, done.stdout)

    def answered(self, host: str) -> dict[str, FactResult]:
        """The commands already answered on `host`, as facts (by command)."""
        with self._lock:
            return {command: FactResult(done.rc, done.stdout)
                    for (name, command), done in self._done.items() if name == host}


class _Shared:
    """One host's session: shareable commands through SharedReads, the rest as they are."""

    def __init__(self, reads: SharedReads, host: str, session: Any) -> None:
        self._reads, self._host, self._session = reads, host, session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, command: str, stdin: str | bytes | None = None) -> Any:
        if stdin is None and shareable(command):
            return self._reads.run(self._host, self._session, command)
        return self._session.run(command, stdin)
