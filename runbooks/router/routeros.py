"""MikroTik RouterOS 6 and 7: the BGP side as RouterOS commands, and the difference to apply.

RouterOS has no POSIX shell, so this side never goes through the engine's shell facts. It
speaks RouterOS's own CLI:
- `render_script()`: the whole script for a router greenroom cannot reach (`inv router
  --print`): safe to paste twice (each entry is found by name and set, or added).
- `plan_commands()`: given what `print terse` shows on the router now, only the commands
  that remove the difference (none when converged), for applying over SSH.

RouterOS 6: `/routing bgp instance set default as=...`, `/routing filter` chains,
`/routing bgp peer` entries. RouterOS 7: `/routing/bgp/template set default`,
`/routing/filter/rule` chains, `/routing/bgp/connection` entries with `local.role`.
Every entry greenroom makes is named `metallb-<node>` or carries comment=greenroom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runbooks.common.bgp import Router, SitePlan
from runbooks.common.routeros_state import parse_print

PEER_PREFIX = "metallb-"
COMMENT = "greenroom"
IN_CHAIN = "metallb-in"
OUT_CHAIN = "metallb-out"
KINDS = ("routeros6", "routeros7")
# what each dialect calls things
MENUS = {
    "routeros6": {"peer": "/routing bgp peer", "filter": "/routing filter",
                  "instance": "/routing bgp instance"},
    "routeros7": {"peer": "/routing/bgp/connection", "filter": "/routing/filter/rule",
                  "instance": "/routing/bgp/template"},
}
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def quote(value: str) -> str:
    """A RouterOS value: bare when simple, else double-quoted with escapes."""
    if re.fullmatch(r"[A-Za-z0-9._:/-]+", value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def seconds(value: str) -> int | None:
    """RouterOS durations (`3m`, `1m30s`, `90s`, `90`) in seconds; None if not one."""
    if value.isdigit():
        return int(value)
    match = _DURATION.fullmatch(value)
    if not match or not value:
        return None
    w, d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return (((w * 7 + d) * 24 + h) * 60 + m) * 60 + s


@dataclass(frozen=True)
class Wanted:
    """What the router should have: instance settings, filter rules and one peer per node."""

    instance: dict[str, str]
    filters: list[dict[str, str]]
    peers: dict[str, dict[str, str]]


def wanted(site: SitePlan, router: Router, password: str | None) -> Wanted:
    """The entries `router` needs, in its dialect."""
    if router.kind not in KINDS:
        raise ValueError(f"{router.name} is {router.kind}, not RouterOS")
    metallb = site.metallb
    remote_as = metallb.cluster_asn()  # ValueError when the section has none
    nets = sorted(metallb.networks(), key=lambda n: (int(n.network_address), n.prefixlen))
    ibgp = router.asn == remote_as
    peers: dict[str, dict[str, str]] = {}
    # both dialects name the session password and hold time alike
    session_options = {**({"tcp-md5-key": password} if password else {}),
                       **({"hold-time": f"{metallb.hold_time}s"} if metallb.hold_time else {})}
    if router.kind == "routeros6":
        instance = {"as": str(router.asn), "router-id": str(router.address)}
        filters = [{"chain": IN_CHAIN, "prefix": str(net),
                    "prefix-length": f"{net.prefixlen}-32", "action": "accept"}
                   for net in nets]
        filters += [{"chain": IN_CHAIN, "action": "discard"},
                    {"chain": OUT_CHAIN, "action": "discard"}]
        for node in site.nodes:
            peers[PEER_PREFIX + node.name] = {
                "instance": "default", "remote-address": str(node.address),
                "remote-as": str(remote_as), "in-filter": IN_CHAIN, "out-filter": OUT_CHAIN,
                **session_options}
    else:
        instance = {"as": str(router.asn), "router-id": str(router.address)}
        filters = [{"chain": IN_CHAIN,
                    "rule": f"if (dst in {net} && dst-len in {net.prefixlen}-32) {{ accept }}"}
                   for net in nets]
        filters += [{"chain": IN_CHAIN, "rule": "reject"},
                    {"chain": OUT_CHAIN, "rule": "reject"}]
        for node in site.nodes:
            peers[PEER_PREFIX + node.name] = {
                "templates": "default", "as": str(router.asn),
                "remote.address": str(node.address), "remote.as": str(remote_as),
                "local.role": "ibgp" if ibgp else "ebgp", "input.filter": IN_CHAIN,
                "output.filter-chain": OUT_CHAIN, **session_options}
    for rule in filters:
        rule["comment"] = COMMENT
    return Wanted(instance, filters, peers)


def _args(values: dict[str, str]) -> str:
    return " ".join(f"{key}={quote(value)}" for key, value in values.items())


def _same(key: str, want: str, have: str | None) -> bool:
    if have is None:
        return False
    if key == "hold-time":
        return seconds(want.rstrip("s") if want.endswith("s") else want) == seconds(have) \
            or seconds(want) == seconds(have)
    return want == have


def render_script(site: SitePlan, router: Router, header: str, password: str | None) -> str:
    """The full, paste-twice-safe script for `router` (RouterOS 6 or 7)."""
    want = wanted(site, router, password)
    menu = MENUS[router.kind]
    lines = [f"# {header}",
             "# BGP sessions with the cluster's MetalLB speakers; paste into the terminal.",
             f"{menu['instance']} set default {_args(want.instance)}",
             f"{menu['filter']} remove [find comment={COMMENT}]"]
    lines += [f"{menu['filter']} add {_args(rule)}" for rule in want.filters]
    lines.append(f':foreach p in=[{menu["peer"]} find where name~"^{PEER_PREFIX}"] do={{ '
                 f'{menu["peer"]} remove $p }}')
    lines += [f"{menu['peer']} add name={quote(name)} {_args(values)}"
              for name, values in want.peers.items()]
    return "\n".join(lines) + "\n"


def print_commands(kind: str) -> dict[str, str]:
    """The `print terse` commands whose output `plan_commands` reads, by table."""
    menu = MENUS[kind]
    return {"instance": f"{menu['instance']} print terse where name=default",
            "filter": f"{menu['filter']} print terse where comment={COMMENT}",
            "peer": f"{menu['peer']} print terse where name~\"^{PEER_PREFIX}\""}


def plan_commands(site: SitePlan, router: Router, password: str | None,
                  printed: dict[str, str]) -> list[str]:
    """Only the commands that make the router match, given `print terse` output per table
    (keys of `print_commands`); an empty list when it is converged."""
    want = wanted(site, router, password)
    menu = MENUS[router.kind]
    commands: list[str] = []
    instances = [e for e in parse_print(printed.get("instance", ""))
                 if e.values.get("name") == "default"]
    current = instances[0].values if instances else {}
    diff = {k: v for k, v in want.instance.items() if current.get(k) != v}
    if diff:
        commands.append(f"{menu['instance']} set default {_args(diff)}")
    have_filters = [{k: v for k, v in e.values.items() if k in rule_keys(want.filters)}
                    for e in parse_print(printed.get("filter", ""))
                    if e.values.get("comment") == COMMENT]
    if have_filters != want.filters:
        if have_filters:
            commands.append(f"{menu['filter']} remove [find comment={COMMENT}]")
        commands += [f"{menu['filter']} add {_args(rule)}" for rule in want.filters]
    have_peers = {e.values.get("name", ""): e for e in parse_print(printed.get("peer", ""))}
    for name, values in want.peers.items():
        entry = have_peers.get(name)
        if entry is None:
            commands.append(f"{menu['peer']} add name={quote(name)} {_args(values)}")
            continue
        changed = {k: v for k, v in values.items() if not _same(k, v, entry.values.get(k))}
        if "X" in entry.flags:
            commands.append(f"{menu['peer']} enable [find name={quote(name)}]")
        if changed:
            commands.append(f"{menu['peer']} set [find name={quote(name)}] {_args(changed)}")
    for name in have_peers:
        if name.startswith(PEER_PREFIX) and name not in want.peers:
            commands.append(f"{menu['peer']} remove [find name={quote(name)}]")
    return commands


def rule_keys(rules: list[dict[str, str]]) -> set[str]:
    """Every key the wanted filter rules use (what to compare on the router's rows)."""
    return {key for rule in rules for key in rule}

