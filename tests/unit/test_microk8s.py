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
    ("cluster: {distribution: microk8s, channel: 1.32/stable, addons: [dns], "
     "ingress_service: true}\n", THREE, "needs the ingress addon"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, addons: [ingress], "
     "ingress_service: {address: 10.0.0.300}}\n", THREE, "not an IP address"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, addons: [ingress], "
     "ingress_service: {adress: 10.0.0.30}}\n", THREE, "adress"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, addons: [ingress], "
     "ingress_service: yes-please}\n", THREE, "must be true or {address: <IP>}"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, source: ftp://mirror}\n",
     THREE, "not an http(s) URL"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, admin_user: root}\n", THREE,
     "not root or ubuntu"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, admin_user: 'Ada Lovelace'}\n",
     THREE, "is not a user name"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, remove_default_user: true}\n",
     node("m0", 3, ", user: ubuntu") + node("m1", 4), "logs in as ubuntu on m0"),
    ("cluster: {distribution: microk8s, channel: 1.32/stable, remove_default_user: 1}\n",
     THREE, "remove_default_user"),
], ids=["metallb-refused", "metallb-with-args-refused", "bad-channel", "no-channel",
        "unknown-key", "seed-worker", "worker-not-bool",
        "cluster-without-nodes", "arg-without-dashes", "duplicate-addon",
        "ingress-service-without-addon", "ingress-service-bad-address",
        "ingress-service-unknown-key", "ingress-service-not-bool", "source-not-http",
        "admin-root", "admin-bad-name", "remove-the-login-user", "remove-not-bool"])
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


def test_install_command_from_the_store() -> None:
    command = cfg.install_command(cluster_of())
    assert "snap install microk8s --classic --channel=1.32/stable" in command
    assert command.endswith(cfg.stamp_command())


def test_install_command_offline_names_the_pinned_revision() -> None:
    from runbooks.microk8s.offline import install_command

    command = install_command("7964", cfg.stamp_command())
    assert ("cd /var/cache/greenroom/microk8s; snap ack ./microk8s_7964.assert; "
            "snap install ./microk8s_7964.snap --classic; ") in command


def test_parse_addons() -> None:
    text = ("microk8s is running\ncore/dns: enabled\ncore/ingress: disabled\n"
            "community/foo: enabled\nhigh-availability: yes\n")
    assert parse_addons(text) == {"dns": True, "ingress": False, "foo": True}


def test_ingress_service_read_and_rendered_valid() -> None:
    from runbooks.microk8s.ingress import schema_errors, service

    inv = parse_inventory(BASE + THREE + (
        "cluster: {distribution: microk8s, channel: 1.32/stable, addons: [ingress], "
        "ingress_service: {address: 192.168.10.90}}\n"), "t.yaml")
    cluster = inv.sections["cluster"]
    assert (cluster.ingress_service, cluster.ingress_address) == (True, "192.168.10.90")
    for address in ("192.168.10.90", None):
        manifest = service(address)
        assert schema_errors(manifest) == []
        assert manifest["spec"].get("loadBalancerIP") == address


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("spec", "ports", 0, "port"), 70000, "Service.spec.ports[0].port: 70000 is greater"),
    (("spec", "ports", 1, "protocol"), "tcp", "Service.spec.ports[1].protocol: 'tcp' is not"),
    (("spec", "type"), "Loadbalancer", "Service.spec.type: 'Loadbalancer' is not one of"),
    (("spec", "loadBalancerIP"), "10.0.0.300", "Service.spec.loadBalancerIP"),
    (("metadata", "name"), "Ingress_1", "Service.metadata.name: 'Ingress_1' does not match"),
    (("spec", "ports", 0, "targetPort"), "http port", "Service.spec.ports[0].targetPort"),
    (("spec", "selecter"), {"a": "b"}, "Additional properties are not allowed ('selecter'"),
    (("spec", "selector", "name"), 3, "Service.spec.selector.name: 3 is not of type"),
], ids=["port-range", "protocol-case", "type-enum", "lb-ip", "dns-name", "target-port-name",
        "unknown-field", "selector-string"])
def test_ingress_service_schema_names_the_field(path: tuple, value: object,
                                                expected: str) -> None:
    from runbooks.microk8s.ingress import schema_errors, service

    manifest = service(None)
    target = manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = schema_errors(manifest)
    assert any(expected in e for e in errors), errors


GOOD = {
    "microk8s/snap": (0, "7964 classic,held\n"),
    "microk8s/status": (0, "microk8s is running\nhigh-availability: yes\ncore/dns: enabled\n"
                           "core/ingress: enabled\n"),
    "microk8s/nodes": (0, "m0   Ready    <none>   1m   v1.32.3\n"
                          "m1   Ready    <none>   1m   v1.32.3\n"
                          "m2   Ready    <none>   1m   v1.32.3\n"),
    "microk8s/ingress": (0, '{"spec": {"type": "LoadBalancer"}}'),
}


@pytest.mark.parametrize(("change", "bad", "detail"), [
    ({}, None, ""),
    ({"microk8s/snap": (0, "7964 classic\n")}, "microk8s snap held", "classic"),
    ({"microk8s/snap": (0, "")}, "microk8s snap held", "not installed"),
    ({"microk8s/status": (1, "microk8s is not running. Use microk8s inspect\n")},
     "microk8s running", "microk8s inspect"),
    ({"microk8s/nodes": (0, GOOD["microk8s/nodes"][1].replace("m2   Ready", "m2   NotReady"))},
     "nodes Ready", "m2 (NotReady)"),
    ({"microk8s/status": (0, "microk8s is running\nhigh-availability: yes\ncore/dns: enabled\n"
                             "core/ingress: disabled")},
     "addons enabled", "not enabled: ingress"),
    ({"microk8s/ingress": (1, 'Error from server (NotFound): services "ingress" not found')},
     "ingress Service", "missing"),
    ({"microk8s/status": (0, GOOD["microk8s/status"][1].replace("availability: yes",
                                                                "availability: no"))},
     "high availability", "high-availability: no"),
], ids=["all-good", "not-held", "not-installed", "not-running", "node-not-ready",
        "addon-off", "ingress-service-missing", "not-highly-available"])
