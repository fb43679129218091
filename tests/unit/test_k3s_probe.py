"""k3s's demo.check probe (runbooks/k3s/health.py) proves the version a node runs by the
pinned binary's sha256, read with the plan's own fact for that file (one command for both,
a stamp and one `stat` on a converged node), instead of starting the binary on every node
(`k3s --version`: in the lab a Python start of the double, on a Pi a Go binary's)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbooks.common.artifacts import STAMPED, Artifact
from runbooks.core.facts import FactResult, prepare
from runbooks.core.inventory import load_inventory
from runbooks.k3s import config as cfg
from runbooks.k3s import health
from runbooks.k3s.plan import node_plan
from runbooks.k3s.release import Lock
from tests.unit.test_k3s import BASE, node

VERSION = "v1.34.3+k3s1"
PINNED = "a" * 64
OTHER = "b" * 64
INVENTORY = (BASE + node("rp0", 3, "k3s-server") + node("rp1", 4, "k3s-agent")
             + f"cluster: {{distribution: k3s, version: {VERSION}}}\n")


def site(tmp_path: Path, pinned: bool = True):  # noqa: ANN201
    path = tmp_path / "t.yaml"
    path.write_text(INVENTORY)
    if pinned:
        (tmp_path / "t.k3s.lock").write_text(json.dumps({"versions": {VERSION: {
            "k3s-arm64": PINNED, "k3s-airgap-images-arm64.tar.zst": "c" * 64}}}))
    return load_inventory(str(path))


def plan_binary_fact(inventory, name: str) -> str:  # noqa: ANN001
    """The fact of the plan's Artifact step for the k3s binary, as `inv k3s` plans it."""
    lock = Lock.read(inventory.path.with_name("t.k3s.lock"))
    ctx = SimpleNamespace(inventory=inventory, host=inventory.hosts[name], check=True,
                          options={"lock": lock, "shared": {"token": "t"}},
                          session=None, connector=None, log=lambda _m: None)
    steps = [s for s in node_plan(ctx).steps
             if isinstance(s, Artifact) and s.path == cfg.BINARY]
    assert len(steps) == 1
    return steps[0].fact()


@pytest.mark.parametrize("name", ["rp0", "rp1"], ids=["first-server", "agent"])
def test_the_probe_asks_the_plans_own_binary_fact_and_never_starts_k3s(tmp_path, name):
    inventory = site(tmp_path)
    asked = health.facts(inventory.hosts[name], inventory)
    assert asked["k3s/version"] == plan_binary_fact(inventory, name)
    # in one batch with the plan's facts, the probe's read is the same command: run once
    script, _parse = prepare({"probe": asked["k3s/version"],
                              "plan": plan_binary_fact(inventory, name)})
    assert script.count("sha256sum /usr/local/bin/k3s") == 2  # one command (two branches)
    assert "--version" not in script
    assert all("--version" not in command for command in asked.values())


def test_without_a_pin_the_probe_asks_the_binary(tmp_path):
    inventory = site(tmp_path, pinned=False)
    asked = health.facts(inventory.hosts["rp0"], inventory)
    assert asked["k3s/version"] == cfg.VERSION.command
    found = {"k3s/version": FactResult(0, f"k3s version {VERSION} (abc)\n"),
             "k3s/active": FactResult(0, "active\n"),
             "k3s/nodes": FactResult(0, json.dumps({"items": []}))}
    checks = {c.name: c for c in health.evaluate(inventory.hosts["rp1"], inventory, found)}
    assert checks["k3s version"].ok, checks["k3s version"]


@pytest.mark.parametrize(("answer", "ok", "says"), [
    (FactResult(0, f"{PINNED}\n{STAMPED}\n"), True, f"{VERSION} (pinned {VERSION}, sha256 aaaa"),
    (FactResult(0, f"{PINNED}\n"), True, f"{VERSION} (pinned"),
    (FactResult(0, f"{OTHER}  /usr/local/bin/k3s\n"), False,
     f"not the pinned {VERSION}: /usr/local/bin/k3s has sha256 bbbbbbbbbbbb"),
    (FactResult(0, "greenroom: the gateway has it\n"), False, f"none (pinned {VERSION})"),
    (FactResult(0, ""), False, f"none (pinned {VERSION})"),
    (FactResult(1, ""), False, f"none (pinned {VERSION})"),
], ids=["stamped", "hashed-unstamped", "another-binary", "missing-gateway-has-it", "missing",
        "failed"])
def test_the_version_check_from_the_binary_fact(tmp_path, answer, ok, says):
    inventory = site(tmp_path)
    found = {"k3s/version": answer, "k3s/active": FactResult(0, "active\n")}
    checks = {c.name: c for c in health.evaluate(inventory.hosts["rp1"], inventory, found)}
    check = checks["k3s version"]
    assert check.ok is ok and check.detail.startswith(says), check
    assert ok or check.fix == "inv k3s"


def test_the_lock_is_parsed_once_per_process_for_probe_and_plans(tmp_path, monkeypatch):
    """demo.check on two nodes: the probe's facts and verdict and each node's plan all ask
    for the inventory's lock; it is read and parsed once while the file stays the same."""
    from runbooks.common import pins
    from runbooks.k3s import release

    inventory = site(tmp_path)
    reads = []
    real = pins.read_lock

    def counted(path, key, error):  # noqa: ANN001, ANN202
        reads.append(path)
        return real(path, key, error)

    monkeypatch.setattr(pins, "read_lock", counted)
    monkeypatch.setattr(release, "fetch", lambda *_a, **_k: None)  # the cache: not here
    for name in ("rp0", "rp1"):
        host = inventory.hosts[name]
        asked = health.facts(host, inventory)
        list(health.evaluate(host, inventory, {"k3s/version": FactResult(0, f"{PINNED}\n"),
                                               "k3s/active": FactResult(0, "active\n")}))
        ctx = SimpleNamespace(inventory=inventory, host=host, check=True,
                              options={"shared": {"token": "t"}}, session=None,
                              connector=None, log=lambda _m: None)
        assert asked["k3s/version"] in {s.fact() for s in node_plan(ctx).steps
                                        if isinstance(s, Artifact)}
    assert len(reads) == 1, reads


def test_a_changed_lock_is_read_again_and_copies_are_independent(tmp_path):
    inventory = site(tmp_path)
    path = inventory.path.with_name("t.k3s.lock")
    first = Lock.cached(path)
    first.versions[VERSION]["k3s-arm64"] = OTHER  # a caller's change is its own
    assert Lock.cached(path).digest(VERSION, "k3s-arm64") == PINNED
    path.write_text(json.dumps({"versions": {VERSION: {"k3s-arm64": OTHER, "x": "y"}}}))
    assert Lock.cached(path).digest(VERSION, "k3s-arm64") == OTHER
