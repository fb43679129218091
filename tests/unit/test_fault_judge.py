"""The fault campaign's judge of state kept through a program (a cluster's objects), without
the lab: `torn` (each object after the cut as before the run or as after recovery),
`cluster_objects` (what of a stored object counts) and `metallb_in` (a cluster to start
`inv metallb`'s trials from)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.support.faultsubjects import cluster_objects, metallb_in
from tests.support.faulttrials import torn

BEFORE = {"IPAddressPool/metallb-system/default": "a1", "Service/greenroom-demo/hello": "s1"}
AFTER = {"IPAddressPool/metallb-system/default": "a2", "Service/greenroom-demo/hello": "s1",
         "BGPPeer/metallb-system/edge": "p2"}


@pytest.mark.parametrize(("cut", "torn_keys"), [
    (BEFORE, []),                                                     # cut before any apply
    (AFTER, []),                                                      # cut after the last
    ({**BEFORE, "BGPPeer/metallb-system/edge": "p2"}, []),            # peer applied, pool not
    ({**AFTER, "IPAddressPool/metallb-system/default": "a3"},         # a third content
     ["IPAddressPool/metallb-system/default"]),
    ({"Service/greenroom-demo/hello": "s1"},                          # the old pool gone
     ["IPAddressPool/metallb-system/default"]),
    ({**AFTER, "BGPPeer/metallb-system/stray": "x"},                  # an object nobody wants
     ["BGPPeer/metallb-system/stray"]),
], ids=["old", "new", "mixed-objects-each-whole", "third-content", "lost", "stray"])
def test_torn_names_each_object_neither_old_nor_new(cut, torn_keys):
    problems = torn(BEFORE, cut, AFTER)
    assert [p.split(":")[0] for p in problems] == torn_keys


class Guest:
    """A lab handle whose rp0 holds one k3s double store."""

    def __init__(self, store: dict[str, Any]) -> None:
        self.text = json.dumps(store)

    def exec(self, host: str, cmd: str, **_: Any) -> subprocess.CompletedProcess[str]:
        assert host == "rp0" and cmd.startswith("cat ")
        return subprocess.CompletedProcess(cmd, 0, self.text, "")


def pool(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "default", "namespace": "metallb-system", **meta},
            "spec": {"addresses": ["192.168.20.0/28"]}}


def test_cluster_objects_ignore_nodes_status_and_what_the_server_sets():
    one = {"objects": {"IPAddressPool/metallb-system/default": pool(uid="1", generation=1),
                       "Node//rp0": {"kind": "Node", "status": {"heartbeat": 1}}}}
    two = {"objects": {"IPAddressPool/metallb-system/default": {
        **pool(uid="2", generation=3, creationTimestamp="2026"), "status": {"x": 1}},
        "Node//rp0": {"kind": "Node", "status": {"heartbeat": 2}}}}
    assert cluster_objects(Guest(one)) == cluster_objects(Guest(two))
    assert list(cluster_objects(Guest(one))) == ["IPAddressPool/metallb-system/default"]
    changed = pool()
    changed["spec"] = {"addresses": ["192.168.20.0/29"]}
    assert cluster_objects(Guest({"objects": {
        "IPAddressPool/metallb-system/default": changed}})) != cluster_objects(Guest(one))


def test_cluster_objects_count_served_kinds_not_the_doubles_counters():
    """The webhook's refusal count moves on with every retry (campaign metallb #17: a cut in
    the apply's backoff loop left 2 of the 3 refusals): not state a user's cluster has."""
    one = cluster_objects(Guest({"objects": {}, "x-double-webhook-refusals": {"m": 2},
                                 "crds": {"ipaddresspools.metallb.io/v1beta1": {}}}))
    two = cluster_objects(Guest({"objects": {}, "x-double-webhook-refusals": {"m": 3},
                                 "crds": {"ipaddresspools.metallb.io/v1beta1": {}}}))
    assert one == two and set(one) == {"store:crds"}


@pytest.mark.parametrize(("store", "has"), [
    ({"objects": {"Namespace//kube-system": {}}, "crds": {}}, False),
    ({"objects": {"Namespace//metallb-system": {}}, "crds": {}}, True),
    ({"objects": {"Deployment/greenroom-demo/hello": {}}}, True),
    ({"objects": {}, "crds": {"ipaddresspools.metallb.io/v1beta1": {"group": "metallb.io"}}},
     True),
    ({"objects": {}, "x-double-webhook-refusals": {"metallb-webhook-configuration": 3}}, True),
], ids=["k3s-only", "namespace", "demo", "crd", "refusals"])
def test_metallb_in_tells_a_cluster_metallb_never_touched(store, has):
    assert metallb_in(store) is has
