"""Parse isc-dhcp-server's lease database (dhcpd.leases(5)) into leases, like dhcp-lease-list.

The database is an append-only journal: a lease may appear many times, and the latest entry
for an IP address is its current state. Unlike dhcp-lease-list (which splits the file on
the word "lease" and matches with one regular expression), this reads the file with a real
tokenizer, so hostnames containing "lease", spaces, quotes or braces, `ends never;`,
`db-time-format local` (`starts epoch N;`), upper-case MACs, comments and non-lease blocks
(failover peers, host declarations) are handled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Any

TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"#]+', re.S)


@dataclass(frozen=True)
class Lease:
    """One lease's current state: IP, MAC, hostname, start, end (None = never), state."""

    ip: IPv4Address
    mac: str | None
    hostname: str | None
    start: datetime | None
    end: datetime | None
    state: str  # binding state: active, free, expired, released, abandoned, backup, ...

    def is_active(self, now: datetime) -> bool:
        """Bound now: binding state active and not yet ended."""
        return self.state == "active" and (self.end is None or self.end > now)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ip"] = str(self.ip)
        for key in ("start", "end"):
            value = getattr(self, key)
            data[key] = value.isoformat() if value else None
        return data


def unquote(token: str) -> str:
    """A dhcpd.leases string token without quotes, with \\" \\\\ and octal \\NNN decoded."""
    body = token[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            octal = re.match(r"[0-7]{1,3}", body[i + 1:])
            if octal:
                out.append(int(octal.group(0), 8) & 0xFF)
                i += 1 + len(octal.group(0))
                continue
            out += body[i + 1].encode()
            i += 2
            continue
        out += ch.encode()
        i += 1
    return out.decode("utf-8", errors="replace")


def tokens(text: str) -> Iterator[str]:
    """The file's tokens: words, strings (still quoted), braces and semicolons."""
    for match in TOKEN.finditer(text):
        token = match.group(0)
        if token[0].isspace() or token[0] == "#":
            continue
        yield token


def statements(stream: Iterator[str]) -> Iterator[tuple[list[str], list[Any] | None]]:
    """(words, body) per statement: body is None for `words;`, a list for `words { ... }`."""
    words: list[str] = []
    for token in stream:
        if token == ";":
            if words:
                yield words, None
            words = []
        elif token == "{":
            yield words, list(statements(stream))
            words = []
        elif token == "}":
            return
        else:
            words.append(token)


def parse_time(words: list[str]) -> datetime | None:
    """`3 2024/01/10 10:00:00` (UTC), `epoch 1704880800` or `never` -> datetime | None."""
    if not words or words[0] == "never":
        return None
    if words[0] == "epoch" and len(words) > 1:
        return datetime.fromtimestamp(int(words[1]), UTC)
    stamp = " ".join(words[1:3]) if len(words) >= 3 else " ".join(words)
    return datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S").replace(tzinfo=UTC)


def _lease(address: str, body: list[Any]) -> Lease | None:
    try:
        ip = IPv4Address(address)
    except ValueError:
        return None  # an IPv6 lease (ia-na) or garbage: not ours to show
    fields: dict[str, Any] = {"mac": None, "hostname": None, "start": None, "end": None,
                              "state": "unknown"}
    for words, sub in body:
        if sub is not None or not words:
            continue
        head = words[0]
        if head in ("starts", "ends"):
            key = "start" if head == "starts" else "end"
            fields[key] = parse_time(words[1:])
        elif words[:2] == ["binding", "state"] and len(words) > 2:
            fields["state"] = words[2]
        elif head == "abandoned":
            fields["state"] = "abandoned"
        elif words[:2] == ["hardware", "ethernet"] and len(words) > 2:
            fields["mac"] = words[2].lower()
        elif head == "client-hostname" and len(words) > 1:
            fields["hostname"] = unquote(words[1]) if words[1].startswith('"') else words[1]
    return Lease(ip=ip, **fields)


def parse_leases(text: str) -> list[Lease]:
    """Every IP's latest lease entry, sorted by IP (later entries replace earlier ones)."""
    latest: dict[IPv4Address, Lease] = {}
    for words, body in statements(tokens(text)):
        if body is not None and len(words) == 2 and words[0] == "lease":
            lease = _lease(words[1], body)
            if lease is not None:
                latest[lease.ip] = lease
    return [latest[ip] for ip in sorted(latest)]


def active_leases(leases: list[Lease], now: datetime | None = None) -> list[Lease]:
    """The leases bound right now."""
    now = now or datetime.now(UTC)
    return [lease for lease in leases if lease.is_active(now)]


def format_table(leases: list[Lease]) -> str:
    """A human table: IP, MAC, hostname, start, end, state."""
    rows = [("IP", "MAC", "HOSTNAME", "START (UTC)", "END (UTC)", "STATE")]
    for lease in leases:
        rows.append((
            str(lease.ip), lease.mac or "-", lease.hostname or "-",
            lease.start.strftime("%Y-%m-%d %H:%M:%S") if lease.start else "-",
            lease.end.strftime("%Y-%m-%d %H:%M:%S") if lease.end else "never",
            lease.state))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
                     for r in rows)
