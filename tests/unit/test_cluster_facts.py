"""The cluster facts several parts read (k3s's version, the nodes as kubectl lists them): one
command and one parser each, shared by `inv k3s`, `k3s.check` and demo.check's probes."""

from __future__ import annotations

import json

import pytest

from runbooks.common.kubectl import nodes_fact, parse_nodes
from runbooks.core.facts import FactResult
from runbooks.k3s import check, config, health


def node(name: str, ready: str = "True", version: str = "v1.34.1+k3s1") -> dict:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                       "nodeInfo": {"kubeletVersion": version}}}


@pytest.mark.parametrize(("rc", "out", "expected"), [
    (0, "k3s version v1.34.1+k3s1 (0123abcd)\ngo version go1.24.4\n", "v1.34.1+k3s1"),
    (127, "sh: 1: /usr/local/bin/k3s: not found\n", None),
    (0, "k3s\n", None),
    (0, "", None),
], ids=["release", "no-binary", "too-short", "empty"])
def test_k3s_version(rc: int, out: str, expected: str | None) -> None:
    assert config.VERSION.parse(FactResult(rc, out)) == expected


@pytest.mark.parametrize(("rc", "out", "expected"), [
    (0, json.dumps({"items": [node("rp0"), node("rp1", "False")]}),
     {"rp0": True, "rp1": False}),
    (0, json.dumps({"items": []}), {}),
    (1, "The connection to the server 127.0.0.1:6443 was refused", None),
    (0, "not json", None),
    (0, json.dumps(["a list"]), None),
], ids=["ready-and-not", "no-nodes", "api-down", "garbled", "not-a-list-object"])
def test_nodes(rc: int, out: str, expected: dict | None) -> None:
    got = parse_nodes(FactResult(rc, out))
    assert (None if got is None else {n: s["ready"] for n, s in got.items()}) == expected


def test_one_command_for_each_cluster_fact_wherever_it_is_read() -> None:
    """`inv k3s`'s readiness wait, `k3s.check` and demo.check's probe ask the same commands,
    so a batch holding two of them runs each once."""
    assert nodes_fact("k3s kubectl").command == config.NODES.command
    assert config.VERSION.command == f"{config.BINARY} --version"
    source = {name: open(module.__file__).read() for name, module in
              (("check", check), ("health", health))}
    for name, text in source.items():
        assert "get nodes" not in text and "--version" not in text, name
