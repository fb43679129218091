"""Changes of independent steps travel in one round trip (runbooks.core.apply): the batch
script on a real shell (order, stdin, first failure, a cut script), and the converger's
grouping by scope, from a fake host (no lab)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbooks.common.kernel import ModuleLoaded, Sysctl, SysctlLive
from runbooks.core import converge
from runbooks.core.apply import COMMAND, Applied, Batch, batchable, run_batch
from runbooks.core.facts import FactResult, file_command, parse_file
from runbooks.core.results import Status
from runbooks.core.steps import (
    Action,
    Change,
    Command,
    Composite,
    Directory,
    Edit,
    File,
    Plan,
    Step,
    Verify,
)
from runbooks.core.steps.base import scopes_overlap
from runbooks.core.steps.files import write_command


class LocalShell:
    """Runs a command with the local sh, stdin included, as the remote login shell would."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, command, stdin=None):
        self.calls += 1
        done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True,
                              text=True, check=False, timeout=30)
        return SimpleNamespace(rc=done.returncode, stdout=done.stdout, stderr=done.stderr,
                               ok=done.returncode == 0)


@pytest.fixture(autouse=True)
def _backups_in_tmp(tmp_path, monkeypatch):
    """Replaced files are backed up under tmp_path, never under this machine's /var."""
    from runbooks.core.steps import files

    monkeypatch.setattr(files, "BACKUP_DIR", str(tmp_path / "backups"))


def test_one_round_trip_writes_files_in_order_then_reads_facts(tmp_path):
    a, b = tmp_path / "a.conf", tmp_path / "sub" / "b.conf"
    a.write_text("old\n")
    content_b = "x = 'quoted' $HOME `id` \\n\n\nlast\n"
    actions = [Action(write_command(str(a), "new\n", "600", "root", "root", None), "new\n"),
               Action(write_command(str(b), content_b, "644", "root", "root", None),
                      content_b),
               Action(f"cat {a} > {tmp_path}/order")]
    shell = LocalShell()
    applied = run_batch(shell, actions, {"a": file_command(str(a)),
                                         "b": file_command(str(b))})
    assert shell.calls == 1 and applied.rcs == [0, 0, 0]
    assert a.read_text() == "new\n" and b.read_text() == content_b
    assert (tmp_path / "order").read_text() == "new\n"  # the third ran after the first
    assert applied.facts is not None
    assert parse_file(applied.facts["b"]).content == content_b
    assert parse_file(applied.facts["a"]).mode == "600"


