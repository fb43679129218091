"""Read this machine's apt sources (one-line .list and deb822 .sources files).

The lab never names a package mirror itself: debootstrap's mirror, the guests' sources and
the apt proxy's allow-list all come from the entries parsed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class AptSource:
    """One source entry: types (deb/deb-src), URIs, suites, components, options."""

    types: list[str]
    uris: list[str]
    suites: list[str]
    components: list[str]
    options: dict[str, str] = field(default_factory=dict)


def parse_one_line(text: str) -> list[AptSource]:
    """Parse ``deb [opts] URI SUITE COMPONENT...`` lines."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options: dict[str, str] = {}
        if "[" in line and "]" in line:
            before, rest = line.split("[", 1)
            opts, after = rest.split("]", 1)
            for opt in opts.split():
                key, _, value = opt.partition("=")
                options[key] = value
            line = before + after
        words = line.split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        entries.append(AptSource([words[0]], [words[1]], [words[2]], words[3:], options))
    return entries


def parse_deb822(text: str) -> list[AptSource]:
    """Parse deb822 stanzas (Types/URIs/Suites/Components; Enabled: no skips a stanza)."""
    entries = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += " " + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "types" not in fields or "uris" not in fields:
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        options = {k: v for k, v in fields.items()
                   if k not in ("types", "uris", "suites", "components")}
        entries.append(AptSource(fields["types"].split(), fields["uris"].split(),
                                 fields.get("suites", "").split(),
                                 fields.get("components", "").split(), options))
    return entries


def machine_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """All enabled entries of sources.list and sources.list.d/*.list|*.sources."""
    entries: list[AptSource] = []
    main = etc_apt / "sources.list"
    if main.exists():
        entries += parse_one_line(main.read_text())
    folder = etc_apt / "sources.list.d"
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix == ".list":
                entries += parse_one_line(path.read_text())
            elif path.suffix == ".sources":
                entries += parse_deb822(path.read_text())
    return entries


def allowed_hosts(entries: list[AptSource]) -> list[str]:
    """Host names of every http(s) URI in the entries (the proxy's allow-list)."""
    hosts = {urlsplit(uri).hostname for e in entries for uri in e.uris}
    return sorted(h for h in hosts if h)


def debian_entries(entries: list[AptSource], suite: str) -> list[AptSource]:
    """Binary entries whose suites belong to ``suite`` (bookworm, bookworm-updates...)."""
    picked = []
    for entry in entries:
        suites = [s for s in entry.suites if s == suite or s.startswith(suite + "-")
                  or s.startswith(suite + "/")]
        if "deb" in entry.types and suites:
            picked.append(AptSource(["deb"], entry.uris, suites, entry.components or ["main"],
                                    {}))
    return picked


def debootstrap_mirror(entries: list[AptSource], suite: str) -> str:
    """The first URI that serves ``suite`` itself (raise if the machine has none)."""
    for entry in debian_entries(entries, suite):
        if suite in entry.suites and entry.uris:
            return entry.uris[0]
    raise LookupError(f"no apt source in /etc/apt serves the suite {suite!r}; add one "
                      "(sources.list or sources.list.d/*.sources) to build the lab rootfs")


def render_deb822(entries: list[AptSource]) -> str:
    """Guest sources file for the picked entries."""
    stanzas = []
    for e in entries:
        stanzas.append(f"Types: deb\nURIs: {' '.join(e.uris)}\nSuites: {' '.join(e.suites)}\n"
                       f"Components: {' '.join(e.components)}\n"
                       "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return "\n".join(stanzas)
