"""`inv microk8s.fetch`: the channel's microk8s snap and its assertion, pinned, cached.

Where the files come from:
- no `cluster.source`: `snap download microk8s --channel=<channel>` on this machine (it needs
  snapd and the store; run it once on a machine with internet);
- `cluster.source: <url>`: a mirror of such downloads laid out as
  `<url>/<track>/<risk>/{SHA256SUMS, microk8s_<rev>.snap, microk8s_<rev>.assert}` (the lab's
  release site serves one on 127.0.0.1:18231/microk8s).

Every file is checked three ways before it lands in `~/.cache/greenroom/microk8s/<rev>/`: the
snap's SHA3-384 against the `snap-sha3-384` its assertion states for that revision (what snapd
checks at install), the mirror's SHA256SUMS when there is one, and the lock
(`<inventory>.microk8s.lock`, commit it beside the inventory): the first fetch of a channel pins
its revision and both files' sha256; later fetches, on any machine, must match, and a channel
that moved on is refused until `--update` re-pins it. Nothing downloaded is executed here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runbooks.common import artifacts, pins
from runbooks.common.artifacts import matches

SNAP = re.compile(r"^microk8s_(\d+)\.snap$")


class FetchError(Exception):
    """The files cannot be fetched or do not match their pins; the message says what to do."""


def cache_dir(revision: str) -> Path:
    """~/.cache/greenroom/microk8s/<revision> (runbooks.common.artifacts)."""
    return artifacts.cache_dir("microk8s", revision)


def lock_path(inventory_path: Path) -> Path:
    """hosts/lab-microk8s.yaml -> hosts/lab-microk8s.microk8s.lock."""
    return inventory_path.with_name(inventory_path.stem + ".microk8s.lock")


def names(revision: str) -> tuple[str, str]:
    """The snap and assertion file names `snap download` gives a revision."""
    return f"microk8s_{revision}.snap", f"microk8s_{revision}.assert"


def sha3_384_b64(path: Path) -> str:
    """The digest snapd writes in `snap-sha3-384:` (URL-safe base64, no padding)."""
    digest = hashlib.sha3_384()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Pin:
    """What the lock pins for one channel."""

    revision: str
    files: dict[str, str]  # name -> sha256


@dataclass
class Lock:
    """{channel: Pin} for one inventory."""

    path: Path
    channels: dict[str, Pin]

    @classmethod
    def read(cls, path: Path) -> Lock:
        channels = pins.read_lock(path, "channels", FetchError)
        out = {}
        for channel, pin in channels.items():
            try:
                out[str(channel)] = Pin(str(pin["revision"]), dict(pin["files"]))
            except (KeyError, TypeError):
                raise FetchError(f"{path}: channel {channel!r} needs revision and files; "
                                 "restore it from git") from None
        return cls(path, out)

    def write(self) -> None:
        pins.write_lock(self.path, "microk8s snaps pinned by `inv microk8s.fetch`; commit "
                        "this file", "channels",
                        {c: {"revision": p.revision, "files": dict(sorted(p.files.items()))}
                         for c, p in sorted(self.channels.items())})


@dataclass
class Fetched:
    """The cached files of a channel and how they got there."""

    revision: str
    files: dict[str, Path]   # name -> cached path
    digests: dict[str, str]  # name -> sha256
    how: str                 # "cached" | "downloaded" | "pinned"


def cached(channel: str, lock: Lock) -> Fetched | None:
    """The pinned files when the cache holds all of them, verified; else None."""
    pin = lock.channels.get(channel)
    if pin is None:
        return None
    folder = cache_dir(pin.revision)
    paths = {name: folder / name for name in pin.files}
    if not all(matches(p, pin.files[n]) for n, p in paths.items()):
        return None
    return Fetched(pin.revision, paths, dict(pin.files), "cached")


def assertion_facts(text: str) -> dict[str, str]:
    """`snap-revision` and `snap-sha3-384` of the snap-revision assertion in `text`."""
    for block in re.split(r"\n\n(?=type: )", text):
        if re.search(r"^type: snap-revision$", block, re.M):
            facts = dict(re.findall(r"^(snap-revision|snap-sha3-384): (\S+)$", block, re.M))
            if len(facts) == 2:
                return facts
    return {}


def verify_pair(snap: Path, assertion: Path, revision: str) -> None:
    """FetchError unless `assertion` states `revision` and the snap's SHA3-384."""
    facts = assertion_facts(assertion.read_text(errors="replace"))
    if not facts:
        raise FetchError(f"{assertion.name} holds no snap-revision assertion: not what "
                         "`snap download` writes; nothing was cached")
    if facts["snap-revision"] != revision:
        raise FetchError(f"{assertion.name} is for revision {facts['snap-revision']}, not "
                         f"{revision}; nothing was cached")
    if facts["snap-sha3-384"] != sha3_384_b64(snap):
        raise FetchError(f"{snap.name} does not match the SHA3-384 its assertion states "
                         "(a corrupt or substituted download); nothing was cached")


