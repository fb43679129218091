"""MetalLB objects checked against the CRDs' OpenAPI schemas of the manifest (jsonschema)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from runbooks.common.bgp import site_plan
from runbooks.metallb import crs, schema
from tests.unit.bgp_site import load_site

MANIFEST = (Path(__file__).resolve().parents[2] / "runbooks" / "lab" / "doubles" / "metallb"
            / "metallb-native.yaml")


@pytest.fixture(scope="module")
def schemas():  # type: ignore[no-untyped-def]
    return schema.crd_schemas(yaml.safe_load_all(MANIFEST.read_text()))


def _objects(password: str | None = "pw"):  # type: ignore[no-untyped-def]
    inventory, metallb = load_site()
    site = site_plan(inventory)
    return crs.render(metallb, {r.name: r for r in site.routers}, password)


def test_manifest_declares_the_kinds_greenroom_renders(schemas) -> None:  # type: ignore
    assert set(schemas) == {("metallb.io", "v1beta1", "IPAddressPool"),
                            ("metallb.io", "v1beta2", "BGPPeer"),
                            ("metallb.io", "v1beta1", "BGPAdvertisement"),
                            ("metallb.io", "v1beta1", "L2Advertisement")}


def test_rendered_objects_pass(schemas) -> None:  # type: ignore[no-untyped-def]
    assert schema.problems(_objects(), schemas) == []


def _break(objects, kind: str, path: list[str], value):  # type: ignore[no-untyped-def]
    broken = copy.deepcopy(objects)
    target = next(o for o in broken if o["kind"] == kind)
    node = target
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return broken


BROKEN = [
    ("asn-too-big", "BGPPeer", ["spec", "myASN"], 4294967296, "spec.myASN"),
    ("asn-as-text", "BGPPeer", ["spec", "peerASN"], "64512", "spec.peerASN"),
    ("no-peer-address", "BGPPeer", ["spec", "peerAddress"], None, "peerAddress"),
    ("addresses-not-list", "IPAddressPool", ["spec", "addresses"], "10.0.0.0/24",
     "spec.addresses"),
    ("aggregation-over-32", "BGPAdvertisement", ["spec", "aggregationLength"], 33,
     "spec.aggregationLength"),
    ("old-api-version", "BGPPeer", ["apiVersion"], "metallb.io/v1beta1", "no CRD"),
]


@pytest.mark.parametrize(("kind", "path", "value", "words"), [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_broken_objects_are_refused(schemas, kind, path, value, words) -> None:  # type: ignore
    broken = _break(_objects(), kind, path, value)
    with pytest.raises(schema.SchemaError) as caught:
        schema.check(broken, schemas)
    assert words in str(caught.value) and "nothing was applied" in str(caught.value)


GUARD_SCRIPT = """
import json, sys
import yaml
from runbooks.core.facts import FactResult
from runbooks.core.steps import StepFailed
from runbooks.metallb.plan import CustomResources, SchemaGuard
from tests.unit.test_metallb_schema import MANIFEST, _break, _objects

objects = _objects()
if sys.argv[1] == "broken":
    objects = _break(objects, "BGPPeer", ["spec", "myASN"], 4294967296)
resources = CustomResources("CRs", objects, prefix="k3s kubectl", retry_for=0,
                            manifest=list(yaml.safe_load_all(MANIFEST.read_text())))
guard = SchemaGuard(resources)
assert guard.facts() == resources.facts()  # one read on the host serves both
items = [] if sys.argv[2] == "missing" else objects
facts = {key: FactResult(0, json.dumps({"kind": "List", "items": items}))
         for key in guard.facts()}
try:
    said = "planned: %d change(s)" % len(guard.plan(facts) + resources.plan(facts))
except StepFailed as exc:
    said = "refused: " + str(exc)
print(json.dumps({"jsonschema": "jsonschema" in sys.modules, "said": said}))
"""

GUARD_CASES = [
    # (id, objects, cluster, jsonschema imported, what the plan says)
    ("converged-valid", "valid", "same", False, "planned: 0 change(s)"),
    ("converged-broken-not-applied", "broken", "same", False, "planned: 0 change(s)"),
    ("missing-valid", "valid", "missing", True, "planned: 1 change(s)"),
    ("missing-broken-refused", "broken", "missing", True, "refused: objects refused by the "
     "CRDs' schemas (nothing was applied):\n  BGPPeer"),
]


@pytest.mark.parametrize(("objects", "cluster", "imported", "said"),
                         [c[1:] for c in GUARD_CASES], ids=[c[0] for c in GUARD_CASES])
def test_only_objects_that_would_be_applied_are_validated(objects, cluster, imported,
                                                          said) -> None:
    """A converged cluster's plan does not import jsonschema (it validates nothing: nothing
    would be sent); objects that would be applied are validated and an invalid one refused."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", GUARD_SCRIPT, objects, cluster], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["jsonschema"] is imported
    assert out["said"].startswith(said), out["said"]
