"""Image references, the image list file (YAML or plain text) and repository rewrite rules.

Pure functions only: nothing here touches the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ImageListError(ValueError):
    """A bad image reference, image list file or rewrite rule (message says what and where)."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: registry host, repository path, tag and/or digest."""

    host: str
    repo: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host that serves the API (Docker Hub's API lives on another name)."""
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.host}/{self.repo}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_ref(text: str) -> ImageRef:
    """Parse `[host[:port]/]repo[:tag][@sha256:...]` with Docker's normalisation rules.

    The first path component is a registry host when it contains '.' or ':' or is
    'localhost'; otherwise the image is on Docker Hub (single names get `library/`).
    """
    raw = text.strip()
    if not raw or any(c.isspace() for c in raw):
        raise ImageListError(f"bad image reference {text!r}: empty or contains spaces")
    rest, digest = raw, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ImageListError(f"bad image reference {text!r}: digest must be sha256:<64 hex>")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        host, path = first, remainder
    else:
        host, path = DOCKER_HUB, rest
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise ImageListError(f"bad image reference {text!r}: invalid tag {tag!r}")
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _REPO_RE.match(path):
        raise ImageListError(
            f"bad image reference {text!r}: repository {path!r} must be lower-case "
            "components separated by '/'"
        )
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(host=host, repo=path, tag=tag, digest=digest)


@dataclass(frozen=True)
class Rewrite:
    """Replace a repository prefix: `coredns/coredns=coredns` maps coredns/coredns -> coredns."""

    old: str
    new: str

    def apply(self, repo: str) -> str | None:
        """The rewritten repository, or None when the rule does not match."""
        if repo == self.old:
            return self.new
        if repo.startswith(self.old + "/"):
            rest = repo[len(self.old) + 1 :]
            return f"{self.new}/{rest}" if self.new else rest
        return None


def parse_rewrite(text: str) -> Rewrite:
    """Parse a rewrite rule `FROM=TO` (whole path components; TO may be empty to strip)."""
    old, sep, new = text.partition("=")
    old, new = old.strip().strip("/"), new.strip().strip("/")
    if not sep or not old:
        raise ImageListError(f"bad rewrite rule {text!r}: expected FROM=TO, "
                             "e.g. coredns/coredns=coredns")
    if not _REPO_RE.match(old) or (new and not _REPO_RE.match(new)):
        raise ImageListError(f"bad rewrite rule {text!r}: FROM and TO must be repository paths")
    return Rewrite(old, new)


def rewrite_repo(repo: str, rules: tuple[Rewrite, ...]) -> str:
    """Apply the first matching rule; repository names are kept when none matches."""
    for rule in rules:
        new = rule.apply(repo)
        if new:
            return new
    return repo


@dataclass(frozen=True)
class ImageSpec:
    """One entry of the image list: where it comes from and the name it gets in the target."""

    source: ImageRef
    target_repo: str
    target_tag: str

    @property
    def target(self) -> str:
        """`repo:tag` under the target registry."""
        return f"{self.target_repo}:{self.target_tag}"


@dataclass
class ImageList:
    """A parsed image list file."""

    path: Path | None
    images: list[ImageSpec] = field(default_factory=list)
    platforms: tuple[str, ...] = ()
    rewrites: tuple[Rewrite, ...] = ()
    note: str = ""                                           # which runbooks gave what
    origin: dict[str, str] = field(default_factory=dict)     # source ref -> runbook


def _entry_text(path: Path, index: int, entry: object) -> tuple[str, str | None]:
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict) and isinstance(entry.get("ref"), str):
        unknown = set(entry) - {"ref", "was", "as"}
        if unknown:
            raise ImageListError(
                f"{path}: images[{index}]: unknown key(s) {sorted(unknown)}; allowed: ref, was, as"
            )
        target = entry.get("as")
        if target is not None and not isinstance(target, str):
            raise ImageListError(f"{path}: images[{index}].as must be a string like repo:tag")
        return entry["ref"], target
    raise ImageListError(
        f"{path}: images[{index}] must be a reference string or a mapping with 'ref'"
    )


def build_spec(ref_text: str, target: str | None, rewrites: tuple[Rewrite, ...]) -> ImageSpec:
    """Parse one entry and decide its name in the target registry."""
    ref = parse_ref(ref_text)
    if target:
        tref = parse_ref(f"localhost/{target}")
        return ImageSpec(ref, tref.repo, tref.tag or ref.tag or "latest")
    tag = ref.tag or (ref.digest or "").replace("sha256:", "sha256-")
    return ImageSpec(ref, rewrite_repo(ref.repo, rewrites), tag)


def parse_image_list(text: str, path: Path | None = None,
                     extra_rewrites: tuple[Rewrite, ...] = ()) -> ImageList:
    """Parse YAML (`images:` mapping) or plain text (one reference per line, '#' comments)."""
    where = path or Path("<images>")
    stripped = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    looks_yaml = any(ln.startswith(("images:", "platforms:", "rewrite:")) for ln in stripped)
    refs: list[tuple[str, str, str | None]]                  # (where in the file, ref, as)
    if not looks_yaml:
        refs = [(f"line {n}", ln, None) for n, ln in enumerate(stripped, 1) if ln]
        result = ImageList(path, rewrites=extra_rewrites)
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ImageListError(f"{where}: not valid YAML: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ImageListError(f"{where}: expected a mapping with an 'images:' list")
        unknown = set(data) - {"images", "platforms", "rewrite"}
        if unknown:
            raise ImageListError(f"{where}: unknown top-level key(s) {sorted(unknown)}")
        platforms = data.get("platforms") or []
        if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
            raise ImageListError(f"{where}: 'platforms' must be a list like [linux/arm64]")
        rules = []
        for i, rule in enumerate(data.get("rewrite") or []):
            if not isinstance(rule, str):
                raise ImageListError(f"{where}: rewrite[{i}] must be a string FROM=TO")
            rules.append(parse_rewrite(rule))
        result = ImageList(path, platforms=tuple(platforms),
                           rewrites=extra_rewrites + tuple(rules))
        refs = [(f"images[{i}]", *_entry_text(where, i, e))
                for i, e in enumerate(data["images"])]
    seen: dict[str, tuple[str, ImageSpec]] = {}               # local name -> (where, spec)
    for at, ref_text, target in refs:
        try:
            spec = build_spec(ref_text, target, result.rewrites)
        except ImageListError as exc:
            raise ImageListError(f"{where}: {at}: {exc}") from None
        first = seen.get(spec.target)
        if first is not None:
            if str(first[1].source) == str(spec.source):
                continue                                      # the same image, spelt again
            raise ImageListError(
                f"{where}: {first[1].source} ({first[0]}) and {spec.source} ({at}) would both "
                f"be {spec.target} in the local registry; drop one, or give one another name "
                "('as:' in a YAML list, or a rewrite rule; nodes then pull it by that name, "
                "not through the mirror)")
        seen[spec.target] = (at, spec)
        result.images.append(spec)
    if not result.images:
        raise ImageListError(f"{where}: the image list is empty")
    return result


def load_image_list(path: str | Path, extra_rewrites: tuple[Rewrite, ...] = ()) -> ImageList:
    """Read and parse an image list file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ImageListError(f"cannot read image list {p}: {exc.strerror}") from None
    return parse_image_list(text, p, extra_rewrites)
