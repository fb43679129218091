"""Named facts of one runbook each (the gateway's neighbour probe, metallb's HTTP fetch from a
client and its microk8s addon probe, microk8s's status, snap, nodes and join marker): their
pure parsers as tables, and the HTTP fetch's command run by a real shell against a server on
loopback."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from runbooks.core.facts import FactResult, prepare
from runbooks.dell_gateway.prune import neighbours_fact
from runbooks.metallb.health import HttpAnswer, http_answer, parse_http_answer
from runbooks.metallb.plan import MICROK8S_METALLB_ADDON
from runbooks.microk8s.plan import (
    ADDONS,
    CLUSTERED_HERE,
    HIGH_AVAILABILITY,
    NODES,
    SNAP_NOTES,
    ready_fact,
)

IPS = [IPv4Address("192.168.10.26"), IPv4Address("192.168.10.27")]
NEIGHBOURS = neighbours_fact("eth1.100", IPS)


@pytest.mark.parametrize(("result", "wanted"), [
    pytest.param(FactResult(0, "192.168.10.26 lladdr 02:00:00:00:00:26 REACHABLE\n"
                               "192.168.10.27 FAILED\n"),
                 {IPS[0]: ("02:00:00:00:00:26", "REACHABLE"), IPS[1]: (None, "FAILED")},
                 id="one-answers-one-failed"),
    pytest.param(FactResult(0, ""), {}, id="empty-table"),
    pytest.param(FactResult(0, "fe80::1 lladdr 02:00:00:00:00:01 STALE\n"), {},
                 id="not-ipv4-skipped"),
    # a table printed although the command failed: what it shows is still read
    pytest.param(FactResult(1, "192.168.10.26 lladdr 02:00:00:00:00:26 DELAY\n"),
                 {IPS[0]: ("02:00:00:00:00:26", "DELAY")}, id="failed-with-table"),
    pytest.param(FactResult(1, ""), None, id="unreadable"),
])
def test_neighbour_probe_parser(result, wanted):
    assert NEIGHBOURS.parse(result) == wanted


def test_neighbour_probe_pings_every_lease_then_lists_the_interface():
    command = NEIGHBOURS.command
    assert [f"-I eth1.100 {ip}" in command for ip in IPS] == [True, True]
    assert command.endswith("wait; ip -4 neigh show dev eth1.100")


@pytest.mark.parametrize(("result", "wanted"), [
    pytest.param(FactResult(0, "200"), HttpAnswer(True, "200"), id="answered"),
    pytest.param(FactResult(22, "503curl: (22) The requested URL returned error: 503\n"),
                 HttpAnswer(False, "503curl: (22) The requested URL returned error: 503"),
                 id="server-error"),
    pytest.param(FactResult(28, ""), HttpAnswer(False, "no reply"), id="silent-timeout"),
    pytest.param(FactResult(7, "x" * 300), HttpAnswer(False, "x" * 120), id="long-error-tail"),
])
def test_http_answer_parser(result, wanted):
    assert parse_http_answer(result) == wanted


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        self.send_response(200 if self.path == "/" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    """An HTTP server on loopback answering 200 at /; yields "127.0.0.1:PORT"."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_fact(command: str, path: str | None = None) -> FactResult:
    """Run a fact's command the way a batch does (sh), optionally with only PATH."""
    env = dict(os.environ, PATH=path) if path is not None else None
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          env=env, timeout=30)
    return FactResult(done.returncode, done.stdout)


@pytest.fixture
def python_only(tmp_path: Path) -> str:
    """A PATH with python3 and nothing else (a host without curl)."""
    (tmp_path / "python3").symlink_to(sys.executable)
    return str(tmp_path)


@pytest.mark.parametrize("tool", ["curl", "python"])
def test_http_answer_on_a_real_shell(web, tool, python_only):
    path = python_only if tool == "python" else None
    assert http_answer(web).parse(run_fact(http_answer(web).command, path)) == HttpAnswer(
        True, "200")
    closed = f"127.0.0.1:{free_port()}"
    answer = http_answer(closed).parse(run_fact(http_answer(closed).command, path))
    assert not answer.ok and answer.detail != "no reply"  # says why: connection refused


