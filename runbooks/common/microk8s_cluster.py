"""The inventory's `cluster:` section when `distribution: microk8s`, and the `microk8s` role.

    cluster:
      distribution: microk8s
      channel: 1.32/stable            # the snap channel (also the offline cache's channel)
      addons: [dns, hostpath-storage, {name: ingress}, {name: observability, args: [...]}]
      kubelet_args: {--max-pods: "60"}             # extraKubeletArgs of the launch config
      apiserver_args: {--audit-log-maxage: "3"}    # extraKubeAPIServerArgs
      offline: true                   # install the snap pinned by `inv microk8s.fetch`
                                      # from this machine's cache (snap ack + install)
      source: http://mirror/microk8s  # where microk8s.fetch gets it (else `snap download`)
      ingress_service: {address: 192.168.254.10}   # or true: the seed's LoadBalancer
                                      # Service for the ingress addon (MetalLB picks the IP)
      admin_user: ada                 # a named admin user with sudo on every node
      remove_default_user: true       # the image's `ubuntu` user removed (never the login)

Hosts with role `microk8s` are the nodes, the first one the seed node that the others join;
`vars: {worker: true}` makes a node join as a worker only. The `metallb` addon is refused:
MetalLB on the cluster belongs to the metallb runbook. Read by runbooks.common.schema.k3s,
which declares `cluster:` once for both distributions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbooks.common.section_names import MICROK8S

if TYPE_CHECKING:
    from runbooks.core.inventory_fields import Collector
    from runbooks.core.inventory_model import Host, Network

ROLE = MICROK8S
KEYS = {"distribution": True, "channel": True, "addons": False, "kubelet_args": False,
        "apiserver_args": False, "offline": False, "source": False,
        "ingress_service": False, "admin_user": False, "remove_default_user": False}
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
CHANNEL = re.compile(r"(latest|\d+\.\d+(-[a-z0-9]+)?)/(stable|candidate|beta|edge)"
                     r"(/[a-z0-9-]+)?")
ADDON = re.compile(r"[a-z][a-z0-9-]*")
ARG_KEY = re.compile(r"--[a-z][a-z0-9-]*")
REFUSED_ADDONS = {"metallb": "MetalLB belongs to the metallb runbook (`inv metallb`), which "
                             "configures its pool and BGP peers; remove it from "
                             "cluster.addons"}


@dataclass(frozen=True)
class Addon:
    """One addon of the launch configuration: its name and arguments."""

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Microk8sCluster:
    """The microk8s cluster the inventory describes."""

    channel: str
    nodes: tuple[str, ...]
    addresses: Mapping[str, str]               # node -> address the others reach it at
    workers: tuple[str, ...] = ()
    addons: tuple[Addon, ...] = ()
    kubelet_args: Mapping[str, str] = field(default_factory=dict)
    apiserver_args: Mapping[str, str] = field(default_factory=dict)
    offline: bool = False
    vip: str | None = None
    distribution: str = "microk8s"
    source: str | None = None
    ingress_service: bool = False
    ingress_address: str | None = None
    admin_user: str | None = None
    remove_default_user: bool = False

    @property
    def seed(self) -> str:
        return self.nodes[0]

    @property
    def first_server(self) -> str:
        """Where cluster-wide kubectl runs (metallb, its checks): the seed node, under the
        name k3s's cluster gives its first server."""
        return self.seed

    @property
    def joiners(self) -> tuple[str, ...]:
        return self.nodes[1:]

    @property
    def api_address(self) -> str:
        return self.vip or self.addresses[self.seed]


def node_address(host: Host) -> str:
    """The address other nodes reach `host` at: its VLAN address, else its address."""
    if host.vlan is not None and host.vlan.address is not None:
        return str(host.vlan.address.ip)
    return host.address


