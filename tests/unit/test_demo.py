"""demo.rehearse runs every runbook, in build order."""

from runbooks.demo.tasks import runbooks_in_order


def test_every_runbook_in_build_order():
    names = [r.name for r in runbooks_in_order()]
    assert names == ["dell-gateway", "registry.up", "pi-prep", "registry.trust"]
