"""The microk8s launch configuration (/var/snap/microk8s/common/.microk8s.yaml, schema
version 0.1.0), rendered from the inventory: read by the snap when it is installed, or
applied to an installed snap with `snap set microk8s config=...`.

    version: 0.1.0
    addons: [{name: dns}, {name: ingress, args: [...]}]
    extraKubeletArgs: {--max-pods: "60"}
    extraKubeAPIServerArgs: {--audit-log-maxage: "3"}
    containerdRegistryConfigs: {<host:port>: <hosts.toml>, docker.io: <hosts.toml>, ...}
        # the common renderer: the local registry and one mirror entry per upstream registry
"""

from __future__ import annotations

from typing import Any

import yaml

from runbooks.common.containerd import registry_hosts
from runbooks.common.microk8s_cluster import Microk8sCluster

COMMON = "/var/snap/microk8s/common"
CONFIG = f"{COMMON}/.microk8s.yaml"
STAMP = f"{COMMON}/.greenroom-config.sha256"   # sha256 of the configuration last applied
LAUNCH_VERSION = "0.1.0"
API_PORT = 16443
HEADER = "# microk8s launch configuration, written by greenroom (inv microk8s)\n"


def launch_config(cluster: Microk8sCluster, registry: str | None) -> dict[str, Any]:
    """The launch configuration as data (`registry`: host:port of the site's registry)."""
    data: dict[str, Any] = {"version": LAUNCH_VERSION}
    if cluster.addons:
        data["addons"] = [{"name": a.name, **({"args": list(a.args)} if a.args else {})}
                          for a in cluster.addons]
    if cluster.kubelet_args:
        data["extraKubeletArgs"] = dict(cluster.kubelet_args)
    if cluster.apiserver_args:
        data["extraKubeAPIServerArgs"] = dict(cluster.apiserver_args)
    if registry:
        data["containerdRegistryConfigs"] = registry_hosts(registry)
    return data


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (hosts.toml) as literal blocks, as microk8s' docs write them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def launch_yaml(cluster: Microk8sCluster, registry: str | None) -> str:
    """The file's text (stable: the same inventory gives the same bytes)."""
    return HEADER + "---\n" + yaml.dump(launch_config(cluster, registry), Dumper=_Dumper,
                                       default_flow_style=False, sort_keys=False)


def stamp_command() -> str:
    """Record the sha256 of the launch configuration the snap read."""
    return f"sha256sum < {CONFIG} > {STAMP}"


def install_command(cluster: Microk8sCluster) -> str:
    """Install the snap from the store's channel (it reads the launch configuration) and
    stamp what it read; the offline install is runbooks.microk8s.offline's."""
    return (f"set -e; snap install microk8s --classic --channel={cluster.channel}; "
            f"{stamp_command()}")
