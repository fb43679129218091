"""The command line: help for every task and parameter, bad input stops before any host."""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from invoke import Collection, Program

from runbooks.core.cli import runbook_task
from runbooks.core.runner import Runbook
from runbooks.core.steps import Plan

REPO = Path(__file__).resolve().parents[2]


def walk(collection: Collection, prefix: str = ""):
    for name, task in collection.tasks.items():
        yield prefix + name, task
    for name, sub in collection.collections.items():
        yield from walk(sub, prefix + name + ".")


def test_every_task_and_parameter_has_help(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    import tasks

    found = list(walk(tasks.ns))
    assert found, "tasks.py exposes no task"
    for name, task in found:
        assert (task.__doc__ or task.body.__doc__ or "").strip(), f"{name} has no docstring"
        probe = copy.copy(task)
        probe.help = dict(task.help)  # get_arguments() consumes the help dict it reads
        for arg in probe.get_arguments():
            assert arg.help, f"{name} --{arg.name} has no help text"


def test_inv_list_shows_every_collection():
    done = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    listed = set()
    for line in done.stdout.splitlines()[1:]:
        words = line.split()
        if words and line.startswith("  ") and not line.startswith("   "):
            listed.add(words[0])
            if len(words) > 1 and words[1].startswith("("):
                listed.add(words[1].strip("()"))  # a collection's default task
    for name in ("lab.up", "lab.down", "dell-gateway", "dell-gateway.check", "pi-prep",
                 "registry.up", "registry.trust", "registry.load-images", "demo.rehearse"):
        assert name in listed, f"{name} missing from inv --list:\n{done.stdout}"


class ConnectionCounter:
    """A TCP listener on loopback that counts the connections it is offered."""

    def __init__(self, address: str = "127.0.0.5") -> None:
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.address, self.port = address, self.sock.getsockname()[1]

    def count(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1


INVENTORY = """\
site: clitest
defaults: {{user: root, port: {port}}}
network:
  vlan: {{id: {vlan}}}
  subnet: 192.168.10.0/25
  gateway: 192.168.10.2
  dhcp: {{range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}}
hosts:
  rp0: {{address: {address}, roles: [pi]}}
"""


def program() -> Program:
    seen: list[str] = []

    def plan(ctx):
        seen.append(ctx.host.name)
        return Plan()

    ns = Collection()
    ns.add_task(runbook_task(Runbook("probe", ("pi",), plan), "Probe hosts."))
    # the project's own defaults, as Invoke reads them beside tasks.py
    ns.configure(yaml.safe_load((REPO / "invoke.yaml").read_text()))
    return Program(namespace=ns, name="inv", binary="inv")


def run_program(argv: list[str], capsys) -> tuple[int, str]:
    try:
        program().run(["inv", *argv], exit=True)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_bad_inventory_exits_nonzero_naming_file_line_key_and_touches_no_host(
        tmp_path, capsys):
    counter = ConnectionCounter()
    path = tmp_path / "site.yaml"
    path.write_text(INVENTORY.format(port=counter.port, vlan=5000, address=counter.address))
    code, out = run_program(["probe", "-i", str(path)], capsys)
    assert code == 2
    assert f"{path}:4: network.vlan.id" in out and "4094" in out
    assert counter.count() == 0


def test_unknown_host_lists_known_ones_and_touches_no_host(tmp_path, capsys):
    counter = ConnectionCounter()
    path = tmp_path / "site.yaml"
    path.write_text(INVENTORY.format(port=counter.port, vlan=100, address=counter.address))
    code, out = run_program(["probe", "-i", str(path), "-H", "rp9"], capsys)
    assert code == 2 and "rp9" in out and "rp0" in out
    assert counter.count() == 0


@pytest.mark.parametrize("argv,message", [
    (["--parallel", "x"], "--parallel 'x': give a whole number"),
    (["--parallel", "-3"], "--parallel -3: give a whole number of hosts, at least 1"),
], ids=["not-a-number", "negative"])
def test_bad_option_value_is_one_line_exit_2_and_touches_no_host(tmp_path, capsys, argv,
                                                                 message):
    counter = ConnectionCounter()
    path = tmp_path / "site.yaml"
    path.write_text(INVENTORY.format(port=counter.port, vlan=100, address=counter.address))
    code, out = run_program(["probe", "-i", str(path), *argv], capsys)
    assert code == 2
    assert out.strip().splitlines() == [out.strip()] and message in out, out
    assert "Traceback" not in out and counter.count() == 0


def test_short_flags_and_help(capsys):
    code, out = run_program(["probe", "--help"], capsys)
    assert code == 0
    for flag in ("-i STRING, --inventory", "-H STRING, --host", "--check", "--parallel",
                 "--report", "--accept-new-host-keys"):
        assert flag in out, textwrap.shorten(out, 400)


def test_a_task_called_from_python_reads_the_same_defaults():
    """A bare Context (no `inv`) still gets invoke.yaml's defaults, and only those."""
    from invoke import Context

    from runbooks.core.cli import inventory_path, parallel_of

    wanted = yaml.safe_load((REPO / "invoke.yaml").read_text())["greenroom"]
    assert inventory_path(Context(), None) == wanted["inventory"]
    assert parallel_of(Context(), 0) == wanted["parallel"]
    assert parallel_of(Context(), 3) == 3


def test_a_run_hides_its_long_lived_objects_from_the_garbage_collector(tmp_path):
    # the start-up's objects live until exit: frozen, no collection walks them again (the
    # one at exit included); the host here refuses the connection, the run ends with 1
    closed = socket.socket()
    closed.bind(("127.0.0.5", 0))
    port = closed.getsockname()[1]  # bound, never listening: connections are refused
    path = tmp_path / "site.yaml"
    path.write_text(INVENTORY.format(port=port, vlan=100, address="127.0.0.5"))
    code = textwrap.dedent(f"""
        import gc, sys
        sys.path.insert(0, {str(REPO / "tests" / "unit")!r})
        from test_cli import program
        try:
            program().run(["inv", "probe", "-i", {str(path)!r}], exit=True)
        except SystemExit as exc:
            print(exc.code, gc.get_freeze_count())
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=False)
    closed.close()
    exit_code, frozen = done.stdout.split()[-2:]
    assert exit_code == "1", done.stdout + done.stderr
    assert int(frozen) > 10_000, "the start-up's objects were not frozen"