def test_the_first_failure_stops_the_batch_and_names_its_output(tmp_path):
    actions = [Action(f"touch {tmp_path}/one"), Action("echo broken >&2; exit 5"),
               Action(f"touch {tmp_path}/three")]
    applied = run_batch(LocalShell(), actions, {"x": "echo never"})
    assert applied.rcs == [0, 5] and applied.outputs[1] == "broken\n"
    assert applied.facts is None
    assert (tmp_path / "one").exists() and not (tmp_path / "three").exists()


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95], ids=["early", "middle", "before-the-brace"])
def test_a_script_cut_on_its_way_runs_nothing(tmp_path, cut):
    target = tmp_path / "target.conf"
    target.write_text("old\n")
    actions = [Action(f"touch {tmp_path}/first"),
               Action(write_command(str(target), "new\n", "644", "root", "root", None),
                      "new\n")]
    script = Batch(actions).script()
    done = subprocess.run(["sh", "-s"], input=script[: int(len(script) * cut)],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert not (tmp_path / "first").exists() and target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["target.conf"]


@pytest.mark.parametrize("stdin,ok", [
    (None, True), ("", True), ("line\n", True), ("no newline", False), ("nul\0byte\n", False),
], ids=["none", "empty", "text", "no-final-newline", "nul"])
def test_what_a_batch_can_carry(stdin, ok):
    assert batchable(Action("cat", stdin)) is ok


def test_stdin_a_batch_cannot_carry_goes_one_round_trip_each(tmp_path):
    shell = LocalShell()
    applied = run_batch(shell, [Action(f"cat > {tmp_path}/t", "no newline"),
                                Action(f"cat > {tmp_path}/u", "u\n")], {"x": "echo hi"})
    assert (tmp_path / "t").read_text() == "no newline" and (tmp_path / "u").read_text() == "u\n"
    assert shell.calls == 3 and applied.facts is not None and applied.facts["x"].out == "hi\n"


def test_the_script_travels_on_stdin_not_in_argv():
    secret = "s3cret-value\n"
    script = Batch([Action("cat > /dev/null", secret)]).script()
    assert COMMAND == "exec sh -s" and secret in script


@pytest.mark.parametrize("a,b,overlap", [
    ({"file:/etc/a"}, {"file:/etc/b"}, False),
    ({"file:/etc/containerd"}, {"file:/etc/containerd/config.toml"}, True),
    ({"file:/etc/containerd/"}, {"file:/etc/containerd/certs.d"}, True),
    ({"file:/etc/con"}, {"file:/etc/containerd"}, False),
    ({"sysctl:net.ipv4.ip_forward"}, {"sysctl:net.ipv4.ip_forward"}, True),
    ({"sysctl:a"}, {"module:a"}, False),
], ids=["siblings", "parent-dir", "trailing-slash", "name-prefix-only", "same-sysctl",
        "other-kinds"])
def test_scopes_overlap(a, b, overlap):
    assert scopes_overlap(frozenset(a), frozenset(b)) is overlap


def test_which_steps_name_their_scope():
    assert File("/etc/a", "x").scope() == {"file:/etc/a"}
    assert Directory("/etc/d").scope() == {"file:/etc/d"}
    assert SysctlLive("net.ipv4.ip_forward", "1").scope() == {"sysctl:net.ipv4.ip_forward"}
    assert ModuleLoaded("overlay").scope() == {"module:overlay"}
    assert Sysctl("vm.x", 1, file="/etc/sysctl.d/x.conf").scope() == {
        "sysctl:vm.x", "file:/etc/sysctl.d/x.conf"}
    assert Command("c", "true", unless="false").scope() is None

    class ReadsMore(Edit):
        def facts(self) -> Mapping[str, str]:
            return {**super().facts(), "other": "cat /etc/other"}

    assert ReadsMore("/etc/a", lambda c: c).scope() is None
    assert Composite("c", [File("/etc/a", "x"), Command("c", "true", unless="false")]
                     ).scope() is None


class Key(Step):
    """Wants /k/<name>; scope `file:/k/<name>` unless told it has none."""

    def __init__(self, name: str, scoped: bool = True, fails: bool = False) -> None:
        self.name, self.key, self.scoped, self.fails = f"Ensure {name}", name, scoped, fails

    def facts(self) -> Mapping[str, str]:
        return {"k": f"test -e /k/{self.key}"}

    def scope(self) -> frozenset[str] | None:
        return frozenset({f"file:/k/{self.key}"}) if self.scoped else None

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        if facts["k"].ok:
            return []
        command = "false" if self.fails else f"touch /k/{self.key}"
        return [Change(f"create /k/{self.key}", (Action(command),))]


class AllKeys(Verify):
    name = "Verify every key"

    def facts(self) -> Mapping[str, str]:
        return {"k": "test -e /k/a"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return []


class FakeHost:
    """Keys it has; records each round trip (a batch: its actions; a fact read: 'facts')."""

    def __init__(self, *have: str) -> None:
        self.have = set(have)
        self.trips: list[list[str] | str] = []

    def gather(self, _session, commands):
        self.trips.append("facts")
        return {key: FactResult(0 if cmd.split("/k/")[-1] in self.have else 1, "")
                for key, cmd in commands.items()}

    def run_batch(self, _session, actions, commands):
        self.trips.append([a.command for a in actions])
        rcs = []
        for action in actions:
            rcs.append(0 if action.command.startswith("touch") else 1)
            if rcs[-1]:
                return Applied(rcs, [""] * (len(rcs) - 1) + ["it broke\n"], None)
            self.have.add(action.command.split("/k/")[-1])
        return Applied(rcs, [""] * len(rcs), {
            key: FactResult(0 if cmd.split("/k/")[-1] in self.have else 1, "")
            for key, cmd in commands.items()})


def converge_on(host: FakeHost, *steps: Step, monkeypatch):
    monkeypatch.setattr(converge, "gather", host.gather)
    monkeypatch.setattr(converge, "run_batch", host.run_batch)
    events: list[str] = []
    ctx = SimpleNamespace(host=SimpleNamespace(name="h"), session=None, check=False,
                          options={}, log=lambda text: None)
    result = converge.Converger(ctx, Plan().add(*steps),
                                lambda kind, text: events.append(text)).run()
    return result, events


def test_independent_steps_converge_in_two_round_trips(monkeypatch):
    host = FakeHost()
    result, _ = converge_on(host, Key("a"), Key("b"), Key("c"), monkeypatch=monkeypatch)
    assert host.trips == ["facts", ["touch /k/a", "touch /k/b", "touch /k/c"]]
    assert result.status is Status.CHANGED and result.changed == 3


@pytest.mark.parametrize("steps,trips", [
    ([Key("a"), Key("a/b"), Key("c")],
     ["facts", ["touch /k/a"], ["touch /k/a/b", "touch /k/c"]]),
    ([Key("a"), Key("b", scoped=False), Key("c")],
     ["facts", ["touch /k/a"], ["touch /k/b"], ["touch /k/c"]]),
    ([Key("a"), AllKeys(), Key("c")],
     ["facts", ["touch /k/a"], ["touch /k/c"]]),
], ids=["overlapping-scopes", "a-step-without-scope", "a-verify-step"])
def test_a_step_whose_facts_a_pending_change_may_alter_plans_after_it(monkeypatch, steps,
                                                                      trips):
    host = FakeHost()
    converge_on(host, *steps, monkeypatch=monkeypatch)
    assert host.trips == trips


def test_a_failed_action_fails_its_step_and_drops_the_later_ones(monkeypatch):
    host = FakeHost()
    result, events = converge_on(host, Key("a"), Key("b", fails=True), Key("c"),
                                 monkeypatch=monkeypatch)
    # a was applied and is verified by one more read; c never ran
    assert host.trips == ["facts", ["touch /k/a", "false", "touch /k/c"], "facts"]
    assert [(s.name, s.status) for s in result.steps] == [
        ("Ensure a", Status.CHANGED), ("Ensure b", Status.FAILED)]
    assert result.status is Status.FAILED
    assert result.error == "Ensure b: create /k/b: exit 1: it broke"
    assert host.have == {"a"} and not any("Ensure c" in e for e in events)


def test_a_converged_host_costs_one_round_trip(monkeypatch):
    host = FakeHost("a", "b")
    result, _ = converge_on(host, Key("a"), Key("b"), monkeypatch=monkeypatch)
    assert host.trips == ["facts"] and result.status is Status.OK


def test_a_batched_run_converges_real_files(tmp_path):
    """The real steps and the real batch, on this machine's sh in a temporary directory."""
    from runbooks.core.steps import files

    root = Path(tmp_path)
    (root / "fstab").write_text("proc /proc proc defaults 0 0\n/swapfile none swap sw 0 0\n")
    owner = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    steps = [File(str(root / "etc/a.conf"), "a\n", owner=owner, group=group),
             files.LineInFile(str(root / "fstab"), "#/swapfile none swap sw 0 0",
                              match="/swapfile", owner=owner, group=group),
             Directory(str(root / "etc/d"), owner=owner, group=group),
             File(str(root / "etc/d/b.conf"), "b\n", owner=owner, group=group)]
    shell = LocalShell()
    ctx = SimpleNamespace(host=SimpleNamespace(name="h"), session=shell, check=False,
                          options={}, log=lambda text: None)
    result = converge.Converger(ctx, Plan().add(*steps), lambda kind, text: None).run()
    assert result.status is Status.CHANGED and result.changed == 4, result
    # facts, one batch (a, fstab, d), then d/b.conf after its directory: three round trips
    assert shell.calls == 3
    assert (root / "fstab").read_text().endswith("#/swapfile none swap sw 0 0\n")
    shell.calls = 0
    again = converge.Converger(ctx, Plan().add(*steps), lambda kind, text: None).run()
    assert again.status is Status.OK and shell.calls == 1


@pytest.mark.parametrize("passphrase,parsed", [(None, True), ("secret", False)],
                         ids=["plain-key-parsed-once", "encrypted-key-left-to-paramiko"])
def test_the_plug_in_key_is_parsed_once_per_run(tmp_path, passphrase, parsed):
    import paramiko

    from runbooks.core.session import Connector

    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase or "", "-f",
                    str(path)], check=True)
    connector = Connector.__new__(Connector)  # no inventory: only the key matters here
    connector._lock = threading.Lock()
    connector._key_filename, connector._pkey = str(path), None
    first, second = connector._key_kwargs(), connector._key_kwargs()
    if parsed:
        assert isinstance(first["pkey"], paramiko.PKey) and second["pkey"] is first["pkey"]
    else:
        assert first == second == {"key_filename": str(path)}


