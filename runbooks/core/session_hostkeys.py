"""known_hosts for a whole run, parsed once and looked up by name instead of by a scan.

paramiko's `HostKeys.lookup` compares the host with every entry of known_hosts, and for each
hashed entry (`|1|salt|hash`, what Debian's `HashKnownHosts yes` writes) decodes the salt
and computes an HMAC-SHA1; a connection asks it about ten times (the key types to offer,
the key the host showed). With 100 hosts and as many entries that is O(hosts x entries) of
Python on the run's critical path. `IndexedHostKeys` answers from a dict of the plain
names, matches the hashed entries (salts decoded once per run) once per host name and
remembers the answer. It matches exactly as paramiko does (a plain name equal to the host,
or a hashed name whose HMAC matches; no patterns), returns paramiko's own answer built from
the matching entries only, and is shared read-only by every connection of a run (trust on
first use adds new keys to each client's own HostKeys, not to this one).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from hashlib import sha1
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

HASHED = "|1|"


def indexed_host_keys(paths: list[str]) -> paramiko.HostKeys:
    """A HostKeys holding every entry of the known_hosts files `paths`, in order, whose
    lookups are indexed (see the module's docstring)."""
    keys = _indexed_class()()
    for path in paths:
        keys.load(path)
    return keys


_CLASS: list[type] = []


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _salted(name: str) -> tuple[bytes, bytes] | None:
    """(salt, digest) of a hashed known_hosts name; None for a plain name, or for a hashed
    one paramiko can never match: `hash_host(host, name)` re-encodes salt and HMAC and
    compares the text, so only a name in that canonical form matches (paramiko raises on a
    salt that is not base64; here such an entry matches nothing). Decoded once per run."""
    if not name.startswith(HASHED):
        return None
    parts = name.split("|")
    if len(parts) != 4:
        return None
    try:
        salt, digest = (base64.b64decode(part) for part in parts[2:])
    except (binascii.Error, ValueError):
        return None
    if f"{HASHED}{_b64(salt)}|{_b64(digest)}" != name:
        return None
    return salt, digest


def _indexed_class() -> type[paramiko.HostKeys]:
    """The class, built on first use: the engine imports paramiko only when it connects."""
    if _CLASS:
        return _CLASS[0]
    import paramiko

    class Matched(paramiko.HostKeys):  # type: ignore[misc]
        """Entries already known to match: paramiko's lookup without matching them again."""

        _entries: list[Any]  # paramiko's HostKeyEntry list (private: not in its stubs)

        def _hostname_matches(self, hostname: str, entry: Any) -> bool:
            return True

    class IndexedHostKeys(paramiko.HostKeys):  # type: ignore[misc]
        _entries: list[Any]  # paramiko's HostKeyEntry list (private: not in its stubs)

        def __init__(self, filename: str | None = None) -> None:
            self._index_lock = threading.Lock()
            self._indexed: tuple[int, int] | None = None  # (list id, length) when indexed
            self._plain: dict[str, list[int]] = {}
            self._hashed: list[tuple[int, bytes, bytes]] = []
            self._found: dict[str, list[Any]] = {}
            super().__init__(filename)

        def lookup(self, hostname: str) -> Any:
            entries = self._matching(hostname)
            if not entries:
                return None
            # paramiko's own answer (its mapping of key type to key), from these entries only
            view = Matched()
            view._entries = list(entries)  # noqa: SLF001
            return view.lookup(hostname)

        def _matching(self, hostname: str) -> list[Any]:
            with self._index_lock:
                if self._indexed != (id(self._entries), len(self._entries)):
                    self._build()
                found = self._found.get(hostname)
                if found is None:
                    positions = set(self._plain.get(hostname, ()))
                    if not hostname.startswith(HASHED):
                        name = hostname.encode()
                        for position, salt, digest in self._hashed:
                            if position not in positions and hmac.compare_digest(
                                    hmac.new(salt, name, sha1).digest(), digest):
                                positions.add(position)
                    found = [self._entries[p] for p in sorted(positions)]
                    self._found[hostname] = found
                return found

        def _build(self) -> None:
            self._plain, self._hashed, self._found = {}, [], {}
            for position, entry in enumerate(self._entries):
                for name in entry.hostnames:
                    self._plain.setdefault(name, []).append(position)
                    salted = _salted(name)
                    if salted is not None:
                        self._hashed.append((position, *salted))
            self._indexed = (id(self._entries), len(self._entries))

    _CLASS.append(IndexedHostKeys)
    return IndexedHostKeys
