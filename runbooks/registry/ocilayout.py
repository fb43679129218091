"""An OCI image layout on disk as a copy target (save) and as a copy source (load).

Layout: `oci-layout`, `index.json`, `blobs/sha256/<hex>`. Every saved image is one entry of
index.json, annotated with its source reference (`org.opencontainers.image.ref.name`, also
`io.containerd.image.name`) and its name in the local registry (`dev.greenroom.target`).
Blobs are written to a temporary file, checked against their digest and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .client import CHUNK, BlobCorrupt, RegistryError
from .images import ImageListError, parse_ref
from .manifests import OCI_INDEX, media_type_of, sha256_digest

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
TARGET_NAME = "dev.greenroom.target"


class LayoutError(RegistryError):
    """The directory is not a usable OCI image layout."""


class Layout:
    """Shared parts: blob paths and index.json entries."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.name = f"layout {self.root}"
        self._lock = threading.Lock()
        self.entries: list[dict] = []

    def blob_path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64:
            raise LayoutError(f"{self.root}: unsupported digest {digest!r}")
        return self.root / "blobs" / "sha256" / hexpart

    def entry_for(self, target: str) -> dict | None:
        """The index.json entry saved under a target name (`repo:tag`)."""
        return next((e for e in self.entries
                     if (e.get("annotations") or {}).get(TARGET_NAME) == target), None)


class LayoutTarget(Layout):
    """Save into a layout directory (created when missing; existing blobs are reused)."""

    def __init__(self, root: Path):
        super().__init__(root)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        index = self.root / "index.json"
        if index.exists():
            self.entries = list(LayoutSource(self.root).entries)

    def head_manifest(self, repo: str, tag: str) -> str | None:
        entry = self.entry_for(f"{repo}:{tag}")
        if entry and self.blob_path(entry["digest"]).exists():
            return entry["digest"]
        return None

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> str | None:
        return None                         # one blob store for all repositories

    def start_upload(self, repo: str) -> str:
        return ""

    def finish_upload(self, repo: str, location: str, digest: str, size: int,
                      chunks: Iterator[bytes] | bytes) -> None:
        self._write_blob(digest, [chunks] if isinstance(chunks, bytes) else chunks)

    def _write_blob(self, digest: str, chunks) -> None:
        final = self.blob_path(digest)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    hasher.update(chunk)
                    fh.write(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                raise BlobCorrupt(f"{final}: written bytes do not hash to {digest}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            os.unlink(tmp)
            raise

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        digest = sha256_digest(body)
        if not self.blob_path(digest).exists():
            self._write_blob(digest, [body])
        if not ref.startswith("sha256:"):
            desc = {"mediaType": media_type, "digest": digest, "size": len(body),
                    "annotations": {TARGET_NAME: f"{repo}:{ref}"}}
            with self._lock:
                self.entries = [e for e in self.entries
                                if (e.get("annotations") or {}).get(TARGET_NAME) != f"{repo}:{ref}"]
                self.entries.append(desc)
        return digest

    def name_entry(self, target: str, source_ref: str, platforms: str) -> None:
        """Annotate a saved image with its source reference and platform selection."""
        entry = self.entry_for(target)
        if entry is not None:
            entry["annotations"].update({REF_NAME: source_ref, CONTAINERD_NAME: source_ref,
                                         "dev.greenroom.platforms": platforms})

    def write_index(self) -> None:
        """Write oci-layout and index.json (atomically)."""
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}
        tmp = self.root / ".index.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.root / "index.json")


class LayoutSource(Layout):
    """Read images from a layout written by `save` (or any layout with ref.name annotations)."""

    def __init__(self, root: Path):
        super().__init__(root)
        index = self.root / "index.json"
        try:
            doc = json.loads(index.read_text())
            layout = json.loads((self.root / "oci-layout").read_text())
        except FileNotFoundError as exc:
            raise LayoutError(f"{self.root} is not an OCI image layout: {exc.filename} is missing;"
                              " point --from at a directory written by registry.save") from None
        except ValueError as exc:
            raise LayoutError(f"{index}: not valid JSON ({exc})") from None
        if layout.get("imageLayoutVersion") != "1.0.0" or not isinstance(doc.get("manifests"),
                                                                          list):
            raise LayoutError(f"{self.root}: unsupported layout version or index.json without "
                              "'manifests'")
        self.entries = doc["manifests"]

    def entry_for_source(self, repo: str, ref: str) -> dict | None:
        """The entry whose source reference (ref.name) is `repo` with tag or digest `ref`."""
        for entry in self.entries:
            name = (entry.get("annotations") or {}).get(REF_NAME, "")
            try:
                src = parse_ref(name)
            except ImageListError:
                continue
            if src.repo == repo and ref in (src.tag, src.digest):
                return entry
        return None

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        if not ref.startswith("sha256:"):
            entry = self.entry_for_source(repo, ref) or self.entry_for(f"{repo}:{ref}")
            if entry is None:
                raise LayoutError(f"{self.root}: no image {repo}:{ref} in index.json")
            ref = entry["digest"]
        body = self._read(ref)
        return body, media_type_of(body, None), ref

    def _read(self, digest: str) -> bytes:
        try:
            body = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise LayoutError(f"{self.root}: blob {digest} is missing; save again") from None
        if sha256_digest(body) != digest:
            raise BlobCorrupt(f"{self.blob_path(digest)} is corrupt (does not hash to {digest})")
        return body

    def blob_chunks(self, repo: str, digest: str, size: int,
                    verify: bool = True) -> Iterator[bytes]:
        """A saved blob, its size (and with `verify` its sha256) checked."""
        path = self.blob_path(digest)
        hasher, seen = hashlib.sha256(), 0
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise LayoutError(f"{self.root}: blob {digest} is missing; save again") from None
        with fh:
            held = b""
            while chunk := fh.read(CHUNK):
                if verify:
                    hasher.update(chunk)
                seen += len(chunk)
                if held:
                    yield held
                held = chunk
        if seen != size or (verify and "sha256:" + hasher.hexdigest() != digest):
            raise BlobCorrupt(f"{path} is corrupt: {seen} bytes, expected {size} hashing to "
                              f"{digest}")
        if held:
            yield held
