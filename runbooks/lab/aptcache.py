"""A once-per-machine cache of the Debian packages lab guests fetch through the apt proxy.

Only package files under an archive's ``pool/`` (``.deb``/``.udeb``) are kept: a pool path
names one version of one package and never changes, so it needs no freshness check. Index
files (InRelease, Packages...) are never cached. Trust is apt's: it checks every package
against the hashes of the signed indexes it fetched itself, so a corrupt cache entry is a
hash-sum error in the guest, never a silently installed file.

Layout: ``<root>/<host>/<url path>`` (default root ``~/.cache/greenroom/apt``). Entries are
written to a temporary file beside the target and renamed into place only when the whole
body (as long as the upstream's Content-Length) arrived, so concurrent readers, writers
and processes see a complete file or none. Disk is bounded: after each store the least
recently used entries are removed until the cache is under its limit.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_BYTES = 2 * 1024**3
STALE_TEMP_SECONDS = 3600
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~%-]*$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_TEMP_PREFIX = ".part-"


def cache_key(host: str, path: str) -> str | None:
    """``host/path`` of a cacheable package file, or None (indexes, odd or unsafe paths).

    >>> cache_key("mirror", "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb")
    'mirror/debian/pool/main/h/hello/hello_2.10-3_amd64.deb'
    """
    if not _HOST.match(host) or "?" in path or "#" in path:
        return None
    segments = path.split("/")
    if segments[0] != "" or len(segments) < 4:
        return None
    segments = segments[1:]
    if not all(_SEGMENT.match(s) for s in segments) or "pool" not in segments[:-2]:
        return None
    if not segments[-1].endswith((".deb", ".udeb")):
        return None
    return "/".join([host.lower(), *segments])


class DebCache:
    """The package cache under ``root``, at most ``max_bytes`` of entries."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = root
        self.max_bytes = max_bytes
        self._evict_lock = threading.Lock()

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        return self.root / key

    def open(self, key: str) -> tuple[BinaryIO, int] | None:
        """The entry (file, size) or None; a hit marks it recently used."""
        target = self.path(key)
        try:
            handle = open(target, "rb")  # noqa: SIM115 - the caller closes it
        except OSError:
            return None
        size = os.fstat(handle.fileno()).st_size
        with suppress(OSError):
            os.utime(target)
        return handle, size

    @contextmanager
    def writer(self, key: str, length: int) -> Iterator[BinaryIO]:
        """A temporary file for ``key``, renamed into place only when the block exits
        cleanly with exactly ``length`` bytes written; otherwise it is removed."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f"{_TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-" \
                               f"{target.name}"
        handle = open(temp, "wb")  # noqa: SIM115 - closed below
        try:
            yield handle
            handle.flush()
            if handle.tell() != length:
                raise OSError(f"{key}: got {handle.tell()} of {length} bytes")
            os.fsync(handle.fileno())
            handle.close()
            os.replace(temp, target)
        finally:
            handle.close()
            temp.unlink(missing_ok=True)
        self.evict()

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every complete entry; stale temporaries removed."""
        found = []
        now = time.time()
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(folder) / name
                try:
                    info = path.stat()
                except OSError:
                    continue
                if name.startswith(_TEMP_PREFIX):
                    if now - info.st_mtime > STALE_TEMP_SECONDS:
                        path.unlink(missing_ok=True)
                    continue
                if name != ".lock":
                    found.append((info.st_mtime, info.st_size, path))
        return found

    def evict(self) -> list[Path]:
        """Remove least recently used entries until the cache fits ``max_bytes``."""
        removed: list[Path] = []
        self.root.mkdir(parents=True, exist_ok=True)
        with self._evict_lock, open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # other proxies share this cache
            entries = sorted(self.entries())
            total = sum(size for _used, size, _path in entries)
            for _used, size, path in entries:
                if total <= self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
                removed.append(path)
        return removed
