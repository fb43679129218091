"""Facts several runbooks read, each defined once as a named `Fact` (command + parser).

Facts that belong to one subject live beside it (the NAT table's in `common.nat`, a
link's in `common.links`); this module holds the ones with no better home.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runbooks.core.facts import Fact, FactResult


def succeeded(result: FactResult) -> bool:
    """The parser of a yes/no fact: the command's exit status (`test -e PATH`, `command -v X`)."""
    return result.ok


def parse_containerd_version(text: str) -> tuple[int, int] | None:
    """`containerd --version` or an apt version ("1.6.20~ds1-1") -> (major, minor)."""
    for token in text.split():
        match = re.fullmatch(r"v?(?:\d+:)?(\d+)\.(\d+)(?:[.~+-].*)?", token)
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def _containerd_version(result: FactResult) -> tuple[int, int] | None:
    return parse_containerd_version(result.out) if result.ok else None


NO_CONTAINERD = "greenroom: no containerd installed"
# ONE command for both facts below (a batch runs it once: containerd is a Go binary whose
# start costs a board tens of ms): the installed containerd's version, else NO_CONTAINERD
# and the version apt would install.
CONTAINERD_COMMAND = ("containerd --version 2>/dev/null || "
                      f"{{ echo '{NO_CONTAINERD}'; "
                      "apt-cache policy containerd | sed -n 's/^ *Candidate: //p'; }")


def _installed_version(result: FactResult) -> tuple[int, int] | None:
    if NO_CONTAINERD in result.out:
        return None
    return _containerd_version(result)


# The installed containerd, else the version apt would install (a fresh board in check mode).
CONTAINERD_VERSION = Fact("containerd_version", CONTAINERD_COMMAND, _containerd_version)

# The installed containerd only (None when there is none).
CONTAINERD_INSTALLED = Fact("containerd_installed", CONTAINERD_COMMAND, _installed_version)


def _architecture(result: FactResult) -> str | None:
    words = result.out.split() if result.ok else []
    return words[0] if words else None


# The host's architecture as Debian names it (amd64, arm64, armhf; `uname -m`'s name where
# there is no dpkg); None when neither answers
ARCHITECTURE: Fact[str | None] = Fact(
    "architecture", "dpkg --print-architecture || uname -m", _architecture)


@dataclass(frozen=True)
class Listener:
    """A listening UDP socket, as `ss -H -lunp` prints it."""

    address: str                  # "0.0.0.0", "10.1.0.1", "::", "*"
    port: int
    device: str | None = None     # bound to one interface (SO_BINDTODEVICE): "eth0.100"
    processes: tuple[str, ...] = ()  # the owners' command names (only when read as root)


_PROCESS = re.compile(r'\("([^"]+)",pid=')


def parse_udp_listeners(text: str) -> list[Listener]:
    """`ss -H -lunp` output -> its listening sockets (lines it cannot read are skipped).

    A line: `UNCONN 0 0 0.0.0.0%eth0.100:67 0.0.0.0:* users:(("dhcpd",pid=7,fd=9))`."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local, _, port = fields[3].rpartition(":")
        if not port.isdigit() or not local:
            continue
        local, _, device = local.partition("%")
        found.append(Listener(local.strip("[]"), int(port), device or None,
                              tuple(_PROCESS.findall(" ".join(fields[5:])))))
    return found


# The host's listening UDP sockets (the DHCP and DNS servers' health)
UDP_LISTENERS = Fact("udp_listeners", "ss -H -lunp",
                     lambda result: parse_udp_listeners(result.out) if result.ok else [])
