"""k3s release files: which assets a cluster needs, the local cache, the lock, the download.

For each architecture the nodes have: the binary (`k3s`, `k3s-arm64`, `k3s-armhf`), the
airgap images (`k3s-airgap-images-<arch>.<format>`) and the release's `sha256sum-<arch>.txt`.
Every file is checked against that checksum file, and against the lock
(`<inventory>.k3s.lock`, committed beside the inventory) once it has the file: so a later
fetch, or a venue without internet, checks against what was pinned, not against whatever
the site serves today. Files live in `~/.cache/greenroom/k3s/<version>/`. Nothing downloaded
is ever executed here, let alone piped into a shell.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runbooks.common import artifacts, pins
from runbooks.common.artifacts import matches, sha256_file
from runbooks.common.pins import parse_sums

BINARY = {"amd64": "k3s", "arm64": "k3s-arm64", "arm": "k3s-armhf"}


class ReleaseError(Exception):
    """A release file is missing, cannot be fetched or does not match its checksum."""


def binary_name(arch: str) -> str:
    return BINARY[arch]


def images_name(arch: str, fmt: str) -> str:
    return f"k3s-airgap-images-{arch}.{fmt}"


def sums_name(arch: str) -> str:
    return f"sha256sum-{arch}.txt"


def assets(arches: tuple[str, ...], fmt: str) -> list[tuple[str, str]]:
    """(arch, asset name) of every file the nodes need, checksum files excluded."""
    return [(a, n) for a in arches for n in (binary_name(a), images_name(a, fmt))]


def cache_dir(version: str) -> Path:
    """~/.cache/greenroom/k3s/<version> (runbooks.common.artifacts)."""
    return artifacts.cache_dir("k3s", version)


def lock_path(inventory_path: Path) -> Path:
    """hosts/lab.yaml -> hosts/lab.k3s.lock."""
    return inventory_path.with_name(inventory_path.stem + ".k3s.lock")


def asset_url(source: str, version: str, name: str) -> str:
    return f"{source.rstrip('/')}/{quote(version, safe='')}/{name}"


# Lock.cached: each lock file's pins as parsed, by (path, inode, size, mtime)
_PARSED: dict[tuple[str, int, int, int], dict[str, dict[str, str]]] = {}
_parsed_guard = threading.Lock()


@dataclass
class Lock:
    """{version: {asset: sha256}} pinned for one inventory."""

    path: Path
    versions: dict[str, dict[str, str]]

    @classmethod
    def read(cls, path: Path) -> Lock:
        versions = pins.read_lock(path, "versions", ReleaseError)
        return cls(path, {str(v): dict(a) for v, a in versions.items()})

    @classmethod
    def cached(cls, path: Path) -> Lock:
        """`read`, parsed once per process while the file stays the same (its inode, size
        and mtime): demo.check asks for it per node several times (the k3s probe's facts
        and verdict, the node's plan). Each caller gets its own copy to change."""
        try:
            st = path.stat()
            key: tuple[str, int, int, int] | None = (str(path), st.st_ino, st.st_size,
                                                     st.st_mtime_ns)
        except OSError:
            key = None
        with _parsed_guard:
            known = _PARSED.get(key) if key is not None else None
        if known is None:
            known = cls.read(path).versions
            if key is not None:
                with _parsed_guard:
                    _PARSED[key] = known
        return cls(path, {v: dict(a) for v, a in known.items()})


    def digest(self, version: str, name: str) -> str | None:
        return self.versions.get(version, {}).get(name)

    def write(self) -> None:
        pins.write_lock(self.path, "k3s release files pinned by `inv k3s.fetch`; commit this "
                        "file", "versions",
                        {v: dict(sorted(a.items())) for v, a in sorted(self.versions.items())})


def download(url: str, target: Path, timeout: float = 60) -> None:
    """Fetch `url` into `target` (atomically; runbooks.common.pins.download)."""
    pins.download(url, target, ReleaseError, timeout=timeout)


@dataclass
class FetchReport:
    fetched: list[str]
    cached: list[str]
    missing: list[str]


def fetch(version: str, arches: tuple[str, ...], fmt: str, source: str | None, lock: Lock,
          check: bool = False, log: Callable[[str], None] = print) -> FetchReport:
    """Make the cache hold every asset, verified; record new digests in `lock` (not written).

    check: download nothing, report what is missing. Raises ReleaseError on any mismatch,
    leaving the cache and lock as they were for the file concerned."""
    folder = cache_dir(version)
    report = FetchReport([], [], [])
    sums: dict[str, dict[str, str]] = {}
    for arch, name in assets(arches, fmt):
        target = folder / name
        pinned = lock.digest(version, name)
        if pinned and matches(target, pinned):
            report.cached.append(name)
            continue
        if check:
            report.missing.append(name)
            continue
        if not source:
            raise ReleaseError(f"{name} of {version} is not in {folder} and no release source "
                               "is set: set cluster.source or greenroom.k3s.source")
        if arch not in sums:
            sums_file = folder / sums_name(arch)
            download(asset_url(source, version, sums_name(arch)), sums_file)
            sums[arch] = parse_sums(sums_file.read_text())
        expected = sums[arch].get(name)
        if expected is None:
            raise ReleaseError(f"{sums_name(arch)} of {version} lists no {name}; is {version} "
                               "a real release, and does it ship that file?")
        if pinned and pinned != expected:
            raise ReleaseError(f"{name}: the release now lists sha256 {expected}, but "
                               f"{lock.path.name} pinned {pinned}; the release changed since "
                               "it was pinned: find out why before trusting it (to re-pin, "
                               f"remove {version} from {lock.path.name})")
        got = pins.download_verified(asset_url(source, version, name), target, expected,
                                     ReleaseError, name, sums_name(arch))
        lock.versions.setdefault(version, {})[name] = got
        report.fetched.append(name)
        log(f"fetched {name} ({target.stat().st_size} bytes, sha256 {got[:12]}...)")
    return report


def cached(version: str, name: str, lock: Lock) -> Path:
    """The cached, verified file; ReleaseError when missing or not what the lock pinned."""
    path = cache_dir(version) / name
    pinned = lock.digest(version, name)
    if pinned is None:
        raise ReleaseError(f"{lock.path.name} pins no {name} for {version}: run "
                           "`inv k3s.fetch` (with internet) and commit the lock")
    if not path.exists():
        raise ReleaseError(f"{path} is missing: run `inv k3s.fetch`")
    if sha256_file(path) != pinned:
        raise ReleaseError(f"{path} does not match the sha256 pinned in {lock.path.name}: "
                           "delete it and run `inv k3s.fetch`")
    return path


_lock_guard = threading.Lock()


def release_lock(inventory: Any, cluster: Any) -> Lock:
    """The inventory's k3s lock, fetching the pinned files once when the cache lacks them
    (a rehearsal on the lab fetches from the lab's release site); StepFailed on a mismatch."""
    from runbooks.core.steps import StepFailed

    with _lock_guard:
        lock = Lock.cached(lock_path(inventory.path))
        before = {v: dict(a) for v, a in lock.versions.items()}
        try:
            fetch(cluster.version, cluster.arches, cluster.images, cluster.source, lock,
                  log=lambda _m: None)
        except ReleaseError as exc:
            raise StepFailed(str(exc)) from None
        if lock.versions != before:
            lock.write()
        return lock


def cached_loader(version: str, name: str, lock: Lock) -> Callable[[], Path]:
    """A function returning the cached, verified file (StepFailed when it is not): called
    only when the file must travel."""
    def load() -> Path:
        from runbooks.core.steps import StepFailed

        try:
            return cached(version, name, lock)
        except ReleaseError as exc:
            raise StepFailed(str(exc)) from None
    return load
