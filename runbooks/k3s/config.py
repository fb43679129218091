"""What greenroom writes on a k3s node, rendered from the inventory (pure functions).

- /etc/rancher/k3s/config.yaml: node-ip and flannel-iface on the VLAN interface, tls-san
  with the API address (the VIP when set), the disabled components, cluster-init on the first
  of several servers, `server:` for joining servers and agents,
  disable-default-registry-endpoint where the version has it, plus cluster.server_args;
- the systemd unit (`k3s.service` or `k3s-agent.service`) and its env file (mode 0600: it
  holds the join token, which never goes into argv, config.yaml or output);
- kube-vip's static pod on the servers when the inventory has a VIP.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from runbooks.common.kube_cluster import SERVER, Cluster, vlan_ip
from runbooks.common.kubectl import ON_NODE, nodes_fact
from runbooks.core.facts import Fact, FactResult
from runbooks.core.templates import managed_from, render

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

BINARY = "/usr/local/bin/k3s"


def parse_version(result: FactResult) -> str | None:
    """`k3s --version` ("k3s version v1.34.1+k3s1 (abcdef12)") -> "v1.34.1+k3s1"; None when
    there is no k3s binary (or it says something else)."""
    words = result.out.split()
    return words[2] if result.ok and len(words) > 2 else None


# the k3s release a node runs, and the cluster's nodes as the first server's API lists them
VERSION: Fact[str | None] = Fact("k3s version", f"{BINARY} --version", parse_version)
NODES = nodes_fact(ON_NODE["k3s"])
CONFIG = "/etc/rancher/k3s/config.yaml"
IMAGES_DIR = "/var/lib/rancher/k3s/agent/images"
MANIFESTS_DIR = "/var/lib/rancher/k3s/agent/pod-manifests"
KUBE_VIP = f"{MANIFESTS_DIR}/kube-vip.yaml"
TOKEN = "/var/lib/rancher/k3s/server/token"
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
# the join token of every node but the first server (0600): the unit's environment names the
# file (K3S_TOKEN_FILE), so the token is not in the environment of k3s and every process it
# starts (the secrets audit found it there when the env file held K3S_TOKEN itself)
JOIN_TOKEN = "/etc/rancher/k3s/join-token"
UNIT_DIR = "/etc/systemd/system"
KUBE_VIP_IMAGE = "kube-vip/kube-vip:v0.8.9"
HEADER = "# Written by greenroom (k3s) for {}; changes here are replaced on the next run.\n"


def version_tuple(version: str) -> tuple[int, int, int]:
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"not a k3s version: {version!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def has_default_endpoint_flag(version: str) -> bool:
    """--disable-default-registry-endpoint: v1.29.1+, backported to 1.28.6, 1.27.10, 1.26.13."""
    major, minor, patch = version_tuple(version)
    if (major, minor) >= (1, 29):
        return (minor, patch) >= (29, 1) or minor > 29
    return {28: 6, 27: 10, 26: 13}.get(minor, 10**6) <= patch


def is_server(host: Host) -> bool:
    return SERVER in host.roles


def unit_name(host: Host) -> str:
    return "k3s" if is_server(host) else "k3s-agent"


def env_path(host: Host) -> str:
    return f"{UNIT_DIR}/{unit_name(host)}.service.env"


def node_config(host: Host, cluster: Cluster, inventory: Inventory,
                first_address: str) -> dict[str, Any]:
    """config.yaml's settings for `host` (token excluded: it goes in the env file)."""
    config: dict[str, Any] = {}
    if host.vlan is not None and host.vlan.address is not None:
        config["node-ip"] = str(host.vlan.address.ip)
    if host.vlan is not None and host.vlan.name:
        config["flannel-iface"] = host.vlan.name
    if is_server(host):
        config["write-kubeconfig-mode"] = "0600"
        sans = [cluster.api_address, vlan_ip(host)]
        config["tls-san"] = list(dict.fromkeys(sans))
        if cluster.disable:
            config["disable"] = list(cluster.disable)
        if cluster.ha and host.name == cluster.first_server:
            config["cluster-init"] = True
    if host.name != cluster.first_server:
        config["server"] = f"https://{first_address}:6443"
    if has_default_endpoint_flag(cluster.version):
        config["disable-default-registry-endpoint"] = True
    if is_server(host):
        config.update(cluster.server_args)
    return config


def config_yaml(settings: dict[str, Any], inventory: Inventory) -> str:
    return HEADER.format(managed_from(inventory)) + yaml.safe_dump(
        settings, default_flow_style=False, sort_keys=False)


def unit_file(host: Host, inventory: Inventory) -> str:
    mode = "server" if is_server(host) else "agent"
    return render("k3s/k3s.service.j2", mode=mode, env_file=env_path(host),
                  managed_from=managed_from(inventory))


def env_file(token: str | None, inventory: Inventory) -> str:
    """The unit's environment: for every node but the first server, where its join token is
    (JOIN_TOKEN; the token itself stays out of the processes' environment)."""
    lines = [HEADER.format(managed_from(inventory)).rstrip("\n")]
    if token:
        lines.append(f"K3S_TOKEN_FILE={JOIN_TOKEN}")
    return "\n".join(lines) + "\n"


def kube_vip(host: Host, cluster: Cluster, inventory: Inventory, registry: str) -> str | None:
    """kube-vip's static pod for a server when the inventory has a VIP, else None."""
    if not cluster.vip or not is_server(host) or host.vlan is None:
        return None
    return render("k3s/kube-vip.yaml.j2", image=f"{registry}/{KUBE_VIP_IMAGE}",
                  interface=host.vlan.name, vip=cluster.vip,
                  managed_from=managed_from(inventory))