class Broken(Step):
    name = "Ensure something impossible"

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        from runbooks.core.steps import StepFailed

        raise StepFailed("cannot plan")


class StillMissing(Key):
    """Its action succeeds but changes nothing: verification fails."""

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return [] if facts["k"].ok else [Change(f"create /k/{self.key}", (Action("touch x"),))]


def test_pending_changes_are_applied_before_a_step_that_cannot_plan(monkeypatch):
    host = FakeHost()
    result, _ = converge_on(host, Key("a"), Broken(), Key("c"), monkeypatch=monkeypatch)
    assert host.trips == ["facts", ["touch /k/a"]] and host.have == {"a"}
    assert [(s.name, s.status) for s in result.steps] == [
        ("Ensure a", Status.CHANGED), ("Ensure something impossible", Status.FAILED)]
    assert result.error == "Ensure something impossible: cannot plan"


def test_a_step_that_fails_verification_fails_the_host_and_stops_the_plan(monkeypatch):
    host = FakeHost()
    result, _ = converge_on(host, StillMissing("a"), Key("b"), Broken(), Key("d"),
                            monkeypatch=monkeypatch)
    # a and b in one batch: b applied and verified, a not converged; nothing after them ran
    assert host.trips == ["facts", ["touch x", "touch /k/b"]]
    assert [(s.name, s.status) for s in result.steps] == [
        ("Ensure a", Status.FAILED), ("Ensure b", Status.CHANGED)]
    assert result.status is Status.FAILED and "still not converged" in (result.error or "")