def test_http_answers_of_one_address_asked_twice_fetch_once():
    fact = http_answer("192.168.10.240")
    script, parse = prepare({"client": fact.command, "path": fact.command})
    assert script.count("http://192.168.10.240/") == 2  # curl's and python's, once each
    marker = script.split('printf "\\n')[1].split(" %s")[0]
    results = parse(f"200\n{marker} 0\n")
    assert fact.read(results, "client") == fact.read(results, "path") == HttpAnswer(True, "200")


ADDONS_SHORT = "core/dns: enabled\ncore/ingress: disabled\ncommunity/argocd: disabled\n"


@pytest.mark.parametrize(("fact", "result", "wanted"), [
    pytest.param(ADDONS, FactResult(0, ADDONS_SHORT),
                 {"dns": True, "ingress": False, "argocd": False}, id="addons"),
    pytest.param(ADDONS, FactResult(0, "microk8s is not running\n"), {}, id="addons-not-running"),
    pytest.param(ADDONS, FactResult(1, ADDONS_SHORT), {}, id="addons-failed"),
    pytest.param(SNAP_NOTES, FactResult(0, "held\n"), "held", id="snap-held"),
    pytest.param(SNAP_NOTES, FactResult(0, "-\n"), "-", id="snap-not-held"),
    pytest.param(SNAP_NOTES, FactResult(0, "\n"), None, id="no-snap"),  # awk prints nothing
    pytest.param(SNAP_NOTES, FactResult(127, ""), None, id="no-snapd"),
    pytest.param(NODES, FactResult(0, "mk0   Ready    <none>   3d   v1.29.4\n"
                                      "mk1   NotReady <none>   3d   v1.29.4\n"),
                 {"mk0": "Ready", "mk1": "NotReady"}, id="nodes"),
    pytest.param(NODES, FactResult(1, "mk0 Ready\n"), {}, id="nodes-failed"),
    pytest.param(HIGH_AVAILABILITY, FactResult(0, "microk8s is running\nhigh-availability: yes\n"),
                 "yes", id="ha-yes"),
    pytest.param(HIGH_AVAILABILITY, FactResult(0, "microk8s is running\n"), None, id="ha-unsaid"),
    pytest.param(HIGH_AVAILABILITY, FactResult(1, "high-availability: yes\n"), None,
                 id="ha-failed"),
    pytest.param(CLUSTERED_HERE, FactResult(0, ""), True, id="clustered"),
    pytest.param(CLUSTERED_HERE, FactResult(1, ""), False, id="not-clustered"),
    pytest.param(ready_fact(30), FactResult(0, ""), True, id="ready"),
    pytest.param(ready_fact(30), FactResult(1, ""), False, id="not-ready"),
    pytest.param(MICROK8S_METALLB_ADDON, FactResult(0, "enabled\n"), True, id="metallb-addon-on"),
    pytest.param(MICROK8S_METALLB_ADDON, FactResult(0, "disabled\n"), False,
                 id="metallb-addon-off"),
    pytest.param(MICROK8S_METALLB_ADDON, FactResult(127, "enabled\n"), False,
                 id="no-microk8s"),
])
def test_microk8s_fact_parsers(fact, result, wanted):
    assert fact.parse(result) == wanted


def test_the_addon_list_is_one_command_for_both_steps_that_read_it():
    from runbooks.microk8s.plan import Addons, AddonsEnabled

    cluster = type("C", (), {"addons": (), "nodes": (), "workers": ()})()
    commands = {**{f"a.{k}": c for k, c in Addons(cluster).facts().items()},  # type: ignore
                **{f"b.{k}": c for k, c in AddonsEnabled(cluster).facts().items()}}  # type: ignore
    script, _ = prepare(commands)
    assert script.count("microk8s status --format short") == 1
    assert ready_fact(30).command.endswith("--wait-ready --timeout 30 >/dev/null")


class _Gathers:
    """A HostContext's gather answered from a table (each command asked for must be known)."""

    def __init__(self, present: set[str], roles: tuple[str, ...]) -> None:
        self.present, self.asked = present, {}
        self.host = type("H", (), {"roles": roles})()

    def gather(self, commands):
        self.asked = dict(commands)
        return {key: FactResult(0 if key in self.present else 1, "") for key in commands}


