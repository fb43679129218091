"""Facts several runbooks read, each defined once as a named `Fact` (command + parser).

Facts that belong to one subject live beside it (the NAT table's in `common.nat`, a
link's in `common.links`); this module holds the ones with no better home.
"""

from __future__ import annotations

import re

from runbooks.core.facts import Fact, FactResult


def parse_containerd_version(text: str) -> tuple[int, int] | None:
    """`containerd --version` or an apt version ("1.6.20~ds1-1") -> (major, minor)."""
    for token in text.split():
        match = re.fullmatch(r"v?(?:\d+:)?(\d+)\.(\d+)(?:[.~+-].*)?", token)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def _containerd_version(result: FactResult) -> tuple[int, int] | None:
    return parse_containerd_version(result.out) if result.ok else None


# The installed containerd, else the version apt would install (a fresh board in check mode).
CONTAINERD_VERSION = Fact(
    "containerd_version",
    "containerd --version 2>/dev/null || "
    "apt-cache policy containerd | sed -n 's/^ *Candidate: //p'",
    _containerd_version,
)

# The installed containerd only (None when there is none).
CONTAINERD_INSTALLED = Fact("containerd_installed", "containerd --version", _containerd_version)
