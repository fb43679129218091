"""runbooks.common.kubectl against the k3s double's kubectl (a real process on loopback):
apply as one JSON List, retry while a webhook refuses, the Manifests step (no apply when the
cluster already has the objects), waits, node status."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbooks.common.kubectl import Kubectl, KubectlError, Manifests, contains, node_status
from runbooks.core.facts import gather
from tests.engine.test_k3s_double import DOUBLE, MANIFEST, POOL, Cluster, cluster  # noqa: F401


@dataclass
class Local:
    """Runs commands with sh on this machine, in the double's root (as a Session would)."""

    env: dict[str, str]

    def run(self, command: str, stdin: str | bytes | None = None) -> Done:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(["sh", "-c", command], input=data, capture_output=True,
                              env=self.env, timeout=120)
        return Done(done.returncode, done.stdout.decode(), done.stderr.decode())


@dataclass
class Done:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def kube(cluster: Cluster) -> tuple[Kubectl, Local]:  # noqa: F811
    session = Local(cluster.env)
    return Kubectl(session, f"{sys.executable} {DOUBLE} kubectl"), session


def pool() -> list[dict]:
    import yaml

    return [yaml.safe_load(POOL)]


def test_apply_retries_while_the_webhook_refuses(cluster: Cluster) -> None:  # noqa: F811
    kubectl, _ = kube(cluster)
    first = kubectl.apply(MANIFEST["items"])
    assert first.changed == 5
    with pytest.raises(KubectlError, match="failed calling webhook"):
        kubectl.apply(pool())
    result = kubectl.apply(pool(), retry_for=30, interval=0.5)
    assert result.lines == ["ipaddresspool.metallb.io/lab created"]
    assert kubectl.apply(pool()).changed == 0


def test_manifests_step_applies_only_what_differs(cluster: Cluster) -> None:  # noqa: F811
    kubectl, session = kube(cluster)
    step = Manifests("Ensure MetalLB's objects", MANIFEST["items"], prefix=kubectl.prefix,
                     retry_for=20)
    changes = step.plan(gather(session, step.facts()))
    assert changes and "(missing)" in changes[0].summary
    action = changes[0].actions[0]
    done = session.run(action.command, action.stdin)
    assert done.ok, done.stderr
    assert step.plan(gather(session, step.facts())) == []


def test_wait_and_node_status(cluster: Cluster) -> None:  # noqa: F811
    kubectl, _ = kube(cluster)
    kubectl.wait("node", all_=True, timeout=20)
    nodes = kubectl.get("nodes")
    status = node_status(nodes["items"][0])
    assert status["name"] == "srv" and status["ready"] is True
    assert "control-plane" in status["roles"] and status["ip"] == "127.0.0.1"
    with pytest.raises(KubectlError, match="timed out waiting for the condition on nodes/x"):
        kubectl.wait("node", names=["x"], timeout=1)


@pytest.mark.parametrize("current, wanted, expected", [
    ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}}, True),
    ({"a": [1, 2]}, {"a": [1, 2]}, True),
    ({"a": [1, 2]}, {"a": [1]}, False),
    ({"a": {"c": 2}}, {"a": {"c": 3}}, False),
    ({}, {"a": None}, False),
], ids=["subset", "same-list", "shorter-list", "other-value", "missing-key"])
def test_contains(current: dict, wanted: dict, expected: bool) -> None:
    assert contains(current, wanted) is expected


def test_manifest_facts_read_every_object(tmp_path: Path) -> None:
    step = Manifests("x", MANIFEST["items"], prefix="k3s kubectl")
    facts = step.facts()
    # one kubectl for the namespace, the cluster-scoped objects riding along
    assert list(facts) == ["objects metallb-system"]
    command = facts["objects metallb-system"]
    assert command.startswith("k3s kubectl get namespace/metallb-system ")
    assert "deployment.apps/controller" in command
    assert command.endswith(" -n metallb-system --ignore-not-found -o json")
    assert json.loads(json.dumps(MANIFEST))  # the List travels as JSON


def test_manifests_step_reads_each_object_from_one_call(cluster: Cluster) -> None:  # noqa: F811
    """Half the objects there, one of them changed, one missing: each judged on its own."""
    kubectl, session = kube(cluster)
    docs = MANIFEST["items"]
    kubectl.apply(docs[:2])
    step = Manifests("x", docs, prefix=kubectl.prefix)
    facts = gather(session, step.facts())
    assert len(facts) == 1
    live = step.live(facts)
    assert [obj is not None for obj in live] == [True, True] + [False] * (len(docs) - 2)
    assert live[0]["metadata"]["name"] == "metallb-system"
    (change,) = step.plan(facts)
    assert "Namespace/" not in change.summary and "(missing)" in change.summary


@pytest.mark.parametrize("out, rc, expect", [
    pytest.param('{"kind": "List", "items": [{"kind": "A"}]}', 0, [{"kind": "A"}], id="list"),
    pytest.param('{"kind": "A"}', 0, [{"kind": "A"}], id="one-object"),
    pytest.param("", 0, [], id="nothing-found"),
    pytest.param("error: the server doesn't have a resource type", 1, None, id="failed"),
    pytest.param("not json", 0, None, id="garbage"),
])
def test_items_of(out: str, rc: int, expect: object) -> None:
    from runbooks.common.kubectl import items_of
    from runbooks.core.facts import FactResult

    assert items_of(FactResult(rc, out)) == expect
