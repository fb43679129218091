"""The inventory's `cluster:` section and the cluster roles, read and checked in one place.

    cluster:
      distribution: k3s              # k3s (default) or microk8s
      version: v1.34.1+k3s1          # pinned; changing it upgrades the nodes one at a time
      disable: [traefik, servicelb]  # the default: MetalLB serves LoadBalancers
      server_args: {kube-apiserver-arg: [audit-log-maxage=3]}   # more k3s config.yaml keys
      source: https://<mirror of the release downloads>         # default from invoke.yaml
      images: tar.zst                # airgap images format: tar.zst, tar.gz or tar

Hosts with role `k3s-server` / `k3s-agent` join it; `vars: {arch: arm64}` names a node's
architecture (default from its board: raspberrypi and lepotato arm64, x86 amd64; a Pi 3 on
32-bit Raspberry Pi OS is `arm`, also written `armhf`). Several servers run embedded etcd
(`cluster-init` on the first); an even number is refused. The API address is the VIP when
`network.vip` is set, else the first server's VLAN address.

`read_cluster` is a pure reader: it gets the inventory's Collector (problems land with file,
line, key and a did-you-mean like every other key), the raw section and the hosts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbooks.common.section_names import K3S_AGENT, K3S_SERVER

if TYPE_CHECKING:
    from runbooks.core.inventory_fields import Collector
    from runbooks.core.inventory_model import Host, Network

DISTRIBUTIONS = ("k3s", "microk8s")
K3S_COMPONENTS = ("traefik", "servicelb", "local-storage", "metrics-server", "coredns",
                  "runtimes", "helm-controller")
DEFAULT_DISABLE = ("traefik", "servicelb")
IMAGE_FORMATS = ("tar.zst", "tar.gz", "tar")
ARCHES = ("amd64", "arm64", "arm")
ARCH_ALIASES = {"armhf": "arm", "aarch64": "arm64", "x86_64": "amd64", "armv7l": "arm"}
BOARD_ARCH = {"raspberrypi": "arm64", "lepotato": "arm64", "x86": "amd64"}
SERVER, AGENT = K3S_SERVER, K3S_AGENT
CLUSTER_KEYS = {"distribution": False, "version": True, "disable": False, "server_args": False,
                "source": False, "images": False}
K3S_VERSION = re.compile(r"v1\.\d+\.\d+\+k3s\d+")
_ARG_KEY = re.compile(r"[a-z][a-z0-9-]*")
# config.yaml keys greenroom writes itself: setting them through server_args is refused
OWN_KEYS = ("token", "server", "cluster-init", "node-ip", "flannel-iface", "tls-san", "disable",
            "write-kubeconfig-mode", "disable-default-registry-endpoint")


@dataclass(frozen=True)
class Cluster:
    """The cluster the inventory describes."""

    distribution: str
    version: str
    api_address: str
    servers: tuple[str, ...]
    agents: tuple[str, ...] = ()
    arch: Mapping[str, str] = field(default_factory=dict)  # node -> amd64|arm64|arm
    disable: tuple[str, ...] = DEFAULT_DISABLE
    server_args: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    images: str = "tar.zst"
    vip: str | None = None

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.servers + self.agents

    @property
    def first_server(self) -> str:
        return self.servers[0]

    @property
    def arches(self) -> tuple[str, ...]:
        return tuple(sorted({self.arch[n] for n in self.nodes}))

    @property
    def ha(self) -> bool:
        return len(self.servers) > 1


def node_arch(host: Host) -> str | None:
    """A node's architecture: vars.arch (aliases allowed), else from its board."""
    given = (host.vars or {}).get("arch")
    if isinstance(given, str):
        return ARCH_ALIASES.get(given, given)
    return BOARD_ARCH.get(host.board or "")


def vlan_ip(host: Host) -> str:
    """The address other nodes reach `host` at: its VLAN address, else its address."""
    if host.vlan is not None and host.vlan.address is not None:
        return str(host.vlan.address.ip)
    return host.address


