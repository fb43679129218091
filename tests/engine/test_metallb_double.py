"""The k3s double's model of MetalLB (no lab needed): the webhook of the lab's manifest
double refuses N applies after its endpoints appear, then accepts; MetalLB's controller
gives each Service of type LoadBalancer an address from the pools."""

from __future__ import annotations

import json

from runbooks.lab import release
from tests.engine.test_k3s_double import Cluster, cluster  # noqa: F401 - the fixture

MANIFEST = release.metallb_asset(["v0.14.9", "config", "manifests", "metallb-native.yaml"])
POOLS = {"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
     "metadata": {"name": "b-second", "namespace": "metallb-system"},
     "spec": {"addresses": ["192.168.20.16-192.168.20.17"]}},
    {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
     "metadata": {"name": "a-first", "namespace": "metallb-system"},
     "spec": {"addresses": ["192.168.20.0/31"]}},
    {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
     "metadata": {"name": "manual", "namespace": "metallb-system"},
     "spec": {"addresses": ["192.168.20.99/32"], "autoAssign": False}},
]}


def service(name: str, kind: str = "LoadBalancer", ip: str | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "default"}
    if ip:
        meta["annotations"] = {"metallb.universe.tf/loadBalancerIPs": ip}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": kind, "selector": {"app": name}, "ports": [{"port": 80}]}}


def ingress(c: Cluster, name: str) -> list[dict]:
    done = c.kubectl("get", "service", name, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout).get("status", {}).get("loadBalancer", {}).get("ingress", [])


def test_webhook_refuses_three_applies_after_its_endpoints_then_accepts(
        cluster: Cluster) -> None:  # noqa: F811
    assert cluster.kubectl("apply", "-f", "-", stdin=MANIFEST.decode()).returncode == 0
    # (before the controller is ready it refuses too: tests/engine/test_k3s_double.py)
    ready = cluster.kubectl("wait", "--for=condition=Available", "deployment/controller", "-n",
                            "metallb-system", "--timeout=20s")
    assert ready.returncode == 0, ready.stderr
    tries = [cluster.kubectl("apply", "-f", "-", stdin=json.dumps(POOLS)) for _ in range(4)]
    assert [t.returncode for t in tries] == [1, 1, 1, 0]
    assert all(t.stderr.count("failed calling webhook") == 3 for t in tries[:3])
    assert "ipaddresspool.metallb.io/a-first created" in tries[3].stdout
    state = json.loads((cluster.root / "var/lib/rancher/k3s/server/db/state.json").read_text())
    assert state["x-double-webhook-refusals"] == {"metallb-webhook-configuration": 3}


def test_loadbalancer_services_get_pool_addresses_in_creation_order(
        cluster: Cluster) -> None:  # noqa: F811
    for name in ("one", "two"):
        assert cluster.kubectl("apply", "-f", "-",
                               stdin=json.dumps(service(name))).returncode == 0
    assert ingress(cluster, "one") == []  # no MetalLB yet: pending, as on a real cluster
    assert cluster.kubectl("apply", "-f", "-", stdin=MANIFEST.decode()).returncode == 0
    cluster.kubectl("wait", "--for=condition=Available", "deployment/controller", "-n",
                    "metallb-system", "--timeout=20s")
    for _ in range(4):
        if cluster.kubectl("apply", "-f", "-", stdin=json.dumps(POOLS)).returncode == 0:
            break
    more = [service("three"), service("asked", ip="192.168.20.99"),
            service("internal", kind="ClusterIP"), service("four"), service("five")]
    for svc in more:  # one by one: creation order decides
        assert cluster.kubectl("apply", "-f", "-", stdin=json.dumps(svc)).returncode == 0
    got = {n: [i["ip"] for i in ingress(cluster, n)]
           for n in ("one", "two", "three", "asked", "internal", "four", "five")}
    assert got == {"one": ["192.168.20.0"], "two": ["192.168.20.1"],
                   "three": ["192.168.20.16"], "asked": ["192.168.20.99"], "internal": [],
                   "four": ["192.168.20.17"], "five": []}
