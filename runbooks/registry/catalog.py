"""Which images this site needs: the base image list plus each runbook's list for the
versions the inventory pins.

The base list (`files/registry/images.yaml`) is mirrored for every site. Beside it,
`images.d/<runbook>.yaml` says what one runbook needs (format also in the README):

    runbook: k3s                       # what --runbook selects (default: the file's name)
    section: cluster                   # inventory section; absent -> the runbook needs nothing
    when: {cluster.distribution: k3s}  # optional: the whole file applies only then
    defaults: {cluster.disable: [traefik, servicelb]}   # values when the inventory has none
    version: cluster.version           # the inventory key that pins the version
    versions:                          # per version (exact, or a glob like "v0.14.*")
      v1.34.3+k3s1:
        - docker.io/rancher/mirrored-pause:3.6
        - {ref: docker.io/rancher/mirrored-library-traefik:3.5.1,
           unless: {cluster.disable: traefik}}
    images:                            # needed at every version
      - {ref: ghcr.io/kube-vip/kube-vip:v0.8.9, when: {network.vip: "*"}}

`when` / `unless` map dotted inventory keys to a value or a list of values; "*" means "set
to anything". A list in the inventory matches when any of its items does. Inventory values
are read from the raw YAML, so a section that another runbook adds later is read the day it
appears; until then that runbook needs no images.

Pure: reads files, never the network.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .images import (
    ImageList,
    ImageListError,
    ImageSpec,
    Rewrite,
    build_spec,
    parse_image_list,
)

BASE_RUNBOOK = "cluster-api"
RUNBOOK_DIR = "images.d"
FILE_KEYS = {"runbook", "section", "when", "unless", "defaults", "version", "versions",
             "images"}
ENTRY_KEYS = {"ref", "was", "as", "when", "unless"}
ANY = "*"


@dataclass
class Contribution:
    """What one runbook adds to the site's list (or why it adds nothing)."""

    runbook: str
    path: Path
    specs: list[ImageSpec] = field(default_factory=list)
    version: str | None = None
    why_none: str = ""


@dataclass
class SiteImages:
    """The merged list for a site, with where each image came from."""

    listed: ImageList
    contributions: list[Contribution]
    origin: dict[str, str] = field(default_factory=dict)     # source ref -> runbook

    def describe(self) -> str:
        """One line per runbook: how many images, for which version, or why none."""
        parts = []
        for c in self.contributions:
            if c.specs:
                at = f" ({c.version})" if c.version else ""
                parts.append(f"{c.runbook}: {len(c.specs)}{at}")
            else:
                parts.append(f"{c.runbook}: none ({c.why_none})")
        return "; ".join(parts)


def upstream_registries(specs: list[ImageSpec]) -> list[str]:
    """The upstream registries the images come from (each gets one mirror entry on nodes)."""
    return sorted({s.source.host for s in specs})


def lookup(data: Any, dotted: str) -> Any:
    """`cluster.version` in a nested mapping; None when any part is missing."""
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _matches(actual: Any, wanted: Any) -> bool:
    values = wanted if isinstance(wanted, list) else [wanted]
    have = actual if isinstance(actual, list) else [actual]
    if ANY in values:
        return any(v not in (None, "", False) for v in have) and actual not in ([], {})
    return any(str(h) == str(v) for h in have if h is not None for v in values)


class _Conditions:
    """Evaluates `when` / `unless` of one file against the inventory (with its defaults)."""

    def __init__(self, inventory: dict, defaults: dict[str, Any]):
        self.inventory, self.defaults = inventory, defaults

    def value(self, key: str) -> Any:
        got = lookup(self.inventory, key)
        return self.defaults.get(key) if got is None else got

    def holds(self, when: dict | None, unless: dict | None) -> bool:
        if when and not all(_matches(self.value(k), v) for k, v in when.items()):
            return False
        return not (unless and any(_matches(self.value(k), v) for k, v in unless.items()))


