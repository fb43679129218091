"""`inv metallb.fetch`: MetalLB's release manifest, downloaded once, pinned by sha256, cached.

The manifest (`config/manifests/metallb-native.yaml`, or `metallb-frr.yaml` with
`metallb.backend: frr`) comes from `<source>/<version>/config/manifests/<file>`: the
section's `source`, else invoke.yaml's `greenroom.metallb.source`. MetalLB publishes no
checksum file, so the first fetch of a version pins the manifest's sha256 in
`<inventory>.metallb.lock` (commit it, after reading the manifest) and every later fetch, on
any machine, must match it. Cached under `~/.cache/greenroom/metallb/<version>/`.
Nothing downloaded is executed; `inv metallb` applies it with kubectl.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runbooks.common import pins

FILES = {"native": "metallb-native.yaml", "frr": "metallb-frr.yaml"}


class FetchError(Exception):
    """The manifest cannot be fetched or does not match its pin; says what to do."""


def manifest_name(backend: str) -> str:
    return FILES[backend]


def manifest_url(source: str, version: str, backend: str) -> str:
    return f"{source.rstrip('/')}/{version}/config/manifests/{manifest_name(backend)}"


def cache_path(version: str, backend: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greenroom" / "metallb" / version / manifest_name(backend)


def lock_path(inventory_path: Path) -> Path:
    """hosts/lab.yaml -> hosts/lab.metallb.lock."""
    return inventory_path.with_name(inventory_path.stem + ".metallb.lock")


def read_lock(path: Path) -> dict[str, dict[str, str]]:
    """The lock's pinned {version: {file: sha256}} ({} before the first fetch)."""
    versions = pins.read_lock(path, "versions", FetchError)
    return {str(v): dict(files) for v, files in versions.items()}


def write_lock(path: Path, versions: dict[str, dict[str, str]]) -> None:
    pins.write_lock(path, "MetalLB manifests pinned by `inv metallb.fetch`; commit this file",
                    "versions",
                    {v: dict(sorted(f.items())) for v, f in sorted(versions.items())})


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Fetched:
    path: Path
    sha256: str
    how: str  # "cached" | "downloaded" | "pinned"


def _download(url: str, timeout: float) -> bytes:
    import urllib.error  # only when downloading: a plan (and demo.check) never loads HTTP
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bytes(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"cannot download {url}: {reason}; check metallb.source (a mirror of "
                         "MetalLB's repository files) and the connection") from None


def fetch(version: str, backend: str, source: str, lock_file: Path,
          timeout: float = 60) -> Fetched:
    """The verified manifest in the cache; pins a first-seen version in `lock_file`."""
    versions = read_lock(lock_file)
    name = manifest_name(backend)
    pinned = versions.get(version, {}).get(name)
    target = cache_path(version, backend)
    if pinned and target.exists() and sha256_of(target.read_bytes()) == pinned:
        return Fetched(target, pinned, "cached")
    url = manifest_url(source, version, backend)
    data = _download(url, timeout)
    digest = sha256_of(data)
    if pinned and digest != pinned:
        raise FetchError(f"{url} has sha256 {digest}, but {lock_file} pins {pinned} for "
                         f"{version}/{name}: nothing was written. If MetalLB really changed "
                         "the file, read the new one and remove the pin to accept it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, target)
    if not pinned:
        versions.setdefault(version, {})[name] = digest
        write_lock(lock_file, versions)
        return Fetched(target, digest, "pinned")
    return Fetched(target, digest, "downloaded")
