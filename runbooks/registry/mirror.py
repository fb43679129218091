"""The parallel copy engine: images from sources into one target, each digest uploaded once.

All work goes through one priority queue served by `jobs` workers (`schedule.Scheduler`):
first every image is resolved (its manifests read, what it needs known), then blobs are
transferred largest first, each digest uploaded once and cross-repository mounted into every
other repository that needs it, and an image's manifests are pushed as soon as its last blob
is in. No worker ever waits for an image: a set with one huge image spreads its layers over
every worker, a set of many tiny images keeps every worker busy with their manifests.

A repository the target did not list in its catalog at the start cannot hold the image's
tag or blobs yet, so no HEAD is spent on it; elsewhere a blob already there is skipped after
a HEAD. Every blob is streamed with its sha256 checked on the way and retried with backoff on
transient failures. One image failing never stops others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .client import BlobCorrupt, RegistryError, retry_after
from .images import ImageSpec
from .manifests import Platform
from .plan import Plan, Source, resolve, selection_key
from .schedule import Scheduler

# Task priorities: finish images first, then learn what every image needs, then move bytes.
MANIFESTS, RESOLVE, MOUNT, BLOB = 0, 1, 2, 3


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
        self.stats = Stats()
        self.guard = threading.Lock()
        self.blobs: dict[str, _Blob] = {}
        self.known_repos: set[str] | None = None       # the target's catalog at the start
        self.scheduler = Scheduler(self.jobs)

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
                # the target checks the digest of what it receives (a registry refuses a
                # mismatch with DIGEST_INVALID, a layout hashes as it writes): hashing here
                # too would only spend a second pass of CPU over every byte
                self.target.finish_upload(dst_repo, loc, digest, size, counted(
                    src.blob_chunks(src_repo, digest, size, verify=False)))
                with self.guard:
                    self.stats.uploaded += 1
                    self.stats.bytes += size
                return
            except BlobCorrupt:
                raise
            except RegistryError as exc:
                if exc.status == 400 and "DIGEST_INVALID" in str(exc):
                    raise BlobCorrupt(
                        f"blob {digest} from {_name(src)}/{src_repo} is corrupt: "
                        "the target computed another digest from the bytes the source served "
                        "and refused them; nothing was pushed for it") from None
                if self.progress and sent:
                    self.progress.advance(-sent)
                if not exc.retriable or attempt + 1 >= self.attempts:
                    raise
                time.sleep(retry_after(None, attempt, self.backoff))

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

    def _record(self, spec: ImageSpec, plan: Plan) -> None:
        with self.guard:
            entry = self.lock.setdefault(str(spec.source), {})
            if entry.get("digest") != plan.upstream_digest:
                entry.clear()
            entry.update(digest=plan.upstream_digest, mediaType=plan.upstream_type,
                         platforms=plan.platforms)
            entry.setdefault("pushed", {})[selection_key(self.platforms)] = plan.pushed_digest

    def may_hold(self, repo: str) -> bool:
        """Whether the target may already have something in `repo` (worth a HEAD)."""
        return self.known_repos is None or repo in self.known_repos

    # -- the run ----------------------------------------------------------------------
    def run(self, specs: list[ImageSpec]) -> Stats:
        """Copy all images; results keep the order of `specs`."""
        images = [_Image(spec) for spec in specs]
        catalog = getattr(self.target, "catalog", None)
        self.known_repos = catalog() if callable(catalog) else None

        def seed() -> None:
            for i, image in enumerate(images):
                self.scheduler.submit((RESOLVE, i), self._resolve, image)

        self.scheduler.run(seed)
        for image in images:
            if image.result is None:                   # a bug, never a hang
                why = "; ".join(map(str, self.scheduler.errors)) or "not finished"
                image.result = ImageResult(image.spec, "failed", detail=f"internal error: {why}")
        self.stats.results = [image.result for image in images if image.result]
        return self.stats

    def _finish(self, image: _Image, result: ImageResult) -> None:
        image.result = result
        if self.progress:
            self.progress.image_done(result)

    def _resolve(self, image: _Image) -> None:
        """Read the image's manifests, skip it when the target has it, else ask for blobs."""
        spec = image.spec
        try:
            current = None
            if self.may_hold(spec.target_repo):
                current = self.target.head_manifest(spec.target_repo, spec.target_tag)
            expected = None if self.refresh else self.expected_digest(spec)
            if expected and current == expected:
                self._finish(image, ImageResult(spec, "skipped", current,
                                                "already present (lock)"))
                return
            src = self.source_for(spec)
            plan = resolve(src, spec.source.repo, self.source_reference(spec), self.platforms)
            self._record(spec, plan)
            image.plan = plan
            if current == plan.pushed_digest:
                self._finish(image, ImageResult(spec, "skipped", current, plan.description,
                                                plan))
                return
            if self.progress:
                self.progress.add_total(plan.size)
        except Exception as exc:  # noqa: BLE001 - one image's failure must not stop others
            self._finish(image, ImageResult(spec, "failed",
                                            detail=str(exc) or exc.__class__.__name__))
            return
        for desc in plan.blobs.values():
            self._need(image, src, desc)
        self._blob_done(image, None)                   # release the registration token

    # -- blobs ------------------------------------------------------------------------
    def _need(self, image: _Image, src: Source, desc: dict) -> None:
        """Image `image` needs blob `desc` in its target repository."""
        digest, repo = desc["digest"], image.spec.target_repo
        with self.guard:
            blob = self.blobs.get(digest)
            if blob is None:
                blob = self.blobs[digest] = _Blob(desc, src, image.spec.source.repo)
            if repo in blob.repos:
                return
            image.waiting += 1
            waiting = blob.waiting.setdefault(repo, [])
            waiting.append(image)
            if len(waiting) > 1:
                return                                 # that repository's copy is under way
            if blob.state == "failed":
                error: BaseException | None = blob.error
            else:
                error = None
                if blob.state == "new":
                    blob.state = "queued"
                    self.scheduler.submit((BLOB, -int(desc["size"])), self._upload_blob, blob,
                                          repo)
                elif blob.state == "done":
                    self.scheduler.submit((MOUNT,), self._mount_blob, blob, repo)
                else:                                  # queued or uploading: mount later
                    blob.later.append(repo)
        if error is not None:
            self._settle(blob, repo, error)

    def _upload_blob(self, blob: _Blob, repo: str) -> None:
        digest = blob.desc["digest"]
        try:
            present = self.may_hold(repo) and self.target.has_blob(repo, digest)
            if not present:
                self._upload(blob.src, blob.src_repo, repo, blob.desc)
        except Exception as exc:  # noqa: BLE001 - fails the images that need it
            with self.guard:
                blob.state, blob.error = "failed", exc
                later, blob.later = blob.later, []
            for r in [repo, *later]:
                self._settle(blob, r, exc)
            return
        with self.guard:
            if present:
                self.stats.present += 1
            blob.state = "done"
            blob.repos.add(repo)
            later, blob.later = blob.later, []
        for r in later:
            self.scheduler.submit((MOUNT,), self._mount_blob, blob, r)
        self._settle(blob, repo, None)

    def _mount_blob(self, blob: _Blob, repo: str) -> None:
        digest = blob.desc["digest"]
        try:
            with self.guard:
                from_repo = next(iter(blob.repos))
            location = self.target.mount_blob(repo, digest, from_repo)
            if location is not None:                   # mount refused: upload instead
                self._upload(blob.src, blob.src_repo, repo, blob.desc, location)
        except Exception as exc:  # noqa: BLE001 - fails the images that need it here
            self._settle(blob, repo, exc)
            return
        with self.guard:
            blob.repos.add(repo)
            if location is None:
                self.stats.mounted += 1
        self._settle(blob, repo, None)

    def _settle(self, blob: _Blob, repo: str, error: BaseException | None) -> None:
        """The blob's copy into `repo` ended: tell every image that waited for it."""
        with self.guard:
            waiting = blob.waiting.pop(repo, [])
        for image in waiting:
            self._blob_done(image, error)

    def _blob_done(self, image: _Image, error: BaseException | None) -> None:
        with self.guard:
            image.waiting -= 1
            if error is not None and image.error is None:
                image.error = error
            last = image.waiting == 0
        if not last:
            return
        if image.error is not None:
            self._finish(image, ImageResult(image.spec, "failed",
                                            detail=str(image.error) or
                                            image.error.__class__.__name__))
        else:
            self.scheduler.submit((MANIFESTS,), self._push_manifests, image)

    def _push_manifests(self, image: _Image) -> None:
        spec, plan = image.spec, image.plan
        assert plan is not None
        try:
            for body, mt, digest in plan.children:
                self.target.put_manifest(spec.target_repo, digest, body, mt)
            body, mt, digest = plan.tagged
            got = self.target.put_manifest(spec.target_repo, spec.target_tag, body, mt)
            if got != digest:
                raise RegistryError(f"target stored {got}, expected {digest}")
        except Exception as exc:  # noqa: BLE001 - one image's failure must not stop others
            self._finish(image, ImageResult(spec, "failed",
                                            detail=str(exc) or exc.__class__.__name__))
            return
        self._finish(image, ImageResult(spec, "copied", digest, plan.description, plan))


def _name(source: Any) -> str:
    return str(getattr(source, "host", None) or getattr(source, "name", "the source"))


@dataclass(eq=False)
class _Image:
    """One image's progress through the run."""

    spec: ImageSpec
    plan: Plan | None = None
    waiting: int = 1                                   # blobs still due (+1 while registering)
    error: BaseException | None = None
    result: ImageResult | None = None


@dataclass(eq=False)
class _Blob:
    """One digest: its first source, the repositories holding it, who waits for it where."""

    desc: dict
    src: Source
    src_repo: str
    state: str = "new"                                 # new, queued, done, failed
    error: BaseException | None = None
    repos: set[str] = field(default_factory=set)
    waiting: dict[str, list[_Image]] = field(default_factory=dict)
    later: list[str] = field(default_factory=list)     # repositories to mount into once done