def _cond(where: str, value: Any, key: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ImageListError(f"{where}: '{key}' must map inventory keys to values, e.g. "
                             f"{key}: {{metallb.mode: bgp}}")
    return value


def pick_version(where: str, versions: dict, version: str) -> tuple[str, list]:
    """The entry for `version`: an exact key wins, else the most specific matching glob."""
    if version in versions:
        return version, versions[version]
    globs = [k for k in versions if any(c in k for c in "*?[")
             and fnmatch.fnmatchcase(version, k)]
    if globs:
        best = max(globs, key=lambda k: len(k.replace("*", "")))
        return best, versions[best]
    known = ", ".join(sorted(map(str, versions))) or "none"
    raise ImageListError(
        f"{where}: no images listed for version {version} (listed: {known}); add a "
        f"'versions: {version}:' entry with the images that release needs")


def _entries(where: str, raw: Any) -> list:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ImageListError(f"{where} must be a list of image references")
    return raw


def runbook_images(path: Path, inventory: dict, rewrites: tuple[Rewrite, ...] = ()
                   ) -> Contribution:
    """Read one per-runbook file and select its images for this inventory."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ImageListError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ImageListError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ImageListError(f"{path}: expected a mapping (runbook:, section:, versions:, ...)")
    unknown = set(data) - FILE_KEYS
    if unknown:
        raise ImageListError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: "
                             f"{', '.join(sorted(FILE_KEYS))}")
    name = str(data.get("runbook") or path.stem)
    out = Contribution(name, path)
    section = data.get("section")
    if not isinstance(section, str) or not section:
        raise ImageListError(f"{path}: 'section' must name the inventory section the runbook "
                             "reads, e.g. section: cluster")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ImageListError(f"{path}: 'defaults' must map inventory keys to values")
    versions = data.get("versions") or {}
    if not isinstance(versions, dict):
        raise ImageListError(f"{path}: 'versions' must map versions to image lists")
    conditions = _Conditions(inventory, defaults)
    if not isinstance(inventory.get(section), dict):
        out.why_none = f"no '{section}:' section in the inventory"
        return out
    if not conditions.holds(_cond(str(path), data.get("when"), "when"),
                            _cond(str(path), data.get("unless"), "unless")):
        out.why_none = "its 'when:' does not match the inventory"
        return out
    raw: list = []
    version_key = data.get("version")
    if version_key is not None:
        if not isinstance(version_key, str):
            raise ImageListError(f"{path}: 'version' must be a dotted inventory key like "
                                 "cluster.version")
        version = conditions.value(version_key)
        if version in (None, ""):
            raise ImageListError(f"{path}: the inventory does not set {version_key}; pin the "
                                 f"{name} version there (e.g. {version_key}: "
                                 f"{next(iter(versions), 'VERSION')})")
        _, chosen = pick_version(str(path), versions, str(version))
        out.version = str(version)
        raw += _entries(f"{path}: versions.{version}", chosen)
    raw += _entries(f"{path}: images", data.get("images"))
    for i, entry in enumerate(raw):
        where = f"{path}: {name} images[{i}]"
        if isinstance(entry, str):
            entry = {"ref": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("ref"), str):
            raise ImageListError(f"{where}: expected a reference string or a mapping with "
                                 "'ref'")
        bad = set(entry) - ENTRY_KEYS
        if bad:
            raise ImageListError(f"{where}: unknown key(s) {sorted(bad)}; allowed: "
                                 f"{', '.join(sorted(ENTRY_KEYS))}")
        if not conditions.holds(_cond(where, entry.get("when"), "when"),
                                _cond(where, entry.get("unless"), "unless")):
            continue
        try:
            out.specs.append(build_spec(entry["ref"], entry.get("as"), rewrites))
        except ImageListError as exc:
            raise ImageListError(f"{where}: {exc}") from None
    if not out.specs:
        out.why_none = "no entry matches the inventory"
    return out


def read_inventory_data(path: str | Path) -> dict:
    """The inventory's raw YAML (the sections' own checks belong to their runbooks)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ImageListError(f"cannot read inventory {path}: {exc.strerror}; pass "
                             "-i/--inventory with your site's file") from None
    except yaml.YAMLError as exc:
        raise ImageListError(f"{path}: not valid YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def runbook_files(base: Path) -> list[Path]:
    """The per-runbook lists beside an image list (`images.d/*.yaml`), sorted."""
    folder = base.parent / RUNBOOK_DIR
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def site_images(base: Path, inventory: Callable[[], dict], runbooks: tuple[str, ...] = (),
                extra_rewrites: tuple[Rewrite, ...] = ()) -> SiteImages:
    """The base list plus `images.d/*.yaml` beside it, merged; `runbooks` narrows it.

    `inventory()` gives the inventory's raw data; it is called only when a per-runbook
    list exists.
    """
    try:
        text = base.read_text()
    except OSError as exc:
        raise ImageListError(f"cannot read image list {base}: {exc.strerror}") from None
    listed = parse_image_list(text, base, extra_rewrites)
    contributions = [Contribution(BASE_RUNBOOK, base, list(listed.images))]
    files = runbook_files(base)
    data = inventory() if files else {}
    for path in files:
        contributions.append(runbook_images(path, data, listed.rewrites))
    names = [c.runbook for c in contributions]
    for c in contributions:
        if names.count(c.runbook) > 1:
            raise ImageListError(f"{c.path}: runbook {c.runbook!r} is named by two files")
    if runbooks:
        unknown = [r for r in runbooks if r not in names]
        if unknown:
            raise ImageListError(f"unknown runbook(s) {', '.join(unknown)}; the image lists "
                                 f"name: {', '.join(names)}")
        contributions = [c for c in contributions if c.runbook in runbooks]
    return _merge(listed, contributions)


def _merge(listed: ImageList, contributions: list[Contribution]) -> SiteImages:
    """One entry per upstream image; two images landing on one local name are refused."""
    site = SiteImages(ImageList(listed.path, platforms=listed.platforms,
                                rewrites=listed.rewrites), contributions)
    by_target: dict[str, tuple[ImageSpec, Contribution]] = {}
    for c in contributions:
        for spec in c.specs:
            seen = by_target.get(spec.target)
            if seen is not None:
                if str(seen[0].source) == str(spec.source):
                    continue
                raise ImageListError(
                    f"{seen[0].source} ({seen[1].path}) and {spec.source} ({c.path}) would both "
                    f"be {spec.target} in the local registry; drop one, or give one an 'as:' "
                    "name (nodes then pull it by that name, not through the mirror)")
            by_target[spec.target] = (spec, c)
            site.listed.images.append(spec)
            site.origin[str(spec.source)] = c.runbook
    site.listed.origin = site.origin
    site.listed.note = site.describe()
    if not site.listed.images:
        raise ImageListError("no images to mirror for this selection: "
                             + "; ".join(f"{c.runbook}: {c.why_none}" for c in contributions))
    return site
