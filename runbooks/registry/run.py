"""The registry operations behind the tasks: load-images, save, load (verify is in verify.py).

Each returns a `Summary`; printing per image happens through `Progress` as images finish.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .images import ImageList, ImageSpec, load_image_list, parse_rewrite
from .lockfile import lock_path_for, read_lock, write_lock
from .manifests import DEFAULT_PLATFORM, Platform, parse_platforms
from .progress import MB, Progress, human_mb


@dataclass
class Options:
    """What the user asked for (from task flags)."""

    images: str | None = None
    to: str | None = None
    inventory: str | None = None
    platform: str | None = None
    all_platforms: bool = False
    jobs: int = 8
    rewrite: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    lock: str | None = None
    refresh: bool = False
    runbook: tuple[str, ...] = ()
    attempts: int = 5
    backoff: float = 0.25


@dataclass
class Summary:
    """Counts and failures of one run."""

    copied: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    blobs: str = ""

    def text(self) -> str:
        """The summary as printed."""
        rate = self.bytes / MB / self.seconds if self.seconds else 0.0
        line = (f"copied {self.copied}, skipped {self.skipped}, failed {len(self.failed)}; "
                f"{human_mb(self.bytes)} in {self.seconds:.2f} s ({rate:.1f} MB/s)")
        if self.blobs:
            line += f"; blobs: {self.blobs}"
        for name, why in self.failed:
            line += f"\n  FAILED {name}: {why}"
        return line


def _list_needs_inventory(opts: Options) -> bool:
    """Whether the image list depends on the inventory (per-runbook lists beside it, or
    --runbook)."""
    from .catalog import runbook_files
    from .targets import DEFAULT_IMAGES

    return bool(opts.runbook) or bool(runbook_files(Path(opts.images or DEFAULT_IMAGES)))


def needs_inventory(opts: Options) -> bool:
    """Whether a run reads the inventory: for the image list, or for the target (no --to)."""
    return not opts.to or _list_needs_inventory(opts)


def load_list(opts: Options) -> ImageList:
    """The site's image list: the base list plus each runbook's images for the versions the
    inventory pins (`images.d/` beside it), the command line's rewrite rules first."""
    from .catalog import read_inventory_data, site_images
    from .targets import DEFAULT_IMAGES, required_inventory

    rules = tuple(parse_rewrite(r) for r in opts.rewrite)
    base = Path(opts.images or DEFAULT_IMAGES)
    if not _list_needs_inventory(opts):
        return load_image_list(base, rules)
    inventory = required_inventory(opts.inventory)
    site = site_images(base, lambda: read_inventory_data(inventory), opts.runbook, rules)
    return site.listed


def platforms_of(opts: Options, listed: ImageList) -> tuple[Platform, ...] | None:
    """The platform selection: None for --all-platforms, else flag, list file, default."""
    if opts.all_platforms:
        return None
    return parse_platforms(opts.platform or listed.platforms or DEFAULT_PLATFORM)


def _add(summary: Summary, results: list[Any]) -> None:
    for r in results:
        if r.status == "copied":
            summary.copied += 1
        elif r.status == "skipped":
            summary.skipped += 1
        else:
            summary.failed.append((str(r.spec.source), r.detail))


def _present(target: str, specs: list[ImageSpec], lock: dict, key: str, jobs: int
             ) -> tuple[list[ImageSpec], list[ImageSpec]]:
    """(present, left to do): an image is present when its target tag already has the digest
    the lock pins (one HEAD each); without a pin for every image, nothing is asked."""
    from .quick import head_digests

    expected = [(lock.get(str(s.source)) or {}).get("pushed", {}).get(key) for s in specs]
    if not all(expected):
        return [], specs
    got = head_digests(target, [(s.target_repo, s.target_tag) for s in specs], jobs)
    present: list[ImageSpec] = []
    todo: list[ImageSpec] = []
    for spec, want, have in zip(specs, expected, got, strict=True):
        (present if have and have == want else todo).append(spec)
    return present, todo


def _quick_noop(target: str, specs: list[ImageSpec], lock: dict, key: str, jobs: int,
                progress: Progress) -> list[ImageSpec]:
    """Skip images whose tag already has the locked digest; returns the ones left to do."""
    present, todo = _present(target, specs, lock, key, jobs)
    for spec in present:
        progress.image_done(_Done(spec, "skipped", PRESENT))
    return todo