def test_connections_to_many_hosts_are_built_safely_from_many_threads(tmp_path):
    """Fabric connections built at once on a shared Config failed at random; the Connector
    builds them one at a time (nothing is opened here: building needs no host)."""
    from concurrent.futures import ThreadPoolExecutor

    from runbooks.core.inventory import parse_inventory
    from runbooks.core.session import Connector

    hosts = "\n".join(f"  b{i:03d}: {{address: 10.99.0.{i}, roles: [pi], board: raspberrypi}}"
                      for i in range(1, 101))
    inventory = parse_inventory(
        "site: many\ndefaults: {user: root, port: 22}\nnetwork:\n  vlan: {id: 100}\n"
        "  subnet: 192.168.10.0/25\n  gateway: 192.168.10.2\n"
        "  dhcp: {range: [192.168.10.26, 192.168.10.126], dns: [192.168.10.2]}\n"
        f"hosts:\n{hosts}\n", str(tmp_path / "many.yaml"))
    for _ in range(10):  # a fresh Config each time: its first reads are the racy ones
        connector = Connector(inventory)
        with ThreadPoolExecutor(max_workers=100) as pool:
            built = list(pool.map(connector._connection, inventory.hosts.values()))
        assert [c.host for c in built] == [h.address for h in inventory.hosts.values()]


def test_binary_stdin_is_never_batched() -> None:
    """A release file (bytes, as k3s's Artifact sends it) runs on its own, as before."""
    from runbooks.core.apply import batchable
    from runbooks.core.steps.base import Action

    assert batchable(Action("cat > /tmp/x", b"\x7fELF\n")) is False  # type: ignore[arg-type]
    assert batchable(Action("cat > /tmp/x", "text\n")) is True


@pytest.mark.parametrize("content", [
    "plain\n",
    "no final newline",
    "x = 'quoted' \"double\" $HOME `id` \\n %s %% \\\\\n\n\ttab\n",
    "",
    "é ünïcode ✓\n",
], ids=["plain", "no-final-newline", "shell-and-printf-specials", "empty", "unicode"])
def test_a_batched_file_write_carries_its_content_in_the_script(tmp_path, content):
    """In a batch the content travels in the script (parsed whole before anything runs), so
    the write starts neither `cat` nor `sha256sum` (two processes per file on every host)
    and the file gets exactly the content, even without a final newline (then batchable)."""
    target = tmp_path / "t.conf"
    target.write_text("old\n")
    [change] = File(str(target), content, mode="640").plan(
        {"file": FactResult(0, "644 root root\n@@greenroom-content\nold\n")})
    [action] = change.actions
    assert action.whole is not None and batchable(action)
    script = Batch([action]).script()
    assert "sha256sum" not in script and 'cat > "$tmp"' not in script
    assert "sha256sum" in action.command  # alone, on stdin that may end early: checked
    shell = LocalShell()
    applied = run_batch(shell, [action], {"t": file_command(str(target))})
    assert shell.calls == 1 and applied.rcs == [0]
    assert target.read_bytes() == content.encode()
    assert applied.facts is not None and parse_file(applied.facts["t"]).mode == "640"


