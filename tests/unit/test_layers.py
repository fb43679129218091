"""The layers hold: core <- common <- runbooks, core never imports the lab, runbooks never
import each other, and no two modules import each other (even for type checking)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def module_name(path: Path) -> str:
    parts = path.relative_to(RUNBOOKS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every runbooks.* module `path` imports, at any place in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = module_name(path).split(".")
            base = base[: len(base) - node.level + (path.name == "__init__.py")]
            found.add(".".join([*base, node.module] if node.module else base))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("runbooks"):
            found.add(str(node.module))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("runbooks"))
    return found


MODULES = {module_name(p): imports_of(p) for p in RUNBOOKS.rglob("*.py")}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "core"))
def test_core_imports_only_core(module):
    assert {layer(i) for i in MODULES[module]} <= {"core"}, MODULES[module]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) == "common"))
def test_common_imports_only_core_and_common(module):
    assert {layer(i) for i in MODULES[module]} <= {"core", "common"}, MODULES[module]


RUNBOOK_LAYERS = sorted({layer(m) for m in MODULES} - {"core", "common", "lab", "root"})


@pytest.mark.parametrize("name", RUNBOOK_LAYERS)
def test_a_runbook_imports_only_core_common_and_itself(name):
    for module in (m for m in MODULES if layer(m) == name):
        outside = {layer(i) for i in MODULES[module]} - {"core", "common", name}
        assert not outside, f"{module} imports {sorted(MODULES[module])}"


def test_no_two_modules_import_each_other():
    pairs = sorted((a, b) for a, deps in MODULES.items() for b in deps
                   if a < b and a in MODULES.get(b, set()))
    assert pairs == []


# Facts that several runbooks read: each is a named Fact, written in one module only.
ONE_DEFINITION = {
    "dpkg-query -W": "runbooks/core/steps/system.py",
    "iptables -w -S": "runbooks/dell_gateway/docker.py",
    "nft list table inet": "runbooks/common/nat.py",
    "firewall-cmd --direct --get-all-rules": "runbooks/common/nat.py",
    "firewall-cmd --permanent --direct --get-all-rules": "runbooks/common/nat.py",
    "firewall-cmd --state": "runbooks/common/nat.py",
    "containerd --version": "runbooks/common/facts.py",
    "cat /proc/swaps": "runbooks/pi_prep/facts.py",
    "cat /proc/cgroups": "runbooks/pi_prep/facts.py",
    "cgroup.controllers": "runbooks/pi_prep/facts.py",
    "systemctl is-active {shlex": "runbooks/core/steps/system.py",  # unit_active(unit)
    "systemctl is-enabled {shlex": "runbooks/core/steps/system.py",  # unit_enabled(unit)
}


@pytest.mark.parametrize("command", sorted(ONE_DEFINITION))
def test_a_shared_fact_command_is_written_once(command):
    where = sorted(str(p.relative_to(RUNBOOKS.parent)) for p in RUNBOOKS.rglob("*.py")
                   if "runbooks/lab/" not in str(p) and command in p.read_text())
    assert where == [ONE_DEFINITION[command]]


def test_core_knows_nothing_of_the_lab_also_in_data():
    """The lab's inventory keys are declared by the lab (runbooks/lab/schema.py), not core."""
    from runbooks.core import inventory, inventory_hosts, inventory_model, inventory_schema

    assert "lab" not in inventory.TOP_KEYS and "lab" not in inventory_hosts.HOST_KEYS
    assert "lab" not in inventory_schema.CORE_SECTIONS + inventory_schema.CORE_HOST_KEYS
    assert not [name for name in vars(inventory_model) if "lab" in name.lower()]
    assert "lab" not in {f.name for f in __import__("dataclasses").fields(inventory_model.Host)}


def test_without_the_lab_plugged_in_a_lab_inventory_is_refused():
    """A process that has not plugged the lab in (no tasks.py, no tests/conftest.py) reads
    `lab:` as an unknown key, named with file and line."""
    import subprocess
    import sys

    code = ("from runbooks.core.inventory import load_inventory, InventoryError\n"
            "try:\n    load_inventory('hosts/lab.yaml')\n"
            "except InventoryError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=RUNBOOKS.parent,
                          capture_output=True, text=True, check=True)
    assert "hosts/lab.yaml:" in done.stdout and "unknown key 'lab'" in done.stdout, done.stdout


def test_a_lab_inventory_without_the_lab_access_is_refused_before_any_connection(monkeypatch):
    from runbooks.core import access
    from runbooks.core.errors import UsageError
    from runbooks.core.inventory import load_inventory

    monkeypatch.setattr(access, "_providers", [])  # (importing tasks.py plugs the lab in)
    inventory = load_inventory(RUNBOOKS.parent / "hosts" / "lab.yaml")  # conftest: lab keys
    with pytest.raises(UsageError, match="describes a virtual lab, but no lab is plugged"):
        access.access_for(inventory)  # no provider: nothing would reach its addresses


def test_nobody_reads_the_lab_section_as_an_attribute():
    """Inventories and hosts carry the lab's keys in `sections` (runbooks/lab/schema.py:
    lab_of, host_lab); `getattr(inventory, "lab", None)` would silently read None."""
    import re

    pattern = re.compile(r"getattr\([^,()]+,\s*[\"']lab[\"']|\b(inv|inventory|host)\.lab\b")
    found = [f"{p.relative_to(RUNBOOKS.parent)}:{n}" for p in RUNBOOKS.rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