PRESENT = "already present (lock)"


@dataclass
class _Done:
    spec: ImageSpec
    status: str
    detail: str


@dataclass
class Setup:
    """What load-images and verify both start from: the list, platforms, target, lock."""

    listed: ImageList
    platforms: tuple[Platform, ...] | None
    target: str
    insecure: set[str]
    lock_path: Path
    lock: Any


def setup(opts: Options) -> Setup:
    """Read the image list and lock, resolve the target (plain HTTP where it is insecure)."""
    from .targets import resolve_target

    listed = load_list(opts)
    platforms = platforms_of(opts, listed)
    target, from_inventory = resolve_target(opts.to, opts.inventory)
    insecure = set(opts.insecure) | ({target} if from_inventory else set())
    lock_path = Path(opts.lock) if opts.lock else lock_path_for(Path(listed.path or "images"))
    return Setup(listed, platforms, target, insecure, lock_path, read_lock(lock_path))


def _header(ready: Setup, jobs: int, out: TextIO) -> None:
    from .plan import selection_key

    if ready.listed.note:
        out.write(f"images for this site: {ready.listed.note}\n")
    out.write(f"mirroring {len(ready.listed.images)} images to {ready.target}, platforms "
              f"{selection_key(ready.platforms)}, {jobs} jobs\n")


def unmirrored(listed: ImageList) -> list[str]:
    """The upstream registries of `listed` that the nodes get no mirror entry for unless
    registry.trust is given the list (--images): those files/registry's lists never name."""
    from runbooks.common.registry import mirrored_upstreams

    from .catalog import upstream_registries

    known = set(mirrored_upstreams())
    return [host for host in upstream_registries(listed.images) if host not in known]


def trust_hint(opts: Options, listed: ImageList) -> str:
    """For a user's own list (--images): the line saying which of its registries the nodes
    cannot pull through the local registry yet, and the command that fixes it ("" when
    none)."""
    if not opts.images:
        return ""
    missing = unmirrored(listed)
    if not missing:
        return ""
    return (f"nodes have no mirror entry for {', '.join(missing)} yet (files/registry's lists "
            f"name no image there): run inv registry.trust --images {opts.images}")


def _quick(opts: Options, ready: Setup) -> bool:
    """Whether the no-op check may answer for the target (plain HTTP, no --refresh)."""
    from .targets import is_loopback

    return not opts.refresh and (is_loopback(ready.target) or ready.target in ready.insecure)


def noop_run(opts: Options, out: TextIO | None = None) -> Summary | None:
    """The whole load-images run when every image is present under its locked digest (one
    HEAD each): printed as load_images prints it. None, having printed nothing, otherwise."""
    out = sys.stdout if out is None else out
    from .plan import selection_key

    start = time.monotonic()
    ready = setup(opts)
    if not _quick(opts, ready):
        return None
    images = ready.listed.images
    present, todo = _present(ready.target, images, ready.lock, selection_key(ready.platforms),
                             opts.jobs)
    if todo:
        return None
    _header(ready, opts.jobs, out)
    progress = Progress(len(images), out=out, bar=False)
    for spec in present:
        progress.image_done(_Done(spec, "skipped", PRESENT))
    return Summary(skipped=len(images), seconds=time.monotonic() - start)


def load_images(opts: Options, out: TextIO | None = None) -> Summary:
    """Mirror the image list into the target registry."""
    out = sys.stdout if out is None else out
    from .plan import selection_key

    start = time.monotonic()
    ready = setup(opts)
    listed, platforms, target = ready.listed, ready.platforms, ready.target
    insecure, lock_path, lock = ready.insecure, ready.lock_path, ready.lock
    progress = Progress(len(listed.images), out=out)
    _header(ready, opts.jobs, out)
    summary = Summary()
    todo = listed.images
    if _quick(opts, ready):
        todo = _quick_noop(target, todo, lock, selection_key(platforms), opts.jobs, progress)
    summary.skipped = len(listed.images) - len(todo)
    if todo:
        from .mirror import Mirror
        from .targets import Clients

        clients = Clients(insecure, opts.jobs, opts.attempts, opts.backoff)
        try:
            mirror = Mirror(clients.get(target), lambda s: clients.get(s.source.api_host),
                            jobs=opts.jobs, platforms=platforms, lock=lock, progress=progress,
                            attempts=opts.attempts, backoff=opts.backoff, refresh=opts.refresh)
            stats = mirror.run(todo)
        finally:
            clients.close()
        progress.finish()
        _add(summary, stats.results)
        summary.bytes = stats.bytes
        summary.blobs = (f"{stats.uploaded} uploaded, {stats.mounted} mounted, "
                         f"{stats.present} present")
        write_lock(lock_path, lock)
        if summary.copied:
            hint = trust_hint(opts, listed)
            if hint:
                out.write(hint + "\n")
    summary.seconds = time.monotonic() - start
    return summary