def test_content_with_a_nul_byte_is_written_from_stdin_only(tmp_path):
    [change] = File(str(tmp_path / "n"), "a\0b\n").plan({"file": FactResult(1, "")})
    assert change.actions[0].whole is None and not batchable(change.actions[0])


def test_the_handler_marker_goes_before_the_batched_form_too():
    """A step that notifies a handler leaves its marker first (core.pending), in the form the
    batch sends too: without it a cut after the write would lose the handler."""
    step = File("/etc/x.conf", "new\n", notify=["restart x"])
    [change] = step.plan({"file": FactResult(1, "")})
    conv = converge.Converger.__new__(converge.Converger)
    conv.marked = set()
    [action] = conv._marked_first_actions([SimpleNamespace(step=step)],  # type: ignore[list-item]
                                          [(0, change.actions[0])])
    first = action.command.split("|| exit 97\n")[0]
    assert first and action.whole is not None and action.whole.startswith(first + "|| exit 97\n")
    assert "printf %s" in action.whole and "sha256sum" in action.command


def _write(path, content, **kw) -> Action:
    [change] = File(str(path), content, **kw).plan({"file": FactResult(1, "")})
    return change.actions[0]


def _programs(tmp_path, script: str) -> list[str]:
    """The programs a batch script starts (strace), on the local sh."""
    import shutil

    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "sh", "-s"],
                   input=script, text=True, capture_output=True, check=True)
    return [line.split('"')[1].rsplit("/", 1)[-1] for line in trace.read_text().splitlines()
            if "execve(" in line][1:]


def test_staged_writes_next_to_each_other_share_one_sync(tmp_path):
    """Writes next to each other leave their content in temporary files and the last puts
    them all in place after one `sync`; a command between them sees the earlier files in
    place (it ends the run of staged writes)."""
    a, b, c = (tmp_path / n for n in ("a.conf", "b.conf", "c.conf"))
    b.write_text("old b\n")
    actions = [_write(a, "A\n"), _write(b, "B\n"), Action(f"cat {a} {b} > {tmp_path}/seen"),
               _write(c, "C\n", mode="600")]
    assert all(x.staged for x in (actions[0], actions[1], actions[3]))
    programs = _programs(tmp_path, Batch(actions).script())
    assert programs.count("sync") == 2 and programs.count("mv") == 3
    assert (tmp_path / "seen").read_text() == "A\nB\n"
    assert (a.read_text(), b.read_text(), c.read_text()) == ("A\n", "B\n", "C\n")
    assert oct(c.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir() if ".greenroom." in p.name) == []


@pytest.mark.parametrize("failing", [1, 2], ids=["middle-of-the-run", "last-of-the-run"])
def test_a_failed_write_still_puts_the_staged_ones_before_it_in_place(tmp_path, failing):
    """As if each write had been sent on its own: those before the failure are in place,
    the failed one's target keeps its old content, the later ones never ran."""
    paths = [tmp_path / f"{n}.conf" for n in range(3)]
    for path in paths:
        path.write_text("old\n")
    actions = [_write(p, f"new {n}\n", validate="false {}" if n == failing else None)
               for n, p in enumerate(paths)]
    shell = LocalShell()
    applied = run_batch(shell, actions[: failing + 1] if failing == 2 else actions,
                        {"x": "echo never"})
    assert applied.rcs == [0] * failing + [3] and applied.facts is None
    assert [p.read_text() for p in paths] == [f"new {n}\n" for n in range(failing)] + \
        ["old\n"] * (3 - failing)
    assert [p.name for p in tmp_path.iterdir() if ".greenroom." in p.name] == []


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95], ids=["early", "middle", "before-the-brace"])
def test_a_script_of_staged_writes_cut_on_its_way_runs_nothing(tmp_path, cut):
    targets = [tmp_path / "one.conf", tmp_path / "two.conf"]
    for target in targets:
        target.write_text("old\n")
    script = Batch([_write(t, "new\n") for t in targets]).script()
    done = subprocess.run(["sh", "-s"], input=script[: int(len(script) * cut)],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert [t.read_text() for t in targets] == ["old\n", "old\n"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.conf", "two.conf"]
