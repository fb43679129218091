"""Typed readers for inventory values: each reads one key, or records a Problem and returns None.

A `Collector` knows the file name and the line of every key; the readers (`text`, `integer`,
`ipv4`, `network`, ...) check one value and say what is wrong and what to write instead.
"""

from __future__ import annotations

import difflib
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address, ip_interface, ip_network
from typing import Any

from runbooks.core.inventory_model import Problem
from runbooks.core.inventory_yaml import Path_

IFNAMSIZ = 15  # Linux allows interface names of at most 15 characters (IFNAMSIZ - 1)
_BAD_IFNAME = re.compile(r"[/:\s]")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_MISSING = object()


def dotted(path: Path_) -> str:
    """hosts.rp0.vlan.address for ("hosts", "rp0", "vlan", "address"); list items as [i]."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def kind_of(value: Any) -> str:
    """A YAML-ish name for the type of `value`, for messages."""
    if value is None:
        return "nothing (null)"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


class Collector:
    """Collects problems for one file, placing each at the line of its key."""

    def __init__(self, file: str, lines: dict[Path_, int]):
        self.file = file
        self.lines = lines
        self.problems: list[Problem] = []

    def line(self, path: Path_) -> int | None:
        """The line of `path`, or of its nearest parent that exists in the file (else 1)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1

    def add(self, path: Path_, message: str, line: int | None = None) -> None:
        """Record a problem at `path` (at its line unless `line` is given)."""
        self.problems.append(Problem(self.file, line or self.line(path), dotted(path), message))

    # -- structure -----------------------------------------------------------------------
    def mapping(self, value: Any, path: Path_, keys: dict[str, bool], example: str = "",
                ) -> dict[str, Any] | None:
        """Check `value` is a mapping whose keys are all in `keys` (name -> required)."""
        if not isinstance(value, dict):
            hint = f"; write it like {example}" if example else ""
            self.add(path, f"must be a mapping (key: value lines), got {kind_of(value)}{hint}")
            return None
        for key in value:
            if str(key) not in keys:
                self.unknown_key(path, str(key), list(keys))
        for key, required in keys.items():
            if required and value.get(key) is None:
                if key in value:
                    self.add((*path, key), f"'{key}' is empty; give it a value")
                else:
                    where = f"under '{dotted(path)}'" if path else "at the top level"
                    self.add((*path, key), f"missing required key '{key}'; add it {where}")
        return value

    def unknown_key(self, path: Path_, key: str, known: list[str]) -> None:
        """Report a key that is not allowed here, suggesting the closest allowed one."""
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(known)}"
        self.add((*path, key), f"unknown key '{key}'; {hint}")

    # -- scalars -------------------------------------------------------------------------
    def text(self, value: Any, path: Path_, what: str = "a string") -> str | None:
        """A non-empty string."""
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            hint = f"; quote it: '{value}'" if isinstance(value, (int, float)) else ""
            self.add(path, f"must be {what}, got {kind_of(value)} {value!r}{hint}")
            return None
        return value

    def integer(self, value: Any, path: Path_, low: int, high: int | None, what: str,
                ) -> int | None:
        """An integer in [low, high] (no upper bound when high is None); booleans refused."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be an integer ({what}), got {kind_of(value)} {value!r}; "
                           "write a whole number without quotes or units")
            return None
        if value < low or (high is not None and value > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.add(path, f"{value} is out of range: {what} must be {limit}")
            return None
        return value

    def boolean(self, value: Any, path: Path_) -> bool | None:
        """true or false."""
        if value is None:
            return None
        if not isinstance(value, bool):
            self.add(path, f"must be true or false, got {kind_of(value)} {value!r}")
            return None
        return value

    def choice(self, value: Any, path: Path_, choices: tuple[str, ...], what: str) -> str | None:
        """One of `choices`, with a did-you-mean suggestion."""
        if value is None:
            return None
        if not isinstance(value, str) or value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            self.add(path, f"unknown {what} {value!r}; {hint}use one of: {', '.join(choices)}")
            return None
        return value

    def string_list(self, value: Any, path: Path_, what: str) -> list[tuple[Path_, str]] | None:
        """A list of strings (a single string is refused: write [a, b])."""
        if value is None:
            return None
        if not isinstance(value, list):
            self.add(path, f"must be a list of {what}, like [a, b]; got {kind_of(value)}")
            return None
        out = []
        for index, item in enumerate(value):
            item_path = (*path, index)
            if self.text(item, item_path, what) is not None:
                out.append((item_path, item))
        return out

    # -- addresses -----------------------------------------------------------------------
    def ipv4(self, value: Any, path: Path_, what: str = "an IPv4 address") -> IPv4Address | None:
        """A single IPv4 address such as 192.168.10.2."""
        if value is None:
            return None
        try:
            address = ip_address(str(value)) if isinstance(value, str) else None
        except ValueError:
            address = None
        if not isinstance(address, IPv4Address):
            self.add(path, f"{value!r} is not {what}; write a dotted quad like 192.168.10.2")
            return None
        return address

    def network(self, value: Any, path: Path_) -> IPv4Network | None:
        """An IPv4 network in CIDR form with no host bits set, such as 192.168.10.0/25."""
        if value is None:
            return None
        if not isinstance(value, str) or "/" not in value:
            self.add(path, f"{value!r} is not a network in CIDR form; write it like "
                           "192.168.10.0/25")
            return None
        try:
            net = ip_network(value, strict=False)
        except ValueError:
            self.add(path, f"{value!r} is not a valid network; write it like 192.168.10.0/25")
            return None
        if not isinstance(net, IPv4Network):
            self.add(path, f"{value!r} is not an IPv4 network; write it like 192.168.10.0/25")
            return None
        if ip_interface(value).ip != net.network_address:
            self.add(path, f"{value} has host bits set; did you mean {net}?")
            return None
        return net

    def interface_address(self, value: Any, path: Path_) -> IPv4Interface | None:
        """An address with its prefix, such as 192.168.10.3/25."""
        if value is None:
            return None
        try:
            iface = ip_interface(value) if isinstance(value, str) and "/" in value else None
        except ValueError:
            iface = None
        if not isinstance(iface, IPv4Interface):
            self.add(path, f"{value!r} is not an address with prefix; write it like "
                           "192.168.10.3/25")
            return None
        return iface

    def host_address(self, value: Any, path: Path_) -> str | None:
        """An IP address or a DNS name to reach a host at."""
        address = self.text(value, path, "an IP address or DNS name")
        if address is None:
            return None
        if re.fullmatch(r"[0-9.]+", address):
            ipv4 = self.ipv4(address, path, "a valid IPv4 address")
            return str(ipv4) if ipv4 else None
        if ":" in address:
            try:
                return str(ip_address(address))
            except ValueError:
                pass
        if not _HOSTNAME.match(address):
            self.add(path, f"{address!r} is neither an IP address nor a DNS name; write e.g. "
                           "192.168.1.50 or dell.local")
            return None
        return address

    def ifname(self, value: Any, path: Path_, suggestion: str | None = None) -> str | None:
        """A Linux interface name: 1-15 characters, no '/', ':' or whitespace, not . or .."""
        name = self.text(value, path, "an interface name")
        if name is None:
            return None
        if _BAD_IFNAME.search(name) or name in (".", ".."):
            self.add(path, f"interface name {name!r} contains characters Linux refuses "
                           "('/', ':' or whitespace); use letters, digits, '.', '-' or '_'")
            return None
        if len(name) > IFNAMSIZ:
            hint = suggestion or name[:IFNAMSIZ]
            self.add(path, f"interface name {name!r} is {len(name)} characters, Linux allows at "
                           f"most {IFNAMSIZ}; pick a shorter one, e.g. {hint}")
            return None
        return name


def vlan_name_suggestion(parent: str, vlan_id: int | str) -> str:
    """Short VLAN interface names for a long parent, e.g. 'enx.100' or 'enxf8e43b5d5.100'."""
    suffix = f".{vlan_id}"
    head = re.match(r"[A-Za-z]+", parent)
    short = (head.group(0)[:3] if head else parent[:3]) + suffix
    fitted = parent[: IFNAMSIZ - len(suffix)] + suffix
    options = f"'{short}'" if short == fitted else f"'{short}' or '{fitted}'"
    return f"{options} (<parent[:n]>.<id>, at most {IFNAMSIZ} characters)"


def shorter_vlan_name(name: str, parent: str | None, vlan_id: int | None) -> str:
    """A suggestion for a too-long VLAN interface name, from the name itself when it looks
    like <parent>.<id>, else from the parent and the VLAN id."""
    match = re.fullmatch(r"(.+)\.(\d+)", name)
    if match:
        return vlan_name_suggestion(match.group(1), match.group(2))
    return vlan_name_suggestion(parent or name, vlan_id or 100)