@pytest.mark.parametrize(("present", "roles", "wanted"), [
    pytest.param({"containerd", "docker"}, ("pi",), ["containerd", "docker"], id="two-found"),
    pytest.param(set(), ("pi",), [], id="none"),
    # a k3s node whose k3s is not installed yet: its trust is written before the install
    pytest.param({"containerd"}, ("pi", "k3s-agent"), ["containerd", "k3s"], id="k3s-role"),
])
def test_runtimes_are_detected_by_their_named_facts(present, roles, wanted):
    from runbooks.registry.converge import RUNTIME_PRESENT, chosen_runtimes

    ctx = _Gathers(present, roles)
    assert chosen_runtimes(ctx, None) == wanted  # type: ignore[arg-type]
    assert ctx.asked == {name: fact.command for name, fact in RUNTIME_PRESENT.items()}


@pytest.mark.parametrize(("result", "wanted"), [
    pytest.param(FactResult(0, '[{"Name": "/greenroom-registry", "State": {"Running": true}}]'),
                 {"Name": "/greenroom-registry", "State": {"Running": True}}, id="found"),
    pytest.param(FactResult(1, "Error: No such container: greenroom-registry\n"), None,
                 id="absent"),
])
def test_container_fact(result, wanted):
    from runbooks.registry.converge import container_fact

    fact = container_fact("greenroom-registry")
    assert fact.command == "docker inspect --type container greenroom-registry"
    assert fact.parse(result) == wanted


@pytest.mark.parametrize("out", ["not json", "[]", "[1]"], ids=["garbage", "empty", "no-object"])
def test_container_fact_names_an_unreadable_answer(out):
    from runbooks.core.steps import StepFailed
    from runbooks.registry.converge import container_fact

    with pytest.raises(StepFailed, match="cannot read `docker inspect greenroom-registry`"):
        container_fact("greenroom-registry").parse(FactResult(0, out))


def test_registry_file_facts_on_a_real_shell(tmp_path):
    """The config files' mtimes and digests as the restart step reads them, from real stat and
    sha256sum over two files, one of them missing."""
    import hashlib

    from runbooks.registry.converge import mtimes_fact, sums_fact

    present, missing = tmp_path / "config.yml", tmp_path / "gone.conf"
    present.write_text("version: 0.1\n")
    paths = [str(present), str(missing)]
    mtimes = mtimes_fact(paths).parse(run_fact(mtimes_fact(paths).command))
    assert mtimes == {str(present): pytest.approx(present.stat().st_mtime, abs=1e-6)}
    sums = sums_fact(paths).parse(run_fact(sums_fact(paths).command))
    assert sums == {str(present): hashlib.sha256(b"version: 0.1\n").hexdigest()}


@pytest.mark.parametrize(("text", "wanted"), [
    ("1764400000.123456789 /etc/docker/registry/config.yml\n",
     {"/etc/docker/registry/config.yml": 1764400000.123456789}),
    ("", {}),
    ("stat: cannot statx '/x': No such file or directory\n", {}),
], ids=["one-file", "none", "error-line"])
def test_parse_mtimes(text, wanted):
    from runbooks.registry.converge import parse_mtimes

    assert parse_mtimes(text) == wanted


@pytest.mark.parametrize(("result", "wanted"), [
    pytest.param(FactResult(0, ""), None, id="answers"),
    pytest.param(FactResult(1, "192.168.10.2 is not on this host\n"),
                 "192.168.10.2 is not on this host", id="address-missing"),
    pytest.param(FactResult(1, "curl: (22) The requested URL returned error: 503\n"),
                 "curl: (22) The requested URL returned error: 503", id="http-error"),
    pytest.param(FactResult(7, ""), "curl exit 7", id="silent-failure"),
])
def test_registry_health_fact(result, wanted):
    from runbooks.registry.converge import health_fact

    assert health_fact("http://192.168.10.2:5001", "192.168.10.2", "true").parse(
        result) == wanted
