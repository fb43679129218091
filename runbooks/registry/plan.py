"""Resolve an image in its source into a copy plan: the manifests to push and the blobs they need.

With a platform filter the tag gets exactly one thing, and the plan says which: the single
platform's manifest (its own upstream digest) for one platform, or a filtered index (a new
digest) for several. Without a filter the whole index is copied and keeps its digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from .manifests import (
    INDEX_TYPES,
    ManifestError,
    Platform,
    filtered_index,
    image_blobs,
    index_children,
    platform_text,
    select_children,
    sha256_digest,
)


class Source(Protocol):
    """Where images come from: a registry client or an OCI layout on disk."""

    name: str

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]: ...

    def blob_chunks(self, repo: str, digest: str, size: int, verify: bool = True): ...


def selection_key(platforms: tuple[Platform, ...] | None) -> str:
    """The lock key for a platform selection: `all` or `linux/arm64[,linux/amd64]`."""
    return "all" if platforms is None else ",".join(str(p) for p in platforms)


@dataclass
class Plan:
    """What copying one image means: manifests by digest, the tagged manifest, blobs."""

    upstream_digest: str
    upstream_type: str
    tagged: tuple[bytes, str, str]                  # body, media type, digest
    children: list[tuple[bytes, str, str]] = field(default_factory=list)  # pushed by digest
    blobs: dict[str, dict] = field(default_factory=dict)                  # digest -> descriptor
    platforms: dict[str, str] = field(default_factory=dict)               # platform -> digest
    description: str = ""

    @property
    def pushed_digest(self) -> str:
        """The digest the target tag will point at."""
        return self.tagged[2]

    @property
    def size(self) -> int:
        """Bytes of all blobs referenced."""
        return sum(int(d["size"]) for d in self.blobs.values())


def _add_image(plan: Plan, body: bytes) -> None:
    for desc in image_blobs(body):
        plan.blobs.setdefault(desc["digest"], desc)


def _collect(source: Source, repo: str, plan: Plan, descs: list[dict]) -> None:
    """Fetch child manifests (recursively for nested indexes), children first."""
    for desc in descs:
        body, mt, digest = source.get_manifest(repo, desc["digest"])
        if mt in INDEX_TYPES:
            _collect(source, repo, plan, index_children(body))
        else:
            _add_image(plan, body)
        plan.children.append((body, mt, digest))


def _config_platform(source: Source, repo: str, body: bytes) -> str:
    config = json.loads(body)["config"]
    if int(config.get("size", 0)) > 4 << 20:
        raise ManifestError("image config larger than 4 MiB")
    raw = b"".join(source.blob_chunks(repo, config["digest"], int(config["size"])))
    doc = json.loads(raw)
    return platform_text({"os": doc.get("os"), "architecture": doc.get("architecture"),
                          "variant": doc.get("variant")})


def resolve(source: Source, repo: str, ref: str,
            platforms: tuple[Platform, ...] | None) -> Plan:
    """Build the copy plan of `repo:ref` for a platform selection (None = everything)."""
    body, mt, digest = source.get_manifest(repo, ref)
    plan = Plan(digest, mt, (body, mt, digest))
    if mt in INDEX_TYPES:
        entries = index_children(body)
        plan.platforms = {platform_text(e.get("platform") or {}): e["digest"] for e in entries
                          if (e.get("platform") or {}).get("os") not in (None, "unknown")}
        if platforms is None:
            _collect(source, repo, plan, entries)
            plan.description = f"index {digest} ({len(entries)} manifests, digest unchanged)"
            return plan
        chosen = select_children(body, platforms)
        _collect(source, repo, plan, chosen)
        if len(chosen) == 1:
            plan.tagged = plan.children.pop()
            plan.description = (f"{platform_text(chosen[0].get('platform') or {})} manifest "
                                f"{plan.tagged[2]} (from index {digest})")
        else:
            new = filtered_index(body, chosen)
            plan.tagged = (new, mt, sha256_digest(new))
            plan.description = (f"filtered index {plan.tagged[2]} with "
                                f"{', '.join(str(p) for p in platforms)} (from index {digest})")
        return plan
    _add_image(plan, body)
    if platforms is not None:
        have = _config_platform(source, repo, body)
        plan.platforms = {have: digest}
        if not any(p.matches(_as_entry(have)) for p in platforms):
            wanted = ", ".join(str(p) for p in platforms)
            raise ManifestError(f"single-platform image is {have}, wanted {wanted}; "
                                "use --all-platforms to copy it anyway")
        plan.description = f"{have} manifest {digest} (single-platform image)"
    else:
        plan.description = f"manifest {digest} (single-platform image)"
    return plan


def _as_entry(text: str) -> dict:
    parts = text.split("/")
    return {"os": parts[0], "architecture": parts[1] if len(parts) > 1 else None,
            "variant": parts[2] if len(parts) > 2 else None}