def test_demo_check_probe(change: dict, bad: str | None, detail: str) -> None:
    from runbooks.core.facts import FactResult
    from runbooks.microk8s import health

    inv = parse_inventory(BASE + node("m0", 3) + node("m1", 4) + node("m2", 5) + (
        "cluster: {distribution: microk8s, channel: 1.32/stable, addons: [dns, ingress], "
        "ingress_service: true}\n"), "t.yaml")
    seed = inv.hosts["m0"]
    assert set(health.facts(seed, inv)) == set(GOOD)
    assert set(health.facts(inv.hosts["m1"], inv)) == {"microk8s/snap", "microk8s/status"}
    found = {k: FactResult(*v) for k, v in {**GOOD, **change}.items()}
    checks = list(health.evaluate(seed, inv, found))
    names = ["microk8s snap held", "microk8s running", "nodes Ready", "high availability",
             "addons enabled", "ingress Service"]
    assert [c.name for c in checks] == [
        n for n in names if n not in ("addons enabled", "high availability") or
        bad != "microk8s running"]
    failed = [c for c in checks if not c.ok]
    assert [c.name for c in failed] == ([bad] if bad else [])
    if bad:
        assert detail in failed[0].detail and failed[0].fix == "inv microk8s"


def test_board_steps_never_remove_the_login_user() -> None:
    from runbooks.core.steps import StepFailed
    from runbooks.microk8s.board import remove_default_steps

    with pytest.raises(StepFailed, match="logs in as ubuntu"):
        remove_default_steps("ubuntu")
    (step,) = remove_default_steps("ada")
    assert step.command == "userdel --remove ubuntu"  # type: ignore[attr-defined]


def test_board_steps_follow_the_inventory() -> None:
    from types import SimpleNamespace

    from runbooks.microk8s.board import board_steps

    def names(**kw: object) -> list[str]:
        ctx = SimpleNamespace(host=SimpleNamespace(user="root"))
        return [s.name for s in board_steps(ctx, cluster_of(**kw))]  # type: ignore[arg-type]

    plain = names()
    assert plain == ["Ensure kernel module br_netfilter loaded",
                     "Ensure net.ipv4.ip_forward = 1",
                     "Ensure net.bridge.bridge-nf-call-iptables = 1",
                     "Ensure net.bridge.bridge-nf-call-ip6tables = 1"]
    full = names(admin_user="ada", remove_default_user=True)
    assert full[len(plain):] == [
        "Ensure user ada exists", "Ensure ada is in group sudo",
        "Ensure /etc/sudoers.d/90-greenroom-ada", "Ensure ada has the SSH keys root logs in with",
        "Remove the default user ubuntu and its home"]


@pytest.mark.parametrize(("workers", "said", "ok"), [
    ((), "yes", True), ((), "no", False), (("m2",), "no", True), (("m2",), None, True),
], ids=["three-voters-ha", "three-voters-not-ha", "two-voters-no-ha-expected",
        "two-voters-unknown"])
def test_high_availability_check(workers: tuple, said: str | None, ok: bool) -> None:
    from runbooks.core.facts import FactResult
    from runbooks.core.steps import StepFailed
    from runbooks.microk8s.plan import HighAvailability

    cluster = cluster_of(nodes=("m0", "m1", "m2"), workers=workers)
    logged: list[str] = []
    step = HighAvailability(cluster, logged.append)
    text = "microk8s is running\n" + (f"high-availability: {said}\n" if said else "")
    facts = {"status": FactResult(0, text)}
    if ok:
        assert step.plan(facts) == []
    else:
        with pytest.raises(StepFailed, match="high-availability is no with 3 control-plane"):
            step.plan(facts)
    assert logged == [f"high-availability: {said or 'unknown'}"]


def test_inspect_lines_keep_what_matters_and_mask_secrets() -> None:
    from types import SimpleNamespace

    from runbooks.core import secrets
    from runbooks.microk8s.plan import inspect_lines

    secrets.register("0123456789abcdef0123456789abcdef")
    out = ("Inspecting system\nInspecting Certificates\nInspecting services\n"
           "  Service snap.microk8s.daemon-cluster-agent is running\n"
           "  FAIL:  Service snap.microk8s.daemon-kubelite is not running\n"
           "  Copy service arguments to the final report tarball\n"
           "Inspecting AppArmor configuration\n"
           "WARNING:  IPtables FORWARD policy is DROP. Consider enabling traffic forwarding\n"
           "join 10.0.0.3:25000/0123456789abcdef0123456789abcdef/abc failed: error\n"
           "Building the report tarball\n"
           "  Report tarball is at /var/snap/microk8s/7964/inspection-report-1.tar.gz\n")
    session = SimpleNamespace(run=lambda *_a, **_k: SimpleNamespace(stdout=out))
    lines = inspect_lines(session).splitlines()
    assert lines == [
        "  FAIL:  Service snap.microk8s.daemon-kubelite is not running",
        "  Copy service arguments to the final report tarball",
        "WARNING:  IPtables FORWARD policy is DROP. Consider enabling traffic forwarding",
        "join 10.0.0.3:25000/********/abc failed: error",
        "Building the report tarball",
        "  Report tarball is at /var/snap/microk8s/7964/inspection-report-1.tar.gz"]
