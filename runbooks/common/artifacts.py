"""Pinned release files (k3s binaries and images, the microk8s snap and its assertion): the
local cache, the gateway's copy, the node's copy. Shared by the cluster runbooks.

- This machine's cache: `cache_dir(kind, version)` = ~/.cache/greenroom/<kind>/<version>/;
  `matches(path, digest)` checks a cached file against its pinned sha256 (hashed once, then
  stamped by size and mtime: whatever travels is checked again where it lands).
- The gateway: the site's registry (`registry:` in the inventory, on the gateway) is a
  content-addressed store. `gateway_steps` pushes each pinned file into it once, as the blob
  of a repository (`greenroom/k3s-release`, `greenroom/microk8s-snap`) addressed by the
  sha256 the lock pins (the registry refuses an upload whose digest differs), and tags an OCI
  manifest listing them (so a registry garbage collection keeps them). A registry that does
  not answer yet is no failure: the nodes then get the files over SSH.
- The node: `Artifact` ensures a path holds the pinned sha256. A node that lacks it downloads
  it from the gateway's registry at LAN speed when it reaches it there (curl), else it is
  pushed from this machine over the node's SSH session (the direct-push fallback, decided
  per file from the node's own facts). Either way the sha256 is checked on the node before
  the file replaces anything.
- The node's stamps: after a verified install (or a verified hash of a file already there)
  the node keeps a stamp per file under STAMP_DIR (/var/lib/greenroom/artifacts, never in
  k3s's images directory: k3s imports every file there): the sha256 and the file's size,
  mtime, inode, ctime and device, written atomically. A converged node compares one `stat`
  with the stamp; only when anything differs (or the stamp is missing or unreadable) does it
  read the file again (a 70 MB binary, an images tarball of hundreds of MB). Content changed
  in place with its size and mtime put back (`touch -r`) still changes the ctime; a file
  replaced by another has another inode.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbooks.core.facts import FactResult
from runbooks.core.steps import Action, Change, Step

# -- this machine's cache ---------------------------------------------------------------------

STAMPS = ".verified.json"


class DownloadError(Exception):
    """A file could not be downloaded; the message names the URL and what to check."""


def download(url: str, target: Path, timeout: float = 60) -> None:
    """Fetch `url` into `target` atomically (a temp file beside it, renamed when complete;
    nothing is left behind on failure). Streams: a snap of hundreds of MB never sits in
    memory. The caller checks the digest."""
    import urllib.error  # here: only a fetch downloads (every `inv k3s` imports this module)
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"cannot download {url}: {reason}; check cluster.source (a mirror "
                            "of the release downloads) and the connection") from None


def cache_dir(kind: str, version: str) -> Path:
    """~/.cache/greenroom/<kind>/<version> (or under $XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greenroom" / kind / version


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def matches(path: Path, digest: str) -> bool:
    """True when the cached file `path` has sha256 `digest`. The file is hashed once; its
    size and mtime are then kept beside it (STAMPS), so a run that only checks a converged
    cluster does not read hundreds of megabytes again. Whatever travels is checked again
    where it lands (the node, the gateway's registry), so the stamp never skips a check that
    guards a host."""
    try:
        st = path.stat()
    except OSError:
        return False
    stamps_file = path.parent / STAMPS
    try:
        stamps = json.loads(stamps_file.read_text())
    except (OSError, ValueError):
        stamps = {}
    mark = [st.st_size, st.st_mtime_ns, digest]
    if stamps.get(path.name) == mark:
        return True
    if sha256_file(path) != digest:
        return False
    stamps[path.name] = mark
    tmp = stamps_file.with_name(f".{STAMPS}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(stamps, sort_keys=True) + "\n")
        tmp.replace(stamps_file)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only cache is still a cache
    return True


# -- the node's stamps ------------------------------------------------------------------------

STAMP_DIR = "/var/lib/greenroom/artifacts"
# what a stamp records of the file besides its sha256: size, mtime and ctime (ns), inode, device
STAT = "stat -L -c '%s %.9Y %.9Z %i %d' --"
STAMPED = "greenroom: stamped"


def stamp_path(path: str, folder: str = STAMP_DIR) -> str:
    """The stamp of the node's file `path`: one file per path, its name the path quoted
    (/usr/local/bin/k3s -> %2Fusr%2Flocal%2Fbin%2Fk3s)."""
    return f"{folder}/{urllib.parse.quote(path, safe='')}"


def stamp_test(path: str, digest: str, folder: str = STAMP_DIR) -> str:
    """sh: exit 0 when the stamp of `path` says sha256 `digest` for the file as `stat` sees it
    now (nothing is read but the stamp and the inode; no subshell, one `stat` process)."""
    q = shlex.quote
    return (f"{{ read -r greenroom_stamp < {q(stamp_path(path, folder))}; }} 2>/dev/null && "
            f"[ \"$greenroom_stamp\" = \"{digest} $({STAT} {q(path)} 2>/dev/null)\" ]")


def leftovers_removed(prefix: str) -> str:
    """sh: remove the temp files (`mktemp PREFIX.XXXXXX`) an earlier copy left when its
    connection was cut before its trap ran (`rm -f` passes over a pattern that matches none)."""
    return f"rm -f -- {prefix}??????\n"


def stamp_write(path: str, digest: str, folder: str = STAMP_DIR) -> str:
    """sh (after `path` was checked to hold `digest`): record the stamp atomically, the
    file's stat taken now (a temp file beside the stamp, renamed over it; one an earlier
    write left, its connection cut, is removed first)."""
    q = shlex.quote
    stamp = q(stamp_path(path, folder))
    return (f"mkdir -p {q(folder)}\n"
            + leftovers_removed(f"{stamp}.tmp.") +
            f"st=$({STAT} {q(path)})\n"
            f"stmp=$(mktemp {stamp}.tmp.XXXXXX)\n"
            f'printf "%s\\n" "{digest} $st" > "$stmp"\n'
            f'mv -f "$stmp" {stamp}\n')


def stamp_command(path: str, digest: str, folder: str = STAMP_DIR) -> str:
    """Remote sh: hash `path`; when it holds `digest` and did not change meanwhile, record its
    stamp; else exit 4 and write nothing."""
    q = shlex.quote
    return ("set -e\n"
            f"before=$({STAT} {q(path)})\n"
            f'if ! echo "{digest}  "{q(path)} | sha256sum -c --status -; then echo "sha256 of '
            f'{path} is not {digest}: no stamp written" >&2; exit 4; fi\n'
            f'if [ "$before" != "$({STAT} {q(path)})" ]; then echo "{path} changed while it '
            'was hashed: no stamp written" >&2; exit 4; fi\n'
            + stamp_write(path, digest, folder))


# -- the node's copy --------------------------------------------------------------------------

def upload_command(path: str, digest: str, mode: str, stamps: str = STAMP_DIR) -> str:
    """Remote sh: stdin -> a temp file beside `path`, sha256 checked, then renamed over it and
    its stamp recorded (in `stamps`). A temp file an earlier copy left (its connection cut:
    the shell died before its trap) is removed first."""
    q = shlex.quote
    folder = path.rsplit("/", 1)[0] or "/"
    return ("set -e\n"
            f"mkdir -p {q(folder)}\n"
            + leftovers_removed(f"{q(path)}.greenroom.") +
            f"tmp=$(mktemp {q(path)}.greenroom.XXXXXX)\n"
            "trap 'rm -f \"$tmp\"' EXIT\n"
            'cat > "$tmp"\n'
            f'if ! echo "{digest}  $tmp" | sha256sum -c --status -; then echo "sha256 of '
            f'{path} on the node is $(sha256sum "$tmp" | cut -c1-64), expected {digest}; '
            'nothing was replaced" >&2; exit 4; fi\n'
            f'chmod {q(mode)} "$tmp"\n'
            f'mv -f "$tmp" {q(path)}\n'
            "trap - EXIT\n"
            + stamp_write(path, digest, stamps))


def download_command(path: str, url: str, digest: str, mode: str,
                     stamps: str = STAMP_DIR) -> str:
    """Remote sh: `url` (the gateway's registry, on the LAN) -> a temp file beside `path`,
    sha256 checked on the node, then renamed over it and its stamp recorded."""
    fetch = f"curl -sSf --connect-timeout 5 -o \"$tmp\" {shlex.quote(url)}\n"
    return upload_command(path, digest, mode, stamps).replace('cat > "$tmp"\n', fetch, 1)


FROM_GATEWAY = "greenroom: the gateway has it"


class Artifact(Step):
    """Ensure `path` on the node has sha256 `digest`: else downloaded from `mirror` (the
    gateway's registry) when the node reaches it there, else `local()` pushed over SSH (called
    only when the file must travel). The file is hashed only when its stamp (in `stamps`)
    does not match what `stat` says of it now; `Stamped` (see `steps`) records the stamp of a
    file found right without one."""

    def __init__(self, path: str, local: Callable[[], Path], digest: str, mode: str = "755",
                 label: str = "", notify: tuple[str, ...] = (),
                 mirror: str | None = None, stamps: str = STAMP_DIR) -> None:
        self.path, self.local, self.digest, self.mode = path, local, digest, mode
        self.name = f"Ensure {path} is {label or 'the pinned file'} (sha256 {digest[:12]})"
        self.notify, self.mirror, self.stamps = notify, mirror, stamps

    def steps(self) -> list[Step]:
        """This step and the one that keeps its stamp (which restarts nothing)."""
        return [self, Stamped(self)]

    def facts(self) -> Mapping[str, str]:
        return {"sum": self.fact()}

    def fact(self) -> str:
        """sh: the digest and STAMPED when the stamp matches; else the file's `sha256sum`
        (and with a mirror, FROM_GATEWAY when the file is not right and the gateway has it).
        `Stamped` asks the very same command: the batch runs it once for both."""
        command = f"sha256sum {shlex.quote(self.path)}"
        stamped = (f"{stamp_test(self.path, self.digest, self.stamps)} && "
                   f"printf '%s\\n' '{self.digest}' '{STAMPED}'")
        if self.mirror is None:
            return f"{{ {stamped}; }} || {command}"
        # only a node without the file asks the gateway (a converged node pays nothing)
        return (f"{{ {stamped}; }} || {{ {command} 2>/dev/null | grep -q '^{self.digest} ' && "
                f"echo '{self.digest}'; }} || {{ {command} 2>/dev/null; command -v curl "
                f">/dev/null && curl -sfI --connect-timeout 3 -m 15 -o /dev/null "
                f"{shlex.quote(self.mirror)} && echo '{FROM_GATEWAY}'; true; }}")

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        fact = facts["sum"]
        lines = fact.out.splitlines() if fact.ok else []
        current = lines[0].split()[0] if lines and lines[0].split() \
            and lines[0] != FROM_GATEWAY else None
        if current == self.digest:
            return []
        verb = "replace" if current else "install"
        if self.mirror is not None and FROM_GATEWAY in lines:
            where = self.mirror.split("/v2/", 1)[0]
            return [Change(f"{verb} {self.path} from the gateway's registry {where} (sha256 "
                           f"{self.digest[:12]}, checked on the node)",
                           (Action(download_command(self.path, self.mirror, self.digest,
                                                    self.mode, self.stamps)),))]
        data = self.local().read_bytes()  # only when it must travel
        return [Change(f"{verb} {self.path} ({len(data)} bytes, sha256 {self.digest[:12]})",
                       (Action(upload_command(self.path, self.digest, self.mode, self.stamps),
                               data),))]  # type: ignore[arg-type]  # bytes travel as is


class Stamped(Step):
    """Ensure the node keeps the stamp of an `Artifact`'s file: a file found right without a
    matching stamp (installed before stamps, touched, stamp lost or garbled) is hashed once
    more and stamped, so later runs only `stat` it. Notifies nothing: the file did not change."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.name = f"Ensure the verified sha256 of {artifact.path} is stamped"

    def facts(self) -> Mapping[str, str]:
        return {"sum": self.artifact.fact()}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        lines = facts["sum"].out.splitlines() if facts["sum"].ok else []
        if STAMPED in lines:
            return []
        words = lines[0].split() if lines else []
        if not words or words[0] != self.artifact.digest:
            return []  # the Artifact step installs the file, and its stamp with it
        a = self.artifact
        return [Change(f"stamp {a.path} (hashed: sha256 {a.digest[:12]})",
                       (Action(stamp_command(a.path, a.digest, a.stamps)),))]


# -- the gateway's copy -----------------------------------------------------------------------

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
EMPTY_DIGEST = hashlib.sha256(EMPTY).hexdigest()
DOWN = "greenroom: the registry does not answer"
# curl's limits: a registry on the LAN answers at once; a probe never waits for long
PROBE = "curl -sf --connect-timeout 3 -m 15"
TRANSFER = "curl -sSf --connect-timeout 5"


def registry_base(inventory: Any) -> str | None:
    """http://host:port of the site's registry on the VLAN (where the gateway serves the
    release files to the boards), or None without a registry."""
    from runbooks.common.registry import registry_endpoint

    found = registry_endpoint(inventory)
    return found.url if found else None


def blob_url(base: str, repository: str, digest: str) -> str:
    """Where the registry at `base` (http://host:port) serves the blob `digest` (hex)."""
    return f"{base}/v2/{repository}/blobs/sha256:{digest}"


def manifest(files: Mapping[str, tuple[str, int]], version: str, file_type: str) -> bytes:
    """An OCI manifest whose layers are the files {name: (sha256, size)} of `file_type`."""
    body = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": file_type,
        "config": {"mediaType": CONFIG_TYPE, "digest": f"sha256:{EMPTY_DIGEST}",
                   "size": len(EMPTY)},
        "layers": [{"mediaType": file_type, "digest": f"sha256:{digest}", "size": size,
                    "annotations": {"org.opencontainers.image.title": name}}
                   for name, (digest, size) in sorted(files.items())],
        "annotations": {"org.opencontainers.image.version": version},
    }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def push_blob_command(base: str, repository: str, digest: str) -> str:
    """Remote sh on the registry host: stdin -> a blob upload; the registry refuses it unless
    its sha256 is `digest`."""
    q = shlex.quote
    uploads = q(f"{base}/v2/{repository}/blobs/uploads/")
    return ("set -e\n"
            f"loc=$({TRANSFER} -X POST -D - -o /dev/null {uploads} | tr -d '\\r' | "
            "sed -n 's/^[Ll]ocation: *//p')\n"
            f'[ -n "$loc" ] || {{ echo "the registry at {base} gave no upload location" >&2; '
            "exit 4; }\n"
            f'case "$loc" in http*) ;; *) loc={q(base)}"$loc" ;; esac\n'
            "case \"$loc\" in *\\?*) sep='&' ;; *) sep='?' ;; esac\n"
            f"{TRANSFER} -X PUT -H 'Content-Type: application/octet-stream' -T - "
            f'"$loc${{sep}}digest=sha256:{digest}" -o /dev/null\n')


def put_manifest_command(base: str, repository: str, reference: str) -> str:
    """Remote sh on the registry host: stdin (an OCI manifest) -> tag `reference`."""
    url = shlex.quote(f"{base}/v2/{repository}/manifests/{reference}")
    return (f"{TRANSFER} -X PUT -H 'Content-Type: {MANIFEST_TYPE}' --data-binary @- {url} "
            "-o /dev/null")


def answering(base: str, command: str) -> str:
    """sh on the registry host: `command` when the registry at `base` answers, else print
    DOWN. The address is checked to be on the host first (before the gateway is converged it
    is not, and a connection to it would only time out)."""
    address = base.split("://", 1)[-1].rsplit(":", 1)[0]
    return (f"if ip -o addr show 2>/dev/null | grep -qF ' {address}/' && "
            f"{PROBE} -o /dev/null {shlex.quote(base + '/v2/')}; then {command}; "
            f"else echo '{DOWN}'; fi")


class BlobPushed(Step):
    """Ensure the site's registry serves `local` as blob `digest` of `repository`. A registry
    that does not answer (not set up yet) is no failure: the nodes then get the files
    straight over SSH; `log` (when given) says so."""

    def __init__(self, base: str, repository: str,
                 local: Callable[[], Path] | Callable[[], bytes], digest: str, label: str,
                 log: Callable[[str], None] | None = None,
                 read: tuple[RegistryRead, int] | None = None) -> None:
        self.base, self.repository, self.local, self.digest = base, repository, local, digest
        self.log, self.read = log, read
        self.name = f"Ensure the registry serves {label} (sha256 {digest[:12]})"

    def facts(self) -> Mapping[str, str]:
        if self.read is not None:
            return {"blob": self.read[0].command()}
        url = shlex.quote(blob_url(self.base, self.repository, self.digest))
        return {"blob": answering(self.base, f"{PROBE} -I -o /dev/null {url}")}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        served = (self.read[0].served(facts["blob"], self.read[1]) if self.read is not None
                  else None if DOWN in facts["blob"].out else facts["blob"].ok)
        if served is None:
            if self.log is not None:
                self.log(f"the registry at {self.base} does not answer: the nodes get the "
                         "files over SSH instead (`inv registry.up` serves them from the "
                         "gateway)")
            return []
        if served:
            return []
        got = self.local()
        data = got if isinstance(got, bytes) else got.read_bytes()  # only when it must travel
        return [Change(f"push {len(data)} bytes into {self.base} (sha256 {self.digest[:12]})",
                       (Action(push_blob_command(self.base, self.repository, self.digest),
                               data),))]  # type: ignore[arg-type]  # bytes travel as is


class ManifestTagged(Step):
    """Ensure `repository:reference` names exactly `body` (so the blobs it lists are kept)."""

    def __init__(self, base: str, repository: str, reference: str, body: bytes,
                 read: RegistryRead | None = None) -> None:
        self.base, self.repository, self.reference, self.body = base, repository, reference, body
        self.digest = hashlib.sha256(body).hexdigest()
        self.name = f"Ensure {repository}:{reference} lists the files"
        self.read = read

    def url(self) -> str:
        return f"{self.base}/v2/{self.repository}/manifests/{self.reference}"

    def facts(self) -> Mapping[str, str]:
        if self.read is not None:
            return {"manifest": self.read.command()}
        return {"manifest": answering(self.base, manifest_sum(self.url()))}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        out = facts["manifest"].out
        if self.read is not None:
            current = self.read.manifest_sum(facts["manifest"])
            if current is None or current == self.digest:
                return []
        else:
            current = out.split()[0] if out.split() else ""
            if current == self.digest or DOWN in out:
                return []
        return [Change(f"tag {self.repository}:{self.reference} ({len(self.body)} bytes)",
                       (Action(put_manifest_command(self.base, self.repository,
                                                    self.reference),
                               self.body.decode()),))]


def gateway_steps(base: str, repository: str, file_type: str, version: str, reference: str,
                  files: Mapping[str, tuple[str, Callable[[], Path]]],
                  sizes: Mapping[str, int], log: Callable[[str], None] | None = None,
                  config: bool = True) -> list[Step]:
    """The steps that make the registry at `base` serve `files` {name: (sha256, loader)} as
    blobs of `repository`, listed by the manifest `repository:reference`; `config`: the
    manifests' empty config blob first (once per repository and run). `sizes` {name: bytes}
    go into the manifest. `log` hears when the registry does not answer."""
    blobs: list[tuple[str, Callable[[], Path] | Callable[[], bytes], str]] = (
        [(EMPTY_DIGEST, lambda: EMPTY, "the manifests' empty config")] if config else [])
    blobs += [(digest, loader, f"{name} {version}")
              for name, (digest, loader) in sorted(files.items())]
    read = RegistryRead(base, tuple(blob_url(base, repository, d) for d, _l, _n in blobs),
                        f"{base}/v2/{repository}/manifests/{reference}")
    steps: list[Step] = [
        BlobPushed(base, repository, loader, digest, label,
                   log=log if config and n == 0 else None,
                   read=(read, n))
        for n, (digest, loader, label) in enumerate(blobs)]
    listed = {name: (digest, sizes[name]) for name, (digest, _) in files.items()}
    steps.append(ManifestTagged(base, repository, reference,
                                manifest(listed, version, file_type), read=read))
    return steps


def manifest_sum(url: str) -> str:
    """sh: the sha256 of the OCI manifest the registry serves at `url` (sha256sum's line)."""
    return f"{PROBE} -H 'Accept: {MANIFEST_TYPE}' {shlex.quote(url)} | sha256sum"


@dataclass(frozen=True)
class RegistryRead:
    """What `gateway_steps`' steps read of the registry, as ONE fact command all of them ask
    (a batch runs it once): whether the registry answers, each blob's HEAD status (one curl
    for all of them) and the manifest's sha256 (one more). It was one command per step, each
    checking the address and /v2/ again: four curls, `ip` and `grep` per blob."""

    base: str
    blobs: tuple[str, ...]  # blob URLs, HEADed in this order
    manifest: str  # the manifest's URL

    def command(self) -> str:
        address = self.base.split("://", 1)[-1].rsplit(":", 1)[0]
        # one `-o /dev/null` per URL: curl pairs each with the next URL
        urls = " ".join(f"-o /dev/null {shlex.quote(u)}" for u in (self.base + "/v2/",
                                                                    *self.blobs))
        heads = f"curl -s --connect-timeout 3 -m 15 -I -w '%{{http_code}}\\n' {urls}"
        return (f"if ip -o addr show 2>/dev/null | grep -qF ' {address}/' && "
                f"{{ codes=$({heads}); case \"$codes\" in [23]??*) true ;; *) false ;; esac; }}"
                f"; then printf '%s\\n' \"$codes\"; {manifest_sum(self.manifest)}; "
                f"else echo '{DOWN}'; fi")

    def _lines(self, result: FactResult) -> list[str] | None:
        lines = result.out.splitlines()
        if DOWN in result.out or len(lines) != len(self.blobs) + 2:
            return None
        return lines

    def served(self, result: FactResult, index: int) -> bool | None:
        """Blob `index` is served (HTTP 2xx/3xx to its HEAD, as `curl -f` succeeds); None
        when the registry does not answer."""
        lines = self._lines(result)
        if lines is None:
            return None
        code = lines[1 + index].strip()
        return len(code) == 3 and code[0] in "23"

    def manifest_sum(self, result: FactResult) -> str | None:
        """The served manifest's sha256 ("" when none); None when the registry does not
        answer."""
        lines = self._lines(result)
        if lines is None:
            return None
        words = lines[-1].split()
        return words[0] if words else ""