def save(opts: Options, directory: str, source: str | None = None,
         out: TextIO | None = None) -> Summary:
    """Save the image list (platform-filtered as for load-images) into an OCI layout."""
    out = sys.stdout if out is None else out
    from .mirror import Mirror
    from .ocilayout import LayoutTarget
    from .plan import selection_key
    from .targets import Clients

    start = time.monotonic()
    listed = load_list(opts)
    platforms = platforms_of(opts, listed)
    layout = LayoutTarget(Path(directory))
    lock_path = Path(opts.lock) if opts.lock else lock_path_for(Path(listed.path or "images"))
    lock = read_lock(lock_path)
    clients = Clients(set(opts.insecure), opts.jobs, opts.attempts, opts.backoff)
    progress = Progress(len(listed.images), out=out)
    if listed.note:
        out.write(f"images for this site: {listed.note}\n")
    out.write(f"saving {len(listed.images)} images to {directory}, platforms "
              f"{selection_key(platforms)}\n")
    try:
        mirror = Mirror(layout, lambda s: clients.get(source or s.source.api_host),
                        jobs=opts.jobs, platforms=platforms, lock=lock, progress=progress,
                        attempts=opts.attempts, backoff=opts.backoff, refresh=True,
                        pin=source is None)
        stats = mirror.run(listed.images)
    finally:
        clients.close()
    progress.finish()
    for r in stats.results:
        if r.status != "failed":
            layout.name_entry(r.spec.target, str(r.spec.source), selection_key(platforms))
    layout.write_index()
    write_lock(lock_path, lock)
    summary = Summary(bytes=stats.bytes, seconds=time.monotonic() - start)
    _add(summary, stats.results)
    return summary


def load(opts: Options, directory: str, out: TextIO | None = None) -> Summary:
    """Push every image of an OCI layout written by `save` into the target registry."""
    out = sys.stdout if out is None else out
    from .images import build_spec
    from .mirror import Mirror
    from .ocilayout import REF_NAME, TARGET_NAME, LayoutSource
    from .targets import Clients, resolve_target

    start = time.monotonic()
    layout = LayoutSource(Path(directory))
    rules = tuple(parse_rewrite(r) for r in opts.rewrite)
    specs = []
    for entry in layout.entries:
        ann = entry.get("annotations") or {}
        if REF_NAME not in ann:
            continue
        target = ann.get(TARGET_NAME)
        spec = build_spec(ann[REF_NAME], None if rules else target, rules)
        specs.append(spec)
    if not specs:
        from .ocilayout import LayoutError

        raise LayoutError(f"{directory}: index.json names no images ({REF_NAME} annotations)")
    target, from_inventory = resolve_target(opts.to, opts.inventory)
    insecure = set(opts.insecure) | ({target} if from_inventory else set())
    clients = Clients(insecure, opts.jobs, opts.attempts, opts.backoff)
    progress = Progress(len(specs), out=out)
    out.write(f"loading {len(specs)} images from {directory} into {target}\n")
    try:
        mirror = Mirror(clients.get(target), lambda s: layout, jobs=opts.jobs, platforms=None,
                        lock={}, progress=progress, attempts=opts.attempts,
                        backoff=opts.backoff, refresh=True)
        stats = mirror.run(specs)
    finally:
        clients.close()
    progress.finish()
    summary = Summary(bytes=stats.bytes, seconds=time.monotonic() - start,
                      blobs=f"{stats.uploaded} uploaded, {stats.mounted} mounted, "
                            f"{stats.present} present")
    _add(summary, stats.results)
    return summary
