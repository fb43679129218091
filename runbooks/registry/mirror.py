"""The parallel copy engine: images from sources into one target, each digest uploaded once.

Per blob: a blob some other image is uploading right now is waited for and then mounted
(one request) instead of uploaded again; a blob already in the target repository is skipped
after a HEAD; everything else is streamed from source to target with its sha256 checked on
the way, retried with backoff on transient failures. One image failing never stops others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .client import BlobCorrupt, RegistryError, retry_after
from .images import ImageSpec
from .manifests import Platform
from .plan import Plan, Source, resolve, selection_key


@dataclass
class ImageResult:
    """The outcome of one image: copied, skipped (already there) or failed."""

    spec: ImageSpec
    status: str
    digest: str = ""
    detail: str = ""
    plan: Plan | None = None


@dataclass
class Stats:
    """Counters over a whole run (guarded by the ledger lock)."""

    uploaded: int = 0
    mounted: int = 0
    present: int = 0
    bytes: int = 0
    results: list[ImageResult] = field(default_factory=list)


class Ledger:
    """Per-digest in-flight futures and the target repositories known to hold each blob."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inflight: dict[str, Future] = {}
        self.holders: dict[str, set[str]] = {}


class Mirror:
    """Copies image specs into `target`; `source_for(spec)` gives each image's source."""

    def __init__(self, target: Any, source_for: Callable[[ImageSpec], Source], *, jobs: int = 8,
                 platforms: tuple[Platform, ...] | None = None, lock: dict | None = None,
                 progress: Any = None, attempts: int = 5, backoff: float = 0.25,
                 refresh: bool = False, pin: bool | None = None):
        self.target, self.source_for, self.jobs = target, source_for, max(jobs, 1)
        self.platforms, self.refresh = platforms, refresh
        self.pin = (not refresh) if pin is None else pin
        self.lock = lock if lock is not None else {}
        self.progress, self.attempts, self.backoff = progress, attempts, backoff
        self.ledger, self.stats = Ledger(), Stats()
        self.blob_pool: ThreadPoolExecutor | None = None

    # -- blobs ------------------------------------------------------------------------
    def _upload(self, src: Source, src_repo: str, dst_repo: str, desc: dict,
                location: str | None = None) -> None:
        digest, size = desc["digest"], int(desc["size"])
        for attempt in range(self.attempts):
            sent = 0

            def counted(chunks):
                nonlocal sent
                for chunk in chunks:
                    sent += len(chunk)
                    if self.progress:
                        self.progress.advance(len(chunk))
                    yield chunk

            try:
                loc = location or self.target.start_upload(dst_repo)
                location = None
                self.target.finish_upload(dst_repo, loc, digest, size,
                                          counted(src.blob_chunks(src_repo, digest, size)))
                with self.ledger.lock:
                    self.stats.uploaded += 1
                    self.stats.bytes += size
                return
            except BlobCorrupt:
                raise
            except RegistryError as exc:
                if self.progress and sent:
                    self.progress.advance(-sent)
                if not exc.retriable or attempt + 1 >= self.attempts:
                    raise
                time.sleep(retry_after(None, attempt, self.backoff))

    def ensure_blob(self, src: Source, src_repo: str, dst_repo: str, desc: dict) -> str:
        """Make sure `dst_repo` has the blob: 'present', 'mounted' or 'uploaded'."""
        digest, led = desc["digest"], self.ledger
        while True:
            with led.lock:
                holders = led.holders.setdefault(digest, set())
                if dst_repo in holders:
                    return "present"
                fut = led.inflight.get(digest)
                owner = fut is None
                if owner:
                    fut = led.inflight[digest] = Future()
            assert fut is not None
            if owner:
                return self._own_blob(fut, src, src_repo, dst_repo, desc)
            try:
                fut.result()
            except Exception:  # noqa: BLE001, S112 - the owner failed: retry, maybe as owner
                continue
            with led.lock:
                if dst_repo in holders:
                    return "present"
                from_repo = next(iter(holders))
            location = self.target.mount_blob(dst_repo, digest, from_repo)
            if location is not None:           # mount refused: upload into the opened session
                self._upload(src, src_repo, dst_repo, desc, location)
            with led.lock:
                holders.add(dst_repo)
                if location is None:
                    self.stats.mounted += 1
            return "mounted" if location is None else "uploaded"

    def _own_blob(self, fut: Future, src: Source, src_repo: str, dst_repo: str,
                  desc: dict) -> str:
        digest, led = desc["digest"], self.ledger
        try:
            if self.target.has_blob(dst_repo, digest):
                outcome = "present"
                with led.lock:
                    self.stats.present += 1
            else:
                self._upload(src, src_repo, dst_repo, desc)
                outcome = "uploaded"
        except BaseException as exc:
            with led.lock:
                led.inflight.pop(digest, None)
            fut.set_exception(exc)
            raise
        with led.lock:
            led.holders[digest].add(dst_repo)
        fut.set_result(outcome)
        return outcome

    # -- images -----------------------------------------------------------------------
    def expected_digest(self, spec: ImageSpec) -> str | None:
        """The digest the target tag should have, from the lock (None when unknown)."""
        entry = self.lock.get(str(spec.source)) or {}
        return (entry.get("pushed") or {}).get(selection_key(self.platforms))

    def source_reference(self, spec: ImageSpec) -> str:
        """What to fetch upstream: the lock's digest for a tag pinned there, else the tag."""
        if self.pin and not spec.source.digest:
            locked = (self.lock.get(str(spec.source)) or {}).get("digest")
            if locked:
                return str(locked)
        return spec.source.reference

    def copy_image(self, spec: ImageSpec) -> ImageResult:
        """Copy one image (never raises: failures become a failed result)."""
        try:
            current = self.target.head_manifest(spec.target_repo, spec.target_tag)
            expected = None if self.refresh else self.expected_digest(spec)
            if expected and current == expected:
                return ImageResult(spec, "skipped", current, "already present (lock)")
            src = self.source_for(spec)
            plan = resolve(src, spec.source.repo, self.source_reference(spec), self.platforms)
            self._record(spec, plan)
            if current == plan.pushed_digest:
                return ImageResult(spec, "skipped", current, plan.description, plan)
            if self.progress:
                self.progress.add_total(plan.size)
            assert self.blob_pool is not None
            futures = [self.blob_pool.submit(self.ensure_blob, src, spec.source.repo,
                                             spec.target_repo, d) for d in plan.blobs.values()]
            for f in futures:
                error = f.exception()
                if error is not None:
                    raise error
            for body, mt, digest in plan.children:
                self.target.put_manifest(spec.target_repo, digest, body, mt)
            body, mt, digest = plan.tagged
            got = self.target.put_manifest(spec.target_repo, spec.target_tag, body, mt)
            if got != digest:
                raise RegistryError(f"target stored {got}, expected {digest}")
            return ImageResult(spec, "copied", digest, plan.description, plan)
        except Exception as exc:  # noqa: BLE001 - one image's failure must not stop others
            return ImageResult(spec, "failed", detail=str(exc) or exc.__class__.__name__)

    def _record(self, spec: ImageSpec, plan: Plan) -> None:
        with self.ledger.lock:
            entry = self.lock.setdefault(str(spec.source), {})
            if entry.get("digest") != plan.upstream_digest:
                entry.clear()
            entry.update(digest=plan.upstream_digest, mediaType=plan.upstream_type,
                         platforms=plan.platforms)
            entry.setdefault("pushed", {})[selection_key(self.platforms)] = plan.pushed_digest

    def run(self, specs: list[ImageSpec]) -> Stats:
        """Copy all images in parallel; results keep the order of `specs`."""
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="blob") as blobs, \
                ThreadPoolExecutor(min(self.jobs, len(specs)) or 1,
                                   thread_name_prefix="image") as images:
            self.blob_pool = blobs
            futures = [images.submit(self._run_one, s) for s in specs]
            self.stats.results = [f.result() for f in futures]
        return self.stats

    def _run_one(self, spec: ImageSpec) -> ImageResult:
        result = self.copy_image(spec)
        if self.progress:
            self.progress.image_done(result)
        return result