def read_microk8s(c: Collector, value: Any, hosts: Mapping[str, Host],
                  network: Network | None) -> Microk8sCluster | None:
    """Check a microk8s `cluster:` section against the hosts; the cluster or None."""
    path: tuple[str, ...] = ("cluster",)
    nodes = [h for h in hosts.values() if ROLE in h.roles]
    section = c.mapping(value, path, KEYS, "cluster: {distribution: microk8s, channel: "
                                           "1.32/stable}")
    if section is None:
        return None
    channel = c.text(section.get("channel"), (*path, "channel"), "a snap channel")
    if channel is not None and not CHANNEL.fullmatch(channel):
        c.add((*path, "channel"), f"{channel!r} is not a snap channel; write it like "
                                  "1.32/stable (track/risk)")
        channel = None
    addons = _read_addons(c, section.get("addons"), (*path, "addons"))
    kubelet = _read_args(c, section.get("kubelet_args"), (*path, "kubelet_args"))
    apiserver = _read_args(c, section.get("apiserver_args"), (*path, "apiserver_args"))
    offline = c.boolean(section.get("offline", False), (*path, "offline"))
    source = None
    if section.get("source") is not None:
        source = c.text(section.get("source"), (*path, "source"), "an http(s) URL")
        if source is not None and not re.match(r"https?://[^/\s]+", source):
            c.add((*path, "source"), f"{source!r} is not an http(s) URL of a mirror of "
                                     "`snap download` results")
            return None
    ingress = _read_ingress(c, section.get("ingress_service"), (*path, "ingress_service"),
                            addons)
    if ingress is None:
        return None
    admin = c.text(section.get("admin_user"), (*path, "admin_user"), "a user name") \
        if section.get("admin_user") is not None else None
    if admin is not None and (not USER.fullmatch(admin) or admin in ("root", "ubuntu")):
        c.add((*path, "admin_user"), f"{admin!r} is not a user name for the admin (lowercase "
                                     "letters, digits, _ and -; not root or ubuntu)")
        return None
    remove = c.boolean(section.get("remove_default_user", False),
                       (*path, "remove_default_user"))
    if remove is None:
        return None
    if remove:
        logins = [h.name for h in nodes if h.user == "ubuntu"]
        if logins:
            c.add((*path, "remove_default_user"), "greenroom logs in as ubuntu on "
                  f"{', '.join(logins)}: it would remove the user it works as; give those "
                  "hosts another user: (the admin_user) first")
            return None
    if not nodes:
        c.add(path, "distribution microk8s needs nodes: give at least one host role "
                    "microk8s (the first is the seed node)")
        return None
    if channel is None or addons is None or kubelet is None or apiserver is None or \
            offline is None:
        return None
    workers = tuple(h.name for h in nodes if (h.vars or {}).get("worker") is True)
    if nodes[0].name in workers:
        c.add(("hosts", nodes[0].name, "vars", "worker"),
              f"{nodes[0].name} is the seed node (the first host with role microk8s): it "
              "runs the control plane and cannot be a worker only; move it or drop worker")
        return None
    vip = str(network.vip) if network is not None and network.vip is not None else None
    return Microk8sCluster(channel, tuple(h.name for h in nodes),
                           {h.name: node_address(h) for h in nodes}, workers, addons,
                           kubelet, apiserver, offline, vip, source=source,
                           ingress_service=ingress[0], ingress_address=ingress[1],
                           admin_user=admin, remove_default_user=remove)


def _read_ingress(c: Collector, value: Any, path: tuple[str, ...],
                  addons: tuple[Addon, ...] | None) -> tuple[bool, str | None] | None:
    """(wanted, fixed address) of `ingress_service:`; None after an error."""
    import ipaddress

    if value is None or value is False:
        return False, None
    address = None
    if isinstance(value, dict):
        entry = c.mapping(value, path, {"address": False}, "{address: 192.168.254.10}")
        if entry is None:
            return None
        if entry.get("address") is not None:
            address = str(entry["address"])
            try:
                ipaddress.ip_address(address)
            except ValueError:
                c.add((*path, "address"), f"{address!r} is not an IP address")
                return None
    elif value is not True:
        c.add(path, "must be true or {address: <IP>} (the ingress LoadBalancer Service)")
        return None
    if addons is not None and not any(a.name == "ingress" for a in addons):
        c.add(path, "needs the ingress addon: add ingress to cluster.addons")
        return None
    return True, address


def _read_addons(c: Collector, value: Any, path: tuple[str | int, ...]) -> tuple[Addon, ...] | None:
    if value is None:
        return ()
    if not isinstance(value, list):
        c.add(path, "must be a list of addons, e.g. [dns, {name: ingress}]")
        return None
    out: list[Addon] = []
    ok = True
    for index, item in enumerate(value):
        item_path: tuple[str | int, ...] = (*path, index)
        args: list[str] = []
        if isinstance(item, str):
            name, _, arg = item.partition(":")
            args = [arg] if arg else []
        elif isinstance(item, dict):
            entry = c.mapping(item, item_path, {"name": True, "args": False},
                              "{name: ingress, args: []}")
            if entry is None:
                ok = False
                continue
            given = entry.get("name")
            name = given if isinstance(given, str) else ""
            raw = entry.get("args", [])
            if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
                c.add((*item_path, "args"), "must be a list of strings")
                ok = False
                continue
            args = list(raw)
        else:
            c.add(item_path, "must be an addon name or {name: ..., args: [...]}")
            ok = False
            continue
        # a problem with the name is reported on `name:` when the entry is a mapping
        name_path = (*item_path, "name") if isinstance(item, dict) else item_path
        if not ADDON.fullmatch(name or ""):
            c.add(name_path, f"{name!r} is not an addon name (lowercase, digits, -)")
            ok = False
        elif name in REFUSED_ADDONS:
            c.add(name_path, f"addon {name!r} is not enabled here: {REFUSED_ADDONS[name]}")
            ok = False
        elif any(a.name == name for a in out):
            c.add(name_path, f"addon {name!r} is listed twice")
            ok = False
        else:
            out.append(Addon(name, tuple(args)))
    return tuple(out) if ok else None


def _read_args(c: Collector, value: Any, path: tuple[str, ...]) -> dict[str, str] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        c.add(path, 'must be a mapping of flags to values, e.g. {--max-pods: "60"}')
        return None
    ok = True
    for key, item in value.items():
        if not isinstance(key, str) or not ARG_KEY.fullmatch(key):
            c.add((*path, str(key)), f"{key!r} is not a flag; write it with its dashes, "
                                     "e.g. --max-pods")
            ok = False
        elif not isinstance(item, (str, int, bool)):
            c.add((*path, str(key)), "must be a string, number or true/false")
            ok = False
    if not ok:
        return None
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
