"""demo.check's merged named gets (runbooks/demo/merged.py): MetalLB's two reads of its
namespace (the install manifest's objects, the custom resources) are one kubectl; each
asker gets the items it named; a failed merged read leaves each asker to its own read."""

from __future__ import annotations

import json

import pytest

from runbooks.core.facts import FactResult
from runbooks.demo import merged

INSTALL = ("k3s kubectl get namespace/metallb-system "
           "customresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io "
           "deployment.apps/controller -n metallb-system --ignore-not-found -o json")
CRS = ("k3s kubectl get ipaddresspool.metallb.io/default bgppeer.metallb.io/edge "
       "-n metallb-system --ignore-not-found -o json")
DEMO = ("k3s kubectl get namespace/greenroom-demo service/hello -n greenroom-demo "
        "--ignore-not-found -o json")
ITEMS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "ipaddresspools.metallb.io"}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "controller", "namespace": "metallb-system"}},
    {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
     "metadata": {"name": "default", "namespace": "metallb-system"}},
    # same name, another kind: not the pool's
    {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
     "metadata": {"name": "default", "namespace": "metallb-system"}},
]


def test_two_gets_of_one_namespace_are_one_kubectl():
    commands = {"0|0/objects metallb-system": INSTALL, "0|2/objects metallb-system": CRS,
                "0|3/objects greenroom-demo": DEMO, "clock": "date +%s"}
    asked, stands = merged.merge(commands)
    kubectls = set(asked.values()) - {"date +%s"}
    assert len(kubectls) == 2  # metallb-system's two in one, greenroom-demo's alone
    [one] = stands
    assert stands[one] == [INSTALL, CRS]
    assert asked["0|0/objects metallb-system"] == asked["0|2/objects metallb-system"] == one
    assert one.startswith("k3s kubectl get namespace/metallb-system ")
    assert "ipaddresspool.metallb.io/default bgppeer.metallb.io/edge" in one
    assert asked["0|3/objects greenroom-demo"] == DEMO


def test_each_asker_gets_the_items_it_named():
    commands = {"install": INSTALL, "crs": CRS}
    asked, stands = merged.merge(commands)
    read = FactResult(0, json.dumps({"kind": "List", "items": ITEMS}))
    facts = merged.split(commands, asked, stands, {k: read for k in asked}, _no_reread)
    kinds = {k: [i["kind"] for i in json.loads(f.out)["items"]] for k, f in facts.items()}
    assert kinds == {"install": ["Namespace", "CustomResourceDefinition", "Deployment"],
                     "crs": ["IPAddressPool"]}  # the peer `edge` is missing: not listed


@pytest.mark.parametrize("read", [
    pytest.param(FactResult(1, 'error: the server doesn\'t have a resource type "bgppeer"'),
                 id="kind-not-served"),
    pytest.param(FactResult(0, "garbled"), id="not-json"),
])
def test_a_failed_merged_read_leaves_each_asker_to_its_own(read):
    commands = {"install": INSTALL, "crs": CRS, "clock": "date +%s"}
    asked, stands = merged.merge(commands)
    again: list[dict] = []

    def reread(missing):
        again.append(dict(missing))
        return {k: FactResult(0, f"own {k}") for k in missing}

    facts = {k: read for k in asked}
    facts["clock"] = FactResult(0, "1\n")
    out = merged.split(commands, asked, stands, facts, reread)
    assert again == [{"install": INSTALL, "crs": CRS}]  # one more round trip for both
    assert out == {"install": FactResult(0, "own install"), "crs": FactResult(0, "own crs"),
                   "clock": FactResult(0, "1\n")}


@pytest.mark.parametrize("command", [
    pytest.param("k3s kubectl get namespace/metallb-system -n metallb-system "
                 "--ignore-not-found -o json", id="one-object-prints-itself"),
    pytest.param("k3s kubectl get a/b c/d -n ns -o json", id="not-ignore-not-found"),
    pytest.param("k3s kubectl get a/b c/d -n ns --ignore-not-found -o json | cat", id="shell"),
    pytest.param("k3s kubectl get a/'b c' d/e -n ns --ignore-not-found -o json", id="quoted"),
])
def test_only_plain_gets_of_several_objects_are_merged(command):
    commands = {"a": command, "b": CRS}
    assert merged.merge(commands) == (commands, {})


def _no_reread(missing):
    raise AssertionError(f"read again: {missing}")
