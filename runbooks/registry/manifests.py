"""Manifest media types, platform selection and the blobs a manifest references (pure)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
ACCEPT = ", ".join(INDEX_TYPES + IMAGE_TYPES)
DEFAULT_PLATFORM = "linux/arm64"


class ManifestError(ValueError):
    """A manifest we cannot use (unsupported type, missing platform, bad JSON)."""


def sha256_digest(data: bytes) -> str:
    """The `sha256:<hex>` digest of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    """os/architecture[/variant]; arm64 without a variant equals arm64/v8."""

    os: str
    arch: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.arch, self.variant) if p)

    def matches(self, entry: dict) -> bool:
        """Whether an index entry's `platform` object is this platform."""
        if entry.get("os") != self.os or entry.get("architecture") != self.arch:
            return False
        variant = entry.get("variant") or None
        if self.arch == "arm64":
            return (variant or "v8") == (self.variant or "v8")
        return self.variant is None or variant == self.variant


def parse_platform(text: str) -> Platform:
    """Parse `linux/arm64`, `linux/arm/v7`, `linux/amd64`."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ManifestError(f"bad platform {text!r}: expected os/arch[/variant], e.g. linux/arm64")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def parse_platforms(texts: str | tuple[str, ...] | list[str]) -> tuple[Platform, ...]:
    """Parse a comma list or sequence of platforms (deduplicated, order kept)."""
    items = texts.split(",") if isinstance(texts, str) else list(texts)
    out: list[Platform] = []
    for item in items:
        if item.strip():
            p = parse_platform(item)
            if p not in out:
                out.append(p)
    return tuple(out)


def media_type_of(body: bytes, header_type: str | None) -> str:
    """The manifest's media type: its own `mediaType` field, else the Content-Type header."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise ManifestError("manifest is not valid JSON") from None
    mt = doc.get("mediaType") if isinstance(doc, dict) else None
    mt = mt or (header_type or "").split(";")[0].strip()
    if not mt and isinstance(doc, dict):
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "layers" in doc else ""
    if mt == DOCKER_SCHEMA1 or (isinstance(doc, dict) and doc.get("schemaVersion") == 1):
        raise ManifestError("schema 1 manifests are not supported; use a newer image tag")
    if mt not in INDEX_TYPES + IMAGE_TYPES:
        raise ManifestError(f"unsupported manifest media type {mt!r}")
    return mt


def image_blobs(body: bytes) -> list[dict]:
    """Config and layer descriptors of an image manifest (foreign layers with URLs skipped)."""
    doc = json.loads(body)
    blobs = [doc["config"]] + [layer for layer in doc.get("layers", []) if not layer.get("urls")]
    for b in blobs:
        if not isinstance(b.get("digest"), str) or not isinstance(b.get("size"), int):
            raise ManifestError("manifest has a blob descriptor without digest or size")
    return blobs


def index_children(body: bytes) -> list[dict]:
    """The manifest descriptors listed in an index."""
    return list(json.loads(body).get("manifests", []))


def select_children(body: bytes, platforms: tuple[Platform, ...]) -> list[dict]:
    """The index entries for the wanted platforms, in the order asked for.

    Raises ManifestError naming the platforms that are missing and those available.
    """
    children = index_children(body)
    chosen, missing = [], []
    for plat in platforms:
        match = next((c for c in children if plat.matches(c.get("platform") or {})), None)
        if match is None:
            missing.append(str(plat))
        elif match not in chosen:
            chosen.append(match)
    if missing:
        have = sorted({platform_text(c.get("platform") or {}) for c in children})
        raise ManifestError(f"no {', '.join(missing)} manifest in the index "
                            f"(has: {', '.join(have)})")
    return chosen


def platform_text(p: dict) -> str:
    """`os/arch[/variant]` of a platform object."""
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def filtered_index(body: bytes, chosen: list[dict]) -> bytes:
    """A copy of the index keeping only the chosen entries (a new digest, other fields kept)."""
    doc = json.loads(body)
    doc["manifests"] = chosen
    return json.dumps(doc, indent=3).encode()
