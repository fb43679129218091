"""RouterOS 6 and 7 as greenroom reads it: `print` output parsed, BGP sessions and routes.

Shared by `inv router` (which plans from `print terse`) and `inv metallb.check` (which reads
the sessions and routes). Pure text in, values out; the SSH side is `run_over()`.

`print` comes in two layouts, both read by `parse_print()`:
- terse: one row per entry, ` 0 X name=a remote-as=1`;
- detail (what `print`, `print detail` and `print status` show): an entry's row wraps onto
  indented continuation lines, `;;; comment` lines precede it, and RouterOS 7 shortens a key
  that shares the previous key's prefix: `remote.address=... .as=65000` is `remote.as`.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# what greenroom sends to read a router's BGP state, by dialect
SESSIONS = {"routeros6": "/routing bgp peer print status",
            "routeros7": "/routing/bgp/session print"}
ROUTES = {"routeros6": "/ip route print detail where bgp",
          "routeros7": "/ip/route print detail where bgp"}
# RouterOS answers errors on stdout with exit status 0
ERRORS = ("failure:", "syntax error", "bad command name", "expected end of command",
          "input does not match any value", "no such item", "invalid value")

Run = Callable[[str], tuple[int, str]]  # command -> (exit status, stdout + stderr)


class RouterOSRefused(RuntimeError):
    """The router answered a command with one of its error messages."""


@dataclass(frozen=True)
class Entry:
    """One entry of `print`: its number, flags and key=value pairs."""

    index: int
    flags: str
    values: dict[str, str]


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: read it word by word
        return text.split()


def parse_print(out: str) -> list[Entry]:
    """`print` output (terse or detail) -> entries; flags such as X or E kept, a `;;;`
    comment as the value `comment` unless the row has one, dotted short keys expanded."""
    chunks: list[tuple[str, str]] = []  # (text of the entry, comment before it)
    comment = ""
    for raw in out.splitlines():
        line = raw.strip()
        if not line or line.startswith("Flags:") or line.startswith("Columns:"):
            continue
        if line.startswith(";;;"):
            comment = line[3:].strip()
            continue
        if line[0].isdigit():
            chunks.append((line, comment))
            comment = ""
        elif chunks and raw[:1].isspace() and "=" in line:
            text, before = chunks[-1]
            chunks[-1] = (f"{text} {line}", before)
    entries: list[Entry] = []
    for text, before in chunks:
        tokens = _tokens(text)
        if not tokens or not tokens[0].isdigit():
            continue
        flags = ""
        values: dict[str, str] = {}
        prefix = ""
        for token in tokens[1:]:
            if "=" not in token:
                if not values:
                    flags += token
                continue
            key, _, value = token.partition("=")
            if key.startswith(".") and prefix:
                key = prefix + key
            elif "." in key[1:]:
                prefix = key[:key.index(".", 1)]
            values[key] = value
        if before and "comment" not in values:
            values["comment"] = before
        entries.append(Entry(int(tokens[0]), flags, values))
    return entries


@dataclass(frozen=True)
class Session:
    """One BGP session as RouterOS shows it."""

    name: str
    remote: str
    established: bool
    state: str


def sessions(kind: str, out: str) -> list[Session]:
    """`/routing bgp peer print status` (6) or `/routing/bgp/session print` (7) -> sessions.

    RouterOS 6 says `state=` (established, active, connect, idle, opensent, openconfirm) and
    flags E; RouterOS 7 lists a session per connection attempt, named `<connection>-<n>`, with
    flag E once established (no state word: "not established" otherwise)."""
    found: list[Session] = []
    for entry in parse_print(out):
        v = entry.values
        if kind == "routeros6":
            state = v.get("state", "established" if "E" in entry.flags else "")
            up = state == "established" and "X" not in entry.flags
            if "X" in entry.flags:
                state = "disabled"
            found.append(Session(v.get("name", str(entry.index)), v.get("remote-address", ""),
                                 up, state or "not established"))
        else:
            name = v.get("name", "")
            base, dash, number = name.rpartition("-")
            up = "E" in entry.flags
            found.append(Session(base if dash and number.isdigit() else name,
                                 v.get("remote.address", ""), up,
                                 "established" if up else "not established"))
    return found


def session_states(kind: str, out: str) -> dict[str, bool]:
    """{peer or connection name: established} (the first session of a name that is up wins)."""
    states: dict[str, bool] = {}
    for session in sessions(kind, out):
        states[session.name] = states.get(session.name, False) or session.established
    return states


def node_sessions(kind: str, out: str, nodes: Sequence[tuple[str, str]],
                  prefix: str = "metallb-") -> dict[str, str]:
    """{node name: "Established", RouterOS's state word, or "missing"} for each (name,
    address): a session matches by its peer name (`metallb-<node>`) or remote address; an
    established one wins over others for the same node."""
    found = sessions(kind, out)
    by_node: dict[str, str] = {}
    for name, address in nodes:
        mine = [s for s in found if s.name == prefix + name or s.remote == address]
        if any(s.established for s in mine):
            by_node[name] = "Established"
        else:
            by_node[name] = mine[0].state if mine else "missing"
    return by_node


def active_routes(out: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """`/ip route print detail where bgp` -> destinations of the active routes (flag A)."""
    nets = []
    for entry in parse_print(out):
        if "A" not in entry.flags or "X" in entry.flags:
            continue
        try:
            nets.append(ipaddress.ip_network(entry.values.get("dst-address", ""), strict=False))
        except ValueError:
            continue
    return nets


def health(kind: str, nodes: Sequence[tuple[str, str]], addresses: Sequence[str],
           sessions_out: str, routes_out: str) -> list[tuple[bool, str]]:
    """(ok, text) for every node's session and every LoadBalancer IP's route, worded as
    `inv metallb.check` words them for FRR and BIRD routers."""
    out: list[tuple[bool, str]] = []
    states = node_sessions(kind, sessions_out, nodes)
    for name, address in nodes:
        state = states[name]
        out.append((state == "Established", f"session with {name} ({address}): {state}"))
    nets = active_routes(routes_out)
    for address in addresses:
        ip = ipaddress.ip_address(address)
        routed = any(ip.version == net.version and ip in net for net in nets)
        out.append((routed, f"route to LoadBalancer IP {address}"
                    + ("" if routed else ": none active from BGP")))
    return out


def checked(run: Run, command: str, mask: Callable[[str], str] = str) -> str:
    """Run one command; RouterOSRefused (masked text) when it fails or RouterOS refuses it."""
    status, out = run(command)
    lowered = out.lower()
    if status != 0 or any(word in lowered for word in ERRORS):
        raise RouterOSRefused(f"the router refused `{mask(command)}`: "
                              f"{mask(out.strip())[-300:] or f'exit {status}'}")
    return out


def run_over(connection: object) -> Run:
    """A Run over an open Fabric connection: one SSH exec request per command."""
    def run(command: str) -> tuple[int, str]:
        done = connection.run(command, hide=True, warn=True, in_stream=False)  # type: ignore
        return int(done.exited), str(done.stdout) + str(done.stderr)
    return run