def read_cluster(c: Collector, value: Any, hosts: Mapping[str, Host],
                 network: Network | None) -> Cluster | None:
    """Check the `cluster:` section against the hosts; the Cluster, or None (problems added)."""
    path: tuple[str, ...] = ("cluster",)
    servers = [h for h in hosts.values() if SERVER in h.roles]
    agents = [h for h in hosts.values() if AGENT in h.roles and SERVER not in h.roles]
    if value is None:
        if servers or agents:
            first = (servers or agents)[0].name
            c.add(("hosts", first, "roles"), "hosts with role k3s-server or k3s-agent need a "
                  "top-level `cluster:` section, e.g. cluster: {version: v1.34.1+k3s1}")
        return None
    section = c.mapping(value, path, CLUSTER_KEYS, "cluster: {version: v1.34.1+k3s1}")
    if section is None:
        return None
    distribution = c.choice(section.get("distribution", "k3s"), (*path, "distribution"),
                            DISTRIBUTIONS, "distribution")
    version = c.text(section.get("version"), (*path, "version"), "a pinned release")
    if version and distribution == "k3s" and not K3S_VERSION.fullmatch(version):
        c.add((*path, "version"), f"{version!r} is not a k3s release; write it like "
                                  "v1.34.1+k3s1 (a tag of the k3s releases)")
        version = None
    disable = _read_disable(c, section.get("disable"), (*path, "disable"), distribution)
    server_args = _read_server_args(c, section.get("server_args"), (*path, "server_args"))
    source = c.text(section.get("source"), (*path, "source"), "a URL")
    if source and not re.fullmatch(r"https?://\S+", source):
        c.add((*path, "source"), f"{source!r} is not an http(s) URL; write the base the "
                                 "release's files are under, e.g. https://<mirror>/k3s")
        source = None
    images = c.choice(section.get("images", "tar.zst"), (*path, "images"), IMAGE_FORMATS,
                      "airgap images format")
    arch = _read_arches(c, [*servers, *agents])
    if distribution == "k3s":
        _check_roles(c, servers, agents)
    if not servers or version is None or distribution is None or images is None or \
            disable is None or server_args is None or arch is None:
        return None
    vip = str(network.vip) if network is not None and network.vip is not None else None
    return Cluster(distribution, version, vip or vlan_ip(servers[0]),
                   tuple(h.name for h in servers), tuple(h.name for h in agents), arch,
                   disable, server_args, source.rstrip("/") if source else None, images, vip)


def _read_disable(c: Collector, value: Any, path: tuple[str, ...],
                  distribution: str | None) -> tuple[str, ...] | None:
    if value is None:
        return DEFAULT_DISABLE
    items = c.string_list(value, path, "component names")
    if items is None:
        return None
    ok = True
    for item_path, item in items:
        if distribution == "k3s" and c.choice(item, item_path, K3S_COMPONENTS,
                                              "k3s component") is None:
            ok = False
    return tuple(item for _, item in items) if ok else None


def _read_server_args(c: Collector, value: Any, path: tuple[str, ...],
                      ) -> dict[str, Any] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        c.add(path, "must be a mapping of k3s config keys (its flags without --), e.g. "
                    "{kube-apiserver-arg: [audit-log-maxage=3]}")
        return None
    ok = True
    for key, item in value.items():
        key_path = (*path, str(key))
        if not isinstance(key, str) or not _ARG_KEY.fullmatch(key.removeprefix("--")):
            c.add(key_path, f"{key!r} is not a k3s flag name; write it without values, e.g. "
                            "kube-apiserver-arg")
            ok = False
        elif key.removeprefix("--") in OWN_KEYS:
            c.add(key_path, f"{key!r} is set by greenroom from the inventory; remove it "
                            "(disable: goes under cluster.disable, tls-san follows "
                            "network.vip)")
            ok = False
        elif not (isinstance(item, (str, int, bool)) or (isinstance(item, list) and all(
                isinstance(i, (str, int)) for i in item))):
            c.add(key_path, "must be a string, number, true/false or a list of strings")
            ok = False
    return {str(k).removeprefix("--"): v for k, v in value.items()} if ok else None


def _read_arches(c: Collector, nodes: list[Host]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for host in nodes:
        given = (host.vars or {}).get("arch")
        arch = node_arch(host)
        if given is not None and arch not in ARCHES:
            aliases = ", ".join(f"{k} = {v}" for k, v in ARCH_ALIASES.items())
            c.add(("hosts", host.name, "vars", "arch"),
                  f"unknown architecture {given!r}; use one of: {', '.join(ARCHES)} "
                  f"({aliases})")
            return None
        if arch is None:
            c.add(("hosts", host.name), f"cannot tell the architecture of {host.name}: set "
                  "board (raspberrypi, lepotato, x86) or vars: {arch: arm64}")
            return None
        out[host.name] = arch
    return out


def _check_roles(c: Collector, servers: list[Host], agents: list[Host]) -> None:
    if agents and not servers:
        c.add(("hosts", agents[0].name, "roles"), "k3s agents need a server to join: give one "
                                                  "host role k3s-server")
    if len(servers) > 1 and len(servers) % 2 == 0:
        c.add(("hosts", servers[-1].name, "roles"),
              f"{len(servers)} hosts have role k3s-server ({', '.join(h.name for h in servers)})"
              f": embedded etcd needs an odd number to keep quorum when one fails; use "
              f"{len(servers) - 1} or {len(servers) + 1}")
