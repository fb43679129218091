"""Verify the local registry: every listed image is there, with the expected platforms and the
digest upstream has (or the lock recorded), optionally with every blob present.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runbooks.core.readonly import Check

from .images import ImageSpec
from .manifests import INDEX_TYPES, Platform, image_blobs, index_children, platform_text
from .plan import resolve, selection_key
from .run import Options, setup


def _platforms_of_target(client: Any, repo: str, body: bytes, mt: str) -> list[str]:
    if mt in INDEX_TYPES:
        return [platform_text(c.get("platform") or {}) for c in index_children(body)
                if (c.get("platform") or {}).get("os") not in (None, "unknown")]
    config = json.loads(body)["config"]
    raw = b"".join(client.blob_chunks(repo, config["digest"], int(config["size"])))
    doc = json.loads(raw)
    return [platform_text({"os": doc.get("os"), "architecture": doc.get("architecture"),
                           "variant": doc.get("variant")})]


def _missing_blobs(client: Any, repo: str, body: bytes, mt: str) -> list[str]:
    if mt in INDEX_TYPES:
        missing = []
        for child in index_children(body):
            try:
                cbody, cmt, _ = client.get_manifest(repo, child["digest"])
            except Exception:  # noqa: BLE001 - reported as missing
                missing.append(child["digest"])
                continue
            missing += _missing_blobs(client, repo, cbody, cmt)
        return missing
    return [d["digest"] for d in image_blobs(body) if not client.has_blob(repo, d["digest"])]


def check_image(spec: ImageSpec, target: Any, source: Any, lock: dict,
                platforms: tuple[Platform, ...] | None, upstream: bool, blobs: bool) -> Check:
    """Verify one image in the target."""
    key = selection_key(platforms)
    try:
        locked = (lock.get(str(spec.source)) or {}).get("pushed", {}).get(key)
        expected = None if upstream else locked
        origin = "lock"
        if expected is None:
            expected = resolve(source(), spec.source.repo, spec.source.reference,
                               platforms).pushed_digest
            origin = "upstream"
        if target.head_manifest(spec.target_repo, spec.target_tag) is None:
            return _verdict(spec, False, f"missing: no {spec.target} in the registry; "
                                      "run registry.load-images")
        body, mt, digest = target.get_manifest(spec.target_repo, spec.target_tag)
        if digest != expected:
            return _verdict(spec, False, f"digest {digest} differs from {origin} {expected}; "
                                      "run registry.load-images")
        have = _platforms_of_target(target, spec.target_repo, body, mt)
        if platforms is not None:
            unmatched = [str(p) for p in platforms
                         if not any(p.matches(_entry(h)) for h in have)]
            if unmatched or len(have) != len(platforms):
                return _verdict(spec, False, f"platforms {', '.join(have)}, expected {key}")
        if blobs:
            missing = _missing_blobs(target, spec.target_repo, body, mt)
            if missing:
                return _verdict(spec, False, f"{len(missing)} blob(s) missing, e.g. {missing[0]}")
        return _verdict(spec, True, f"{digest} ({', '.join(have)}) matches {origin}")
    except Exception as exc:  # noqa: BLE001 - one image's failure must not stop others
        return _verdict(spec, False, f"cannot verify: {exc}")


def _verdict(spec: ImageSpec, ok: bool, detail: str) -> Check:
    """One image's verdict: named by its target in the registry."""
    return Check(str(spec.target), ok, detail, "" if ok else "inv registry.load-images")


def _entry(text: str) -> dict:
    parts = text.split("/")
    return {"os": parts[0], "architecture": parts[1] if len(parts) > 1 else None,
            "variant": parts[2] if len(parts) > 2 else None}


def verify(opts: Options, upstream: bool = False, blobs: bool = False) -> list[Check]:
    """Check every listed image in the target registry."""
    from .targets import Clients

    ready = setup(opts)
    listed, platforms, target = ready.listed, ready.platforms, ready.target
    insecure, lock = ready.insecure, ready.lock
    clients = Clients(insecure, opts.jobs, opts.attempts, opts.backoff)
    try:
        tclient = clients.get(target)
        with ThreadPoolExecutor(max(1, min(opts.jobs, len(listed.images)))) as pool:
            futures = [pool.submit(check_image, s, tclient,
                                   lambda s=s: clients.get(s.source.api_host), lock,
                                   platforms, upstream, blobs) for s in listed.images]
            return [f.result() for f in futures]
    finally:
        clients.close()
