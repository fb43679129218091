"""k3s runbook, pure parts: the cluster section, config.yaml, the reset's parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbooks.common.kube_cluster import Cluster, read_cluster
from runbooks.core.inventory import parse_inventory
from runbooks.core.inventory_fields import Collector
from runbooks.core.inventory_yaml import parse_yaml
from runbooks.k3s import config as cfg
from runbooks.k3s.release import asset_url, lock_path, parse_sums
from runbooks.k3s.reset import (
    cluster_interfaces,
    cluster_mounts,
    cluster_netns,
    cluster_nft_tables,
    strip_cluster_rules,
)

BASE = """\
site: t
defaults: {user: root}
network:
  vlan: {id: 100}
  subnet: 192.168.10.0/25
  gateway: 192.168.10.2
  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}
  vip: 192.168.10.25
registry: {host: gw, port: 5001}
hosts:
  gw: {address: 10.0.0.2, roles: [gateway, registry], vlan: {parent: eth1}}
"""


def node(name: str, n: int, role: str, extra: str = "") -> str:
    return (f"  {name}: {{address: 10.0.0.{n}, roles: [{role}], board: raspberrypi, "
            f"vlan: {{parent: eth0, address: 192.168.10.{n}/25}}{extra}}}\n")


def read(cluster_yaml: str, hosts: str) -> tuple[Cluster | None, list[str]]:
    text = BASE + hosts + cluster_yaml
    data, lines, _ = parse_yaml(text)
    c = Collector("t.yaml", lines)
    inv_hosts = parse_inventory(BASE + "", "t.yaml").hosts  # noqa: F841 - base is valid
    from runbooks.core.inventory_hosts import read_hosts
    from runbooks.core.inventory_network import read_network

    plan = read_network(c, data["network"])
    hosts_read = read_hosts(c, data["hosts"], {"user": "root"}, plan, data)
    cluster = read_cluster(c, data.get("cluster"), hosts_read, plan.build())
    return cluster, [str(p) for p in c.problems]


THREE = node("rp0", 3, "k3s-server") + node("rp1", 4, "k3s-agent") + \
    node("lp0", 5, "k3s-agent", ", vars: {arch: armhf}")


def test_cluster_defaults_vip_and_arches() -> None:
    cluster, problems = read("cluster: {version: v1.34.1+k3s1}\n", THREE)
    assert problems == []
    assert cluster is not None
    assert cluster.api_address == "192.168.10.25"
    assert cluster.disable == ("traefik", "servicelb")
    assert cluster.servers == ("rp0",) and cluster.agents == ("rp1", "lp0")
    assert dict(cluster.arch) == {"rp0": "arm64", "rp1": "arm64", "lp0": "arm"}
    assert cluster.arches == ("arm", "arm64")


@pytest.mark.parametrize("section, hosts, expected", [
    ("cluster: {version: v1.34}\n", THREE, "cluster.version: 'v1.34' is not a k3s release"),
    ("cluster: {version: v1.34.1+k3s1, disable: [treafik]}\n", THREE,
     "did you mean 'traefik'?"),
    ("cluster: {version: v1.34.1+k3s1, verison: x}\n", THREE, "did you mean 'version'?"),
    ("cluster: {version: v1.34.1+k3s1}\n",
     node("rp0", 3, "k3s-server") + node("rp1", 4, "k3s-server"),
     "2 hosts have role k3s-server (rp0, rp1): embedded etcd needs an odd number"),
    ("", THREE, "need a top-level `cluster:` section"),
    ("cluster: {version: v1.34.1+k3s1}\n", node("rp1", 4, "k3s-agent"),
     "k3s agents need a server"),
    ("cluster: {version: v1.34.1+k3s1, server_args: {disable: [x]}}\n", THREE,
     "is set by greenroom"),
    ("cluster: {version: v1.34.1+k3s1}\n", THREE.replace("armhf", "sparc"),
     "unknown architecture 'sparc'"),
    ("cluster: {version: v1.34.1+k3s1, source: ftp://x}\n", THREE, "is not an http(s) URL"),
], ids=["bad-version", "disable-typo", "key-typo", "even-servers", "no-section",
        "agents-only", "own-key-in-server-args", "bad-arch", "bad-source"])
def test_cluster_problems_name_the_key(section: str, hosts: str, expected: str) -> None:
    _, problems = read(section, hosts)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("t.yaml:") for p in problems)


def test_without_vip_the_api_is_the_first_server() -> None:
    data = BASE.replace("  vip: 192.168.10.25\n", "")
    text = data + THREE + "cluster: {version: v1.34.1+k3s1}\n"
    parsed, lines, _ = parse_yaml(text)
    c = Collector("t.yaml", lines)
    from runbooks.core.inventory_hosts import read_hosts
    from runbooks.core.inventory_network import read_network

    plan = read_network(c, parsed["network"])
    hosts = read_hosts(c, parsed["hosts"], {"user": "root"}, plan, parsed)
    cluster = read_cluster(c, parsed["cluster"], hosts, plan.build())
    assert cluster is not None and cluster.api_address == "192.168.10.3"


# -- config.yaml -------------------------------------------------------------------------------

class Inv:
    site = "t"
    path = Path("hosts/t.yaml")


def hosts_of(text: str) -> dict:
    from runbooks.core.inventory_hosts import read_hosts
    from runbooks.core.inventory_network import read_network

    data, lines, _ = parse_yaml(BASE + text)
    c = Collector("t.yaml", lines)
    return read_hosts(c, data["hosts"], {"user": "root"}, read_network(c, data["network"]),
                      data)


def test_config_of_first_server_and_agent() -> None:
    hosts = hosts_of(THREE)
    cluster = Cluster("k3s", "v1.34.1+k3s1", "192.168.10.25", ("rp0",), ("rp1", "lp0"),
                      {"rp0": "arm64", "rp1": "arm64", "lp0": "arm"}, vip="192.168.10.25",
                      server_args={"kube-apiserver-arg": ["audit-log-maxage=3"]})
    server = cfg.node_config(hosts["rp0"], cluster, Inv(), "192.168.10.3")  # type: ignore
    assert server == {"node-ip": "192.168.10.3", "flannel-iface": "eth0.100",
                      "write-kubeconfig-mode": "0600",
                      "tls-san": ["192.168.10.25", "192.168.10.3"],
                      "disable": ["traefik", "servicelb"],
                      "disable-default-registry-endpoint": True,
                      "kube-apiserver-arg": ["audit-log-maxage=3"]}
    agent = cfg.node_config(hosts["rp1"], cluster, Inv(), "192.168.10.3")  # type: ignore
    assert agent == {"node-ip": "192.168.10.4", "flannel-iface": "eth0.100",
                     "server": "https://192.168.10.3:6443",
                     "disable-default-registry-endpoint": True}
    assert "token" not in str(server) + str(agent)


def test_ha_first_server_inits_etcd_and_others_join() -> None:
    hosts = hosts_of(node("a", 3, "k3s-server") + node("b", 4, "k3s-server")
                     + node("c", 5, "k3s-server"))
    cluster = Cluster("k3s", "v1.28.5+k3s1", "192.168.10.3", ("a", "b", "c"),
                      arch={"a": "arm64", "b": "arm64", "c": "arm64"})
    first = cfg.node_config(hosts["a"], cluster, Inv(), "192.168.10.3")  # type: ignore
    second = cfg.node_config(hosts["b"], cluster, Inv(), "192.168.10.3")  # type: ignore
    assert first["cluster-init"] is True and "server" not in first
    assert second["server"] == "https://192.168.10.3:6443" and "cluster-init" not in second
    assert "disable-default-registry-endpoint" not in first  # 1.28.5 predates it


@pytest.mark.parametrize("version, has", [
    ("v1.29.0+k3s1", False), ("v1.29.1+k3s1", True), ("v1.34.1+k3s1", True),
    ("v1.28.6+k3s2", True), ("v1.28.5+k3s1", False), ("v1.27.10+k3s1", True),
    ("v1.26.12+k3s1", False), ("v1.25.16+k3s4", False),
], ids=lambda v: str(v))
def test_default_registry_endpoint_flag_by_version(version: str, has: bool) -> None:
    assert cfg.has_default_endpoint_flag(version) is has


def test_env_file_names_the_token_file_and_unit_reads_it() -> None:
    hosts = hosts_of(THREE)
    env = cfg.env_file("K10abc::server:pw", Inv())  # type: ignore
    assert "K3S_TOKEN_FILE=/etc/rancher/k3s/join-token\n" in env
    assert "K10abc" not in env and "K3S_TOKEN=" not in env  # not in k3s's environment
    unit = cfg.unit_file(hosts["rp1"], Inv())  # type: ignore
    assert "EnvironmentFile=-/etc/systemd/system/k3s-agent.service.env" in unit
    assert "ExecStart=/usr/local/bin/k3s agent\n" in unit and "K3S_TOKEN" not in unit


# -- release files -------------------------------------------------------------------------------

def test_release_urls_sums_and_lock_path() -> None:
    assert asset_url("https://m/k3s/", "v1.34.1+k3s1", "k3s-arm64") == \
        "https://m/k3s/v1.34.1%2Bk3s1/k3s-arm64"
    text = f"{'a' * 64}  k3s-arm64\n{'b' * 64} *k3s-airgap-images-arm64.tar.zst\nnoise\n"
    assert parse_sums(text) == {"k3s-arm64": "a" * 64,
                                "k3s-airgap-images-arm64.tar.zst": "b" * 64}
    assert lock_path(Path("hosts/lab.yaml")) == Path("hosts/lab.k3s.lock")


# -- reset parsers -------------------------------------------------------------------------------

IP_LINK = """\
1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN
2: eth0.100@if5: <BROADCAST,UP> mtu 1500 qdisc noqueue state UP
3: cni0: <BROADCAST,MULTICAST,UP> mtu 1450 qdisc noqueue state UP
4: flannel.1: <BROADCAST,MULTICAST,UP> mtu 1450 qdisc noqueue state UNKNOWN
5: vethab12@if2: <BROADCAST,UP> mtu 1450 master cni0 state UP
6: flannel-wg: <POINTOPOINT> mtu 1420
7: kube-ipvs0: <BROADCAST,NOARP> mtu 1500
8: docker0: <BROADCAST> mtu 1500
"""
SAVED = """\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-POSTROUTING - [0:0]
:CNI-abc - [0:0]
:DOCKER - [0:0]
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.42.0.0/24 -j CNI-abc
-A POSTROUTING -s 192.168.10.0/25 -o eth1 -j MASQUERADE
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A KUBE-POSTROUTING -j MASQUERADE
COMMIT
*filter
:FORWARD DROP [0:0]
:FLANNEL-FWD - [0:0]
-A FORWARD -j FLANNEL-FWD
-A FORWARD -i eth1.100 -j ACCEPT
COMMIT
"""


def test_reset_finds_the_clusters_interfaces_only() -> None:
    assert cluster_interfaces(IP_LINK) == ["cni0", "flannel.1", "flannel-wg", "kube-ipvs0"]


def test_reset_keeps_everyone_elses_rules() -> None:
    kept = strip_cluster_rules(SAVED)
    assert "KUBE-" not in kept and "CNI-" not in kept and "FLANNEL" not in kept
    for line in ("-A POSTROUTING -s 192.168.10.0/25 -o eth1 -j MASQUERADE",
                 "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE", ":DOCKER - [0:0]",
                 "-A FORWARD -i eth1.100 -j ACCEPT", "COMMIT", "*nat", "*filter"):
        assert line in kept


def test_reset_namespaces_tables_and_mounts() -> None:
    assert cluster_netns("cni-1234 (id: 0)\nother\ncni-99\n") == ["cni-1234", "cni-99"]
    tables = "table inet greenroom\ntable ip kube-proxy\ntable ip6 kube-proxy\ntable ip nat\n"
    assert cluster_nft_tables(tables) == ["ip kube-proxy", "ip6 kube-proxy"]
    mounts = ("tmpfs /run/k3s/containerd/io.containerd.grpc.v1.cri/sandboxes/x/shm tmpfs rw 0 0\n"
              "overlay /run/k3s/containerd/x/rootfs overlay rw 0 0\n"
              "tmpfs /var/lib/kubelet/pods/1/volumes/kube-api-access tmpfs rw 0 0\n"
              "/dev/sda1 / ext4 rw 0 0\nnsfs /run/netns/cni-1 nsfs rw 0 0\n")
    points = cluster_mounts(mounts)
    assert "/" not in points and len(points) == 4
    assert points == sorted(points, key=len, reverse=True)


@pytest.mark.parametrize("hosts, chosen, order", [
    (THREE, ["lp0", "rp1", "rp0"], ["rp0", "rp1", "lp0"]),
    (node("a1", 3, "k3s-agent") + node("s1", 4, "k3s-server") + node("s2", 5, "k3s-server")
     + node("a2", 6, "k3s-agent") + node("s3", 7, "k3s-server"),
     ["a2", "s3", "a1", "s2", "s1"], ["s1", "s2", "s3", "a1", "a2"]),
    (THREE, ["lp0", "rp1"], ["rp1", "lp0"]),            # --host: only the chosen ones
], ids=["one-server-two-agents", "servers-first-in-inventory-order", "subset"])
def test_upgrade_rolls_out_servers_first_one_at_a_time(hosts: str, chosen: list[str],
                                                       order: list[str]) -> None:
    from runbooks.k3s.plan import rollout_order

    cluster, problems = read("cluster: {version: v1.34.1+k3s1}\n", hosts)
    assert problems == [] and cluster is not None
    assert rollout_order(cluster, chosen) == order


@pytest.mark.parametrize("changes, status, expected", [
    (["replace /usr/local/bin/k3s (100 bytes, sha256 abc)"], "changed", True),
    (["replace /usr/local/bin/k3s from the gateway's registry http://g:5001 (sha256 abc, "
      "checked on the node)"], "changed", True),
    (["install /usr/local/bin/k3s (100 bytes, sha256 abc)"], "changed", False),  # fresh
    ([], "ok", False),
], ids=["pushed", "from-gateway", "fresh-install", "unchanged"])
def test_an_upgrade_is_a_replaced_binary(changes: list[str], status: str,
                                         expected: bool) -> None:
    from types import SimpleNamespace

    from runbooks.k3s.tasks import upgraded

    step = SimpleNamespace(status=status, changes=changes,
                           name="Ensure /usr/local/bin/k3s is k3s-arm64 v1 (sha256 abc)")
    assert upgraded(SimpleNamespace(steps=[step])) is expected


def test_a_cached_file_is_hashed_once_until_it_changes(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import os

    from runbooks.k3s import release

    path = tmp_path / "k3s-arm64"
    path.write_bytes(b"binary\n")
    digest = hashlib.sha256(b"binary\n").hexdigest()
    assert release.matches(path, digest) is True
    assert release.matches(path, "0" * 64) is False        # another pin: hashed, refused
    hashed: list[Path] = []
    from runbooks.common import artifacts

    real = artifacts.sha256_file
    monkeypatch.setattr(artifacts, "sha256_file", lambda p: hashed.append(p) or real(p))
    assert release.matches(path, digest) is True and hashed == []   # the stamp answers
    path.write_bytes(b"binarY\n")                          # same size, new mtime
    os.utime(path, ns=(1, 1))
    assert release.matches(path, digest) is False and hashed == [path]
    assert release.matches(tmp_path / "missing", digest) is False


# -- reset plan: named facts in, changes out -------------------------------------------------------

def reset_changes(answers: dict[str, tuple[int, str]], keep_images: bool = False
                  ) -> dict[str, list[str]]:
    """{step name: its changes} of the reset plan, each fact answered from `answers` by
    command (rc 1 and no output for any command not listed: nothing there)."""
    from runbooks.core.facts import FactResult
    from runbooks.k3s.reset import reset_plan

    out = {}
    for step in reset_plan(keep_images).steps:
        facts = {key: FactResult(*answers.get(command, (1, "")))
                 for key, command in step.facts().items()}
        out[step.name] = [c.summary for c in step.plan(facts)]
    return out


def test_reset_of_a_clean_node_plans_nothing() -> None:
    from runbooks.core.steps.system import unit_active, unit_enabled
    from runbooks.k3s.reset import UNITS

    # what systemctl answers for units that do not exist: non-zero, a state word
    clean = {}
    for unit in UNITS:
        clean[unit_enabled(unit).command] = (1, "disabled\n")
        clean[unit_active(unit).command] = (3, "inactive\n")
    clean["ip -o link show"] = (0, IP_LINK.replace("cni0", "eth9").replace("flannel", "wlan")
                                .replace("kube-ipvs0", "dummy0"))
    clean["cat /proc/self/mounts"] = (0, "/dev/sda1 / ext4 rw 0 0\n")
    assert {name: c for name, c in reset_changes(clean).items() if c} == {}


@pytest.mark.parametrize("command, answer, step, change", [
    pytest.param("systemctl is-enabled k3s-agent", (0, "enabled\n"),
                 "Ensure k3s units stopped and disabled", "stop and disable k3s-agent",
                 id="enabled-agent-unit"),
    pytest.param("systemctl is-active k3s", (0, "active\n"),
                 "Ensure k3s units stopped and disabled", "stop and disable k3s",
                 id="active-server-unit"),
    pytest.param("ip -o link show", (0, IP_LINK), "Ensure no cluster interfaces",
                 "remove cni0, flannel.1, flannel-wg, kube-ipvs0", id="interfaces"),
    pytest.param("command -v iptables-save >/dev/null && iptables-save", (0, SAVED),
                 "Ensure no KUBE-/CNI-/flannel rules (iptables-save)",
                 "remove 7 KUBE-/CNI-/flannel line(s) from iptables-save", id="iptables"),
    pytest.param("readlink /usr/local/bin/kubectl", (0, "k3s\n"),
                 "Ensure the kubectl link to k3s is gone", "remove /usr/local/bin/kubectl",
                 id="kubectl-link"),
    pytest.param("readlink /usr/local/bin/kubectl", (0, "/usr/bin/kubectl.real\n"),
                 "Ensure the kubectl link to k3s is gone", None, id="someone-elses-kubectl"),
])
def test_reset_removes_what_its_fact_finds(command: str, answer: tuple[int, str], step: str,
                                          change: str | None) -> None:
    from runbooks.k3s.reset import KUBECTL

    assert KUBECTL == "/usr/local/bin/kubectl"
    changes = reset_changes({command: answer})
    assert changes[step] == ([change] if change else [])
    assert {name for name, c in changes.items() if c} == ({step} if change else set())


def test_reset_paths_fact_lists_what_stat_found() -> None:
    from runbooks.k3s.reset import PATHS, PRESENT

    assert PRESENT.command.startswith("stat -c %n -- ") and all(p in PRESENT.command
                                                                  for p in PATHS)
    changes = reset_changes({PRESENT.command: (1, "/etc/rancher/k3s\n/usr/local/bin/k3s\n")})
    assert changes["Ensure k3s's files, units and binary are gone"] == [
        "remove /etc/rancher/k3s, /usr/local/bin/k3s"]


@pytest.mark.parametrize("keep_images, gone", [
    (False, ["binary", "images"]),
    (True, ["binary"]),
], ids=["all-release-stamps", "keep-images-keeps-their-stamp"])
def test_reset_removes_the_stamps_of_what_it_removes(tmp_path: Path, keep_images: bool,
                                                    gone: list[str]) -> None:
    import subprocess

    from runbooks.common.artifacts import stamp_path
    from runbooks.k3s.reset import stamps_fact

    folder = str(tmp_path)
    paths = {"binary": "/usr/local/bin/k3s",
             "images": "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst",
             "snap": "/var/cache/greenroom/microk8s/microk8s_7.snap",
             "lookalike": "/var/lib/rancher/k3s-other/x"}
    for path in paths.values():
        Path(stamp_path(path, folder)).write_text("stamp\n")
    left = stamp_path(paths["binary"], folder) + ".tmp.Ab12Cd"  # a cut write's temp file
    Path(left).write_text("half\n")
    fact = stamps_fact(keep_images, folder)
    done = subprocess.run(["sh", "-c", fact.command], capture_output=True, text=True,
                          check=False)
    from runbooks.core.facts import FactResult

    assert sorted(fact.read({"stamps": FactResult(done.returncode, done.stdout)})) == sorted(
        [left, *(stamp_path(paths[name], folder) for name in gone)])
