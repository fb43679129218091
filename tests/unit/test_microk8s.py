"""microk8s runbook, pure parts: the cluster section (through the inventory's extension
point), the launch configuration, the addon status parser."""

from __future__ import annotations

import pytest
import yaml

from runbooks.common.microk8s_cluster import Addon, Microk8sCluster
from runbooks.core.inventory import parse_inventory
from runbooks.core.inventory_model import InventoryError
from runbooks.microk8s import config as cfg
from runbooks.microk8s.plan import parse_addons

BASE = """\
site: t
defaults: {user: root}
network:
  vlan: {id: 100}
  subnet: 192.168.10.0/25
  gateway: 192.168.10.2
  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}
registry: {host: gw, port: 5001}
hosts:
  gw: {address: 10.0.0.2, roles: [gateway, registry], vlan: {parent: eth1}}
"""


def node(name: str, n: int, extra: str = "") -> str:
    return (f"  {name}: {{address: 10.0.0.{n}, roles: [microk8s], board: raspberrypi, "
            f"vlan: {{parent: eth0, address: 192.168.10.{n}/25}}{extra}}}\n")


THREE = node("m0", 3) + node("m1", 4) + node("m2", 5, ", vars: {worker: true}")
CLUSTER = "cluster: {distribution: microk8s, channel: 1.32/stable, addons: [dns]}\n"


def problems(text: str) -> str:
    with pytest.raises(InventoryError) as err:
        parse_inventory(text, "t.yaml")
    return str(err.value)


def test_cluster_read_through_the_extension_point() -> None:
    inv = parse_inventory(BASE + THREE + (
        "cluster:\n  distribution: microk8s\n  channel: 1.32/stable\n"
        "  addons: [dns, 'hostpath-storage', {name: ingress, args: [--x=1]}]\n"
        "  kubelet_args: {--max-pods: 60}\n  offline: true\n"), "t.yaml")
    cluster = inv.sections["cluster"]
    assert isinstance(cluster, Microk8sCluster)
    assert (cluster.seed, cluster.joiners, cluster.workers) == ("m0", ("m1", "m2"), ("m2",))
    assert cluster.addons == (Addon("dns"), Addon("hostpath-storage"),
                              Addon("ingress", ("--x=1",)))
    assert cluster.kubelet_args == {"--max-pods": "60"} and cluster.offline
    assert cluster.api_address == "192.168.10.3"


@pytest.mark.parametrize(("cluster", "hosts", "expected"), [
    ("cluster: {distribution: microk8s, channel: 1.32/stable, addons: [dns, metallb]}\n",
     THREE, "the metallb runbook"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, "
     "addons: ['metallb:10.0.0.1-10.0.0.9']}\n", THREE, "the metallb runbook"),
    ("cluster: {distribution: microk8s, channel: 'stable'}\n", THREE, "not a snap channel"),
    ("cluster: {distribution: microk8s}\n", THREE, "channel"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, chanel: x}\n", THREE,
     "chanel"),
    (CLUSTER, node("m0", 3, ", vars: {worker: true}"), "seed node"),
    (CLUSTER, node("m0", 3, ", vars: {worker: yes-please}"), "worker"),
    (CLUSTER, "", "give at least one host role microk8s"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, kubelet_args: {max-pods: 1}}\n",
     THREE, "with its dashes"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, addons: [dns, dns]}\n", THREE,
     "listed twice"),
], ids=["metallb-refused", "metallb-with-args-refused", "bad-channel", "no-channel",
        "unknown-key", "seed-worker", "worker-not-bool",
        "cluster-without-nodes", "arg-without-dashes", "duplicate-addon"])
def test_cluster_problems_name_the_key(cluster: str, hosts: str, expected: str) -> None:
    assert expected in problems(BASE + hosts + cluster)


def test_k3s_cluster_still_read_by_the_k3s_reader() -> None:
    text = BASE + ("  s0: {address: 10.0.0.3, roles: [k3s-server], board: raspberrypi, "
                   "vlan: {parent: eth0, address: 192.168.10.3/25}}\n"
                   "cluster: {version: v1.34.1+k3s1}\n")
    assert parse_inventory(text, "t.yaml").sections["cluster"].distribution == "k3s"


def cluster_of(**kw: object) -> Microk8sCluster:
    base: dict = {"channel": "1.32/stable", "nodes": ("m0",), "addresses": {"m0": "10.0.0.3"}}
    base.update(kw)
    return Microk8sCluster(**base)


def test_launch_config_schema_and_registry_hosts_toml() -> None:
    cluster = cluster_of(addons=(Addon("dns"), Addon("ingress", ("a", "b"))),
                         kubelet_args={"--max-pods": "60"},
                         apiserver_args={"--audit-log-maxage": "3"})
    text = cfg.launch_yaml(cluster, "192.168.10.2:5001")
    data = yaml.safe_load(text)
    assert data["version"] == "0.1.0"
    assert data["addons"] == [{"name": "dns"}, {"name": "ingress", "args": ["a", "b"]}]
    assert data["extraKubeletArgs"] == {"--max-pods": "60"}
    assert data["extraKubeAPIServerArgs"] == {"--audit-log-maxage": "3"}
    hosts = data["containerdRegistryConfigs"]["192.168.10.2:5001"]
    assert 'server = "http://192.168.10.2:5001"' in hosts and "pull" in hosts
    assert text == cfg.launch_yaml(cluster, "192.168.10.2:5001")  # stable bytes


def test_launch_config_without_registry_or_extras() -> None:
    assert yaml.safe_load(cfg.launch_yaml(cluster_of(), None)) == {"version": "0.1.0"}


@pytest.mark.parametrize(("offline", "expected"), [
    (False, "snap install microk8s --classic --channel=1.32/stable"),
    (True, "snap ack ./microk8s_*.assert; snap install ./microk8s_*.snap --classic"),
], ids=["store", "offline"])
def test_install_command(offline: bool, expected: str) -> None:
    command = cfg.install_command(cluster_of(offline=offline))
    assert expected in command and cfg.STAMP in command


def test_parse_addons() -> None:
    text = ("microk8s is running\ncore/dns: enabled\ncore/ingress: disabled\n"
            "community/foo: enabled\nhigh-availability: yes\n")
    assert parse_addons(text) == {"dns": True, "ingress": False, "foo": True}