def _snap_download(channel: str, into: Path, timeout: float) -> None:
    """`snap download microk8s --channel=C` run in `into` (where it writes both files; no
    --target-directory or --revision: older snapd lacks the one, the store grants the other
    to the snap's developers only)."""
    if shutil.which("snap") is None:
        raise FetchError("no `snap` command on this machine: run `inv microk8s.fetch` where "
                         "snapd runs and the store is reachable, or set cluster.source to a "
                         "mirror of the downloads")
    argv = ["snap", "download", "microk8s", f"--channel={channel}"]
    try:
        done = subprocess.run(argv, cwd=into, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(f"`{' '.join(argv)}` took more than {timeout:.0f} s") from None
    if done.returncode != 0:
        raise FetchError(f"`{' '.join(argv)}` failed: "
                         f"{(done.stderr or done.stdout).strip()[-400:]}")


MIRROR_HINT = " (a mirror of `snap download` results)"


def _mirror_download(source: str, channel: str, revision: str | None, into: Path,
                     timeout: float) -> None:
    base = f"{source.rstrip('/')}/{channel}"
    pins.download(f"{base}/SHA256SUMS", into / "SHA256SUMS", FetchError, MIRROR_HINT, timeout)
    sums = pins.parse_sums((into / "SHA256SUMS").read_text(errors="replace"))
    (into / "SHA256SUMS").unlink()
    offered = sorted((m.group(1) for m in map(SNAP.match, sums) if m), key=int)
    if not offered:
        raise FetchError(f"{base}/SHA256SUMS lists no microk8s_<revision>.snap")
    want = revision or offered[-1]
    for name in names(want):
        if name not in sums:
            raise FetchError(f"{base}/SHA256SUMS does not list {name} (the channel now "
                             f"offers revision {offered[-1]}); run `inv microk8s.fetch "
                             "--update` to pin it")
        pins.download_verified(f"{base}/{name}", into / name, sums[name], FetchError,
                               f"{base}/{name}", "the mirror's SHA256SUMS", MIRROR_HINT,
                               timeout)


def fetch(channel: str, source: str | None, lock: Lock, update: bool = False,
          timeout: float = 600) -> Fetched:
    """The channel's verified files in the cache; a first-seen channel (or `update`) pinned
    in `lock` (written)."""
    pin = None if update else lock.channels.get(channel)
    if pin is not None:
        have = cached(channel, lock)
        if have is not None:
            return have
    base = cache_dir("x").parent
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=base))  # same file system: renames
    try:
        if source:
            _mirror_download(source, channel, pin.revision if pin else None, tmp, timeout)
        else:
            _snap_download(channel, tmp, timeout)
        snaps = sorted(p.name for p in tmp.iterdir() if SNAP.match(p.name))
        if len(snaps) != 1:
            raise FetchError(f"expected one microk8s_<revision>.snap, got {snaps or 'none'}")
        revision = SNAP.match(snaps[0]).group(1)  # type: ignore[union-attr]
        snap_name, assert_name = names(revision)
        if not (tmp / assert_name).is_file():
            raise FetchError(f"{assert_name} is missing beside {snap_name}: `snap download` "
                             "writes both; nothing was cached")
        if pin is not None and revision != pin.revision:
            raise FetchError(f"{channel} now offers revision {revision}, but "
                             f"{lock.path.name} pins {pin.revision}; nothing was cached. Run "
                             "`inv microk8s.fetch --update` to pin it (after reading its "
                             "release notes), or copy the pinned files from a machine that "
                             "has them into ~/.cache/greenroom/microk8s/")
        verify_pair(tmp / snap_name, tmp / assert_name, revision)
        digests = {n: artifacts.sha256_file(tmp / n) for n in (snap_name, assert_name)}
        if pin is not None and digests != pin.files:
            raise FetchError(f"the downloaded files do not match the sha256 {lock.path.name} "
                             f"pins for {channel} revision {revision}; nothing was cached")
        folder = cache_dir(revision)
        folder.mkdir(parents=True, exist_ok=True)
        for name in digests:
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = {n: folder / n for n in digests}
    if pin is None:
        lock.channels[channel] = Pin(revision, digests)
        lock.write()
        return Fetched(revision, files, digests, "pinned")
    return Fetched(revision, files, digests, "downloaded")
