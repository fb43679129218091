"""The demo's build order (runbooks/demo/order.py): one entry per runbook, parts loaded by name."""

import sys
import types

import pytest

from runbooks.demo import order
from runbooks.demo.order import Entry, Missing, load, parts, probe_roles, runbooks_in_order


def test_every_runbook_in_build_order():
    names = [r.name for r in runbooks_in_order()]
    assert names == ["dell-gateway", "xen-dom0", "registry.up", "pi-prep", "registry.trust",
                     "k3s.release", "k3s", "microk8s.release", "microk8s", "metallb",
                     "router", "metallb-speaker (lab double)"]


def test_every_entry_names_a_converge_or_a_hook():
    for entry in order.ORDER:
        assert entry.converge or entry.check or entry.reset or entry.scratch, entry.name


@pytest.fixture
def fake_runbook(monkeypatch):
    """A runbook package `runbooks_fake` with a probe module, as another engineer adds one."""
    package = types.ModuleType("runbooks_fake")
    package.__path__ = []
    probe = types.ModuleType("runbooks_fake.health")
    probe.ROLES = ("k3s-server",)
    probe.facts = lambda host, inv: {"k3s.nodes": "kubectl get nodes"}
    probe.evaluate = lambda host, inv, facts: []
    probe.PROBE = object()
    monkeypatch.setitem(sys.modules, "runbooks_fake", package)
    monkeypatch.setitem(sys.modules, "runbooks_fake.health", probe)
    return probe


@pytest.mark.parametrize("reference, found", [
    pytest.param("runbooks_fake.health:PROBE", "attribute", id="module-attribute"),
    pytest.param("runbooks_fake.health", "module", id="module-itself"),
])
def test_load_by_name(fake_runbook, reference, found):
    loaded = load(reference)
    assert loaded is (fake_runbook.PROBE if found == "attribute" else fake_runbook)


@pytest.mark.parametrize("reference", [
    pytest.param("runbooks.nonexistent.plan:RUNBOOK", id="package-not-here"),
    pytest.param("runbooks.demo.nonexistent:X", id="module-not-here"),
    pytest.param("runbooks.demo.order:NOPE", id="attribute-not-here"),
])
def test_missing_parts_are_skipped(reference):
    with pytest.raises(Missing):
        load(reference)
    assert parts("check", (Entry("x", check=reference),)) == []


def test_a_broken_module_is_not_hidden(monkeypatch, tmp_path):
    (tmp_path / "broken_probe.py").write_text("import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError):
        load("broken_probe:X")


def test_parts_keep_order_and_kind(fake_runbook):
    entries = (Entry("a", check="runbooks_fake.health"), Entry("b"),
               Entry("c", check="runbooks_fake.health:PROBE"))
    assert [(e.name, obj) for e, obj in parts("check", entries)] == [
        ("a", fake_runbook), ("c", fake_runbook.PROBE)]
    assert probe_roles(fake_runbook) == ("k3s-server",)


def test_an_entrys_roles_cover_every_role_its_parts_read():
    """An entry's `roles` decide whether its modules are imported at all: a part reading a
    role the entry does not declare would be skipped on a site that has it."""
    for entry in order.ORDER:
        for kind in ("converge", "check", "reset", "scratch"):
            reference = getattr(entry, kind)
            if reference is None:
                continue
            found = load(reference)
            wanted = set(getattr(found, "roles", None) or probe_roles(found))
            assert entry.roles and wanted <= set(entry.roles), (entry.name, kind, wanted)


def test_only_the_runbooks_of_the_hosts_roles_are_imported():
    """demo.check on the lab (no Xen host, no microk8s node) never imports their modules."""
    import subprocess

    code = (
        "import sys\n"
        "from runbooks.demo.order import parts\n"
        "roles = {'gateway', 'registry', 'pi', 'k3s-server', 'k3s-agent', 'router', 'client'}\n"
        "names = [e.name for kind in ('converge', 'check', 'reset') "
        "for e, _ in parts(kind, roles=roles)]\n"
        "print(sorted(set(names)))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('runbooks.xen_dom0', "
        "'runbooks.microk8s.plan', 'runbooks.microk8s.health'))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    names, imported = done.stdout.splitlines()
    assert "xen-dom0" not in names and "'microk8s'" not in names and "'k3s'" in names
    assert "microk8s.release" in names  # on the registry host: it plans nothing there
    assert imported == "[]"
    assert {e.name for e, _ in parts("check", roles={"xen-dom0"})} == {"xen-dom0"}
