"""demo.check's plans built ahead (runbooks/demo/planning.py): a runbook whose plan reads the
host first (`ctx.gather`) costs the host ONE round trip once the site's hints are known, and a
hint never decides anything: when the host answers otherwise, the plan is built again from
what it answered and its step facts read then (a second round trip), and the verdict is that
plan's.

The host is a temporary directory; the session runs each batch script with the local sh in it
(only `cat` and `test -e` of files in that directory) and counts the round trips."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from types import SimpleNamespace

import pytest

from runbooks.core.facts import FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Action, Change, Plan, Step
from runbooks.demo import check
from runbooks.demo.planning import Hints, Planner, Unknown, same_answers
from runbooks.demo.verdict import HostReport


class Marker(Step):
    """Wants the file `ok-<release>`: which file depends on the planning read."""

    def __init__(self, path: str) -> None:
        self.path, self.name, self.notify = path, f"Ensure {path}", []

    def facts(self) -> Mapping[str, str]:
        return {"marker": f"test -e {self.path}"}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        return [] if facts["marker"].ok else [
            Change(f"create {self.path}", (Action(f"touch {self.path}"),))]


def board_runbook(root) -> Runbook:  # noqa: ANN001
    def plan(ctx) -> Plan:  # noqa: ANN001
        release = ctx.gather({"release": f"cat {root}/release"})["release"].out.strip()
        return Plan().add(Marker(f"{root}/ok-{release}"))

    return Runbook("board", ("pi",), plan)


def plain_runbook(root) -> Runbook:  # noqa: ANN001
    return Runbook("plain", ("pi",), lambda ctx: Plan().add(Marker(f"{root}/ok-plain")))


class Session:
    """Runs every command with sh in the host's directory; one entry per round trip for
    the plans (`trips`), every batch with the probes' commands (demo's disk check here:
    in the plans' batch when they are planned by the time the connection is open, else
    read while they are built, in a batch of its own) in `probes`; every batch in
    `batches`."""

    def __init__(self, root) -> None:  # noqa: ANN001
        self.root, self.trips, self.probes, self.batches = root, [], [], []

    def run(self, command: str, stdin: str | None = None) -> SimpleNamespace:
        self.batches.append(command)
        if check.DISK in command:
            self.probes.append(command)
        if check.DISK not in command or command.count("printf") > 1:  # not the probes' alone
            self.trips.append(command)
        done = subprocess.run(["sh", "-c", command], cwd=self.root, capture_output=True,
                              text=True, check=False)
        return SimpleNamespace(ok=done.returncode == 0, rc=done.returncode,
                               stdout=done.stdout, stderr=done.stderr)


class Connector:
    def __init__(self, session: Session) -> None:
        self._session = session

    def session(self, host) -> Session:  # noqa: ANN001
        return self._session


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A host (rp0) with release bookworm and its marker, and demo's own probes out of the
    way (they are read in the same batch; their judging is tested elsewhere)."""
    root = tmp_path / "rp0"
    root.mkdir()
    (root / "release").write_text("bookworm\n")
    (root / "ok-bookworm").write_text("")
    (root / "ok-plain").write_text("")
    monkeypatch.setattr(check.clock, "probe_facts", lambda inventory: {})
    monkeypatch.setattr(check, "_probe", lambda *args: None)
    host = SimpleNamespace(name="rp0", roles=("pi",))
    inventory = SimpleNamespace(hosts={"rp0": host}, sections={}, site="unit")
    return SimpleNamespace(root=root, host=host, inventory=inventory,
                           hints=Hints(tmp_path / "state" / "unit.plan-reads.json"))


def checked(board, *runbooks) -> tuple[HostReport, Session]:  # noqa: ANN001
    session = Session(board.root)
    report = check.check_host(board.host, board.inventory, Connector(session),
                              lambda _text: None, [], [("drift", rb) for rb in runbooks],
                              None, board.hints)
    board.hints.save()  # as check_all does once every host is read
    return report, session


def verdict(report: HostReport, runbook: str):  # noqa: ANN201
    return next(v for v in report.verdicts if v.source == runbook)


def test_a_plan_that_reads_first_costs_one_round_trip_once_the_hints_are_known(board):
    first, session = checked(board, board_runbook(board.root))
    assert len(session.trips) == 2  # no hints yet: the batch, then the plan's step facts
    assert verdict(first, "board").ok
    board.hints = Hints(board.hints.path)  # the next process reads them back
    second, session = checked(board, board_runbook(board.root), plain_runbook(board.root))
    assert len(session.trips) == 1, session.trips
    assert verdict(second, "board").ok and verdict(second, "plain").ok
    assert "plans again" not in second.timings


def test_a_host_that_answers_otherwise_is_judged_from_its_answer_not_the_hint(board):
    checked(board, board_runbook(board.root))  # hints: bookworm
    (board.root / "release").write_text("trixie\n")  # the board was upgraded since
    report, session = checked(board, board_runbook(board.root))
    assert len(session.trips) == 2  # the plan built again, its new step fact read
    found = verdict(report, "board")
    assert not found.ok and f"create {board.root}/ok-trixie" in found.detail
    (board.root / "ok-trixie").write_text("")
    report, session = checked(board, board_runbook(board.root))
    assert verdict(report, "board").ok and len(session.trips) == 1  # hints: trixie now


def test_a_plan_without_planning_reads_is_one_round_trip_without_hints(board):
    report, session = checked(board, plain_runbook(board.root))
    assert len(session.trips) == 1 and verdict(report, "plain").ok
    # planned before the connection was open: the probes' commands in the plans' batch
    assert session.batches == session.probes == session.trips, session.batches


@pytest.mark.parametrize(("wait", "built", "batches"), [(0.05, 0.5, 2), (3.0, 0.1, 1)],
                         ids=["built-too-late-probes-first", "built-within-the-wait-one-batch"])
def test_the_probes_go_ahead_of_the_plans_only_when_these_are_not_built_in_time(
        board, monkeypatch, wait, built, batches):
    """A plan still being built when the connection opens (here: it waits for the test):
    built within PLANS_WAIT, the probes join its batch; else the probes' batch goes out
    alone, and the plans' batch follows."""
    import threading

    monkeypatch.setattr(check, "PLANS_WAIT", wait)

    release = threading.Event()
    session = Session(board.root)
    inner = plain_runbook(board.root)

    def plan(ctx):  # noqa: ANN001, ANN202
        release.wait(5)
        return inner.plan(ctx)

    class Opening(Connector):
        def session(self, host):  # noqa: ANN001, ANN202
            opened = super().session(host)
            threading.Timer(built, release.set).start()  # planned after the open
            return opened

    report = check.check_host(board.host, board.inventory, Opening(session),
                              lambda _t: None, [], [("drift", Runbook("plain", ("pi",), plan))],
                              None, board.hints)
    assert verdict(report, "plain").ok
    assert len(session.batches) == batches and session.probes == session.batches[:1], (
        session.batches)


def test_ahead_a_read_without_a_hint_stops_the_plan_and_is_recorded():
    ctx = Planner(SimpleNamespace(name="h"), None, None, None, True,
                  known={"cat /a": FactResult(0, "a")})
    with pytest.raises(Unknown):
        ctx.gather({"a": "cat /a", "b": "cat /b"})
    assert ctx.asked == {"cat /a": FactResult(0, "a"), "cat /b": None}
    assert not same_answers(ctx.asked, {"cat /a": FactResult(0, "a"),
                                        "cat /b": FactResult(0, "b")})


@pytest.mark.parametrize("hinted, now, same", [
    pytest.param(FactResult(0, "x"), FactResult(0, "x"), True, id="same"),
    pytest.param(FactResult(0, "x"), FactResult(0, "y"), False, id="other-output"),
    pytest.param(FactResult(0, "x"), FactResult(1, "x"), False, id="other-status"),
    pytest.param(FactResult(0, "x"), None, False, id="not-read"),
])
def test_same_answers(hinted, now, same):
    answers = {} if now is None else {"c": now}
    assert same_answers({"c": hinted}, answers) is same


def test_hints_that_cannot_be_read_are_no_hints(tmp_path):
    path = tmp_path / "site.plan-reads.json"
    for text in ("not json", '{"version": 99, "hosts": {"h": {"c": [0, "x"]}}}',
                 '{"version": 1, "hosts": {"h": {"c": "x"}}}'):
        path.write_text(text)
        assert Hints(path).of("h") == {}, text
    path.write_text('{"version": 1, "hosts": {"h": {"c": [0, "x"]}}}')
    assert Hints(path).of("h") == {"c": FactResult(0, "x")}


class Server:
    """The cluster's first server: answers kubectl listings of its objects (JSON)."""

    def __init__(self, service: str) -> None:
        self.service, self.ran = service, []

    def run(self, command: str, stdin: str | None = None) -> SimpleNamespace:
        self.ran.append(command)
        items = [{"kind": "Service", "metadata": {"name": self.service}},
                 {"kind": "Deployment", "metadata": {"name": "coredns"}}]
        if "deployments" not in command:
            items = items[:1]
        return SimpleNamespace(ok=True, rc=0, stdout=json.dumps({"items": items}), stderr="")


SERVICES = "k3s kubectl get services -A -o json"
CLUSTER = "k3s kubectl get nodes,namespaces,deployments,daemonsets,endpoints,services -A -o json"


def speaker_runbook(root, server) -> Runbook:  # noqa: ANN001
    """Like the speaker double: its plan reads the cluster's Services on the server, then
    wants a file named after the one it found."""
    def plan(ctx) -> Plan:  # noqa: ANN001
        found = json.loads(ctx.connector.session(server).run(SERVICES).stdout)
        names = [i["metadata"]["name"] for i in found["items"]]
        return Plan().add(Marker(f"{root}/ok-{'-'.join(names)}"))

    return Runbook("speaker", ("pi",), plan)


def test_a_plans_cluster_read_is_answered_ahead_and_read_beside_the_batch(board):
    from runbooks.demo.reads import SharedReads

    rp0 = SimpleNamespace(name="rp0", roles=("k3s-server",))
    rp1 = SimpleNamespace(name="rp1", roles=("pi",))
    board.inventory.hosts.update({"rp0": rp0, "rp1": rp1})
    (board.root / "ok-web").write_text("")
    server = Server("web")

    def run_check() -> tuple[HostReport, Session]:
        session = Session(board.root)
        connector = SimpleNamespace(session=lambda h: server if h.name == "rp0" else session)
        report = check.check_host(rp1, board.inventory, connector, lambda _t: None, [],
                                  [("drift", speaker_runbook(board.root, rp0))],
                                  SharedReads(connector), board.hints)
        board.hints.save()
        return report, session

    # the Services are cut from the cluster read demo's probes make on the server anyway
    report, session = run_check()  # no hints: read while planning, as before
    assert verdict(report, "speaker").ok and server.ran == [CLUSTER]
    report, session = run_check()  # hinted: the plan does not wait; still read for real
    assert verdict(report, "speaker").ok and server.ran == [CLUSTER] * 2
    assert len(session.trips) == 1
    server.service = "db"  # the cluster changed: the plan is the real answer's
    report, session = run_check()
    found = verdict(report, "speaker")
    assert not found.ok and f"create {board.root}/ok-db" in found.detail
    assert server.ran == [CLUSTER] * 3 and len(session.trips) == 2


def test_a_hint_keeps_no_secret_values():
    from runbooks.demo.planning import redact

    secret = {"kind": "Secret", "data": {"password": "c2VjcmV0"},
              "stringData": {"password": "secret"},
              "metadata": {"name": "bgp", "namespace": "metallb-system", "annotations": {
                  "kubectl.kubernetes.io/last-applied-configuration": "... secret ..."}}}
    pool = {"kind": "IPAddressPool", "spec": {"addresses": ["192.168.20.0/28"]}}
    listing = json.dumps({"kind": "List", "items": [secret, pool]})
    kept = redact("k3s kubectl get ipaddresspools,secrets -n metallb-system -o json",
                  FactResult(0, listing))
    assert "secret" not in kept.out.replace('"Secret"', "").replace("metallb-system", "")
    assert json.loads(kept.out)["items"] == [
        {"kind": "Secret", "metadata": {"name": "bgp", "namespace": "metallb-system"}}, pool]
    plain = FactResult(0, '{"items": []}')
    assert redact("k3s kubectl get services -A -o json", plain) is plain


class SlowHost:
    """A connector whose host's connection opens only once the plan has been built (or
    after `wait` seconds): `planned_first` tells which came first."""

    def __init__(self, session: Session, wait: float = 2.0) -> None:
        import threading

        self._session, self.wait = session, wait
        self.planned = threading.Event()
        self.opens: list[bool] = []  # per open: was the plan built before it returned?

    def session(self, host):  # noqa: ANN001, ANN201
        self.planned.wait(self.wait)
        self.opens.append(self.planned.is_set())
        return self._session


def counting_runbook(root, planned) -> Runbook:  # noqa: ANN001
    """board_runbook, telling the test when its plan is built."""
    inner = board_runbook(root)

    def plan(ctx) -> Plan:  # noqa: ANN001
        built = inner.plan(ctx)
        planned.set()
        return built

    return Runbook("board", ("pi",), plan)


@pytest.mark.parametrize("shared", [False, True], ids=["alone", "with-shared-reads"])
def test_a_plan_built_ahead_is_built_while_the_hosts_connection_opens(board, shared):
    from runbooks.demo.reads import SharedReads

    checked(board, board_runbook(board.root))  # the hints: bookworm
    session = Session(board.root)
    connector = SlowHost(session)
    report = check.check_host(board.host, board.inventory, connector, lambda _t: None, [],
                              [("drift", counting_runbook(board.root, connector.planned))],
                              SharedReads(connector) if shared else None, board.hints)
    assert connector.opens and all(connector.opens), connector.opens  # planned, then open
    assert verdict(report, "board").ok and len(session.trips) == 1  # one round trip still


def test_a_host_that_is_off_is_reported_once_however_its_plans_ask(board):
    from runbooks.core.session import HostUnreachable

    checked(board, board_runbook(board.root), plain_runbook(board.root))
    opens = []

    def off(host):  # noqa: ANN001, ANN202
        opens.append(host.name)
        raise HostUnreachable("cannot connect to rp0: no route")

    report = check.check_host(board.host, board.inventory, SimpleNamespace(session=off),
                              lambda _t: None, [],
                              [("drift", board_runbook(board.root)),
                               ("drift", plain_runbook(board.root))], None, board.hints)
    assert not report.reachable and opens == ["rp0"]
    assert [v.name for v in report.verdicts] == ["reachable"]


def test_turns_plan_the_first_hosts_parts_first_whoever_queues_first():
    import threading
    import time

    from runbooks.demo.planning import Turns

    turns = Turns(["dell", "rp0"], workers=1)
    done: list[str] = []
    waits = {}

    def queue(host: str, parts: list[str]) -> None:
        waits[host] = turns.queue(host, done.append, parts)

    late = threading.Thread(target=queue, args=("rp0", ["rp0 k3s", "rp0 pi-prep"]))
    late.start()  # rp0's thread comes first ...
    time.sleep(0.1)
    assert done == []  # ... and waits for dell's turn
    queue("dell", ["dell gateway", "dell registry"])
    late.join(5)
    for host in ("dell", "rp0"):
        assert waits[host]() >= 0
    assert done == ["dell gateway", "dell registry", "rp0 k3s", "rp0 pi-prep"]
    turns.close()


def test_a_host_that_never_queues_holds_the_others_up_only_so_long(monkeypatch):
    from runbooks.demo.planning import Turns

    monkeypatch.setattr(Turns, "WAIT", 0.05)
    turns = Turns(["off", "rp0"], workers=2)
    done: list[str] = []
    turns.queue("rp0", done.append, ["rp0 k3s"])()
    assert done == ["rp0 k3s"]
    turns.close()


def test_the_hosts_with_the_most_parts_are_planned_first():
    hosts = [SimpleNamespace(name=n, roles=r) for n, r in (
        ("laptop", ("client",)), ("rp1", ("pi", "k3s-agent")), ("dell", ("gateway",)),
        ("rp0", ("pi", "k3s-server")))]
    runbooks = [("drift", SimpleNamespace(roles=roles)) for roles in (
        ("gateway",), ("gateway",), ("gateway",), ("pi",), ("pi",), ("k3s-server",),
        ("client",))]
    assert [h.name for h in check.plan_order(hosts, runbooks)] == [
        "dell", "rp0", "rp1", "laptop"]


def test_the_probes_commands_are_ready_before_the_connection_is(board):
    import threading

    asked = threading.Event()
    probe = SimpleNamespace(roles=("pi",), evaluate=lambda *a: [],
                            facts=lambda host, inv: asked.set() or {"p.uptime": "cat /proc/uptime"})
    session = Session(board.root)
    opened = []

    def slow(host):  # noqa: ANN001, ANN202
        asked.wait(2)
        opened.append(asked.is_set())
        return session

    check.check_host(board.host, board.inventory, SimpleNamespace(session=slow),
                     lambda _t: None, [("p", probe)], [("drift", plain_runbook(board.root))],
                     None, board.hints)
    assert opened == [True]


@pytest.mark.parametrize(("state", "ok"), [("good", True), ("bad", False)],
                         ids=["good-state-go", "bad-state-no-go"])
def test_a_probe_read_in_the_plans_batch_is_judged_from_that_read(board, monkeypatch,
                                                                  state, ok):
    """The probes' commands merged into the plans' batch (one set of lanes): a probe whose
    fact shows a bad state says so (NO-GO), a command both ask runs once."""
    from runbooks.core.readonly import Check

    monkeypatch.setattr(check, "_probe", lambda host, inventory, mine, facts, when, report:
                        check._judge_probes(host, inventory, mine, facts, report))
    (board.root / "flag").write_text(state + "\n")
    same = f"test -e {board.root}/ok-plain"  # the plan's Marker reads it too
    probe = SimpleNamespace(
        roles=("pi",), facts=lambda host, inv: {"p.flag": "cat flag", "p.plain": same},
        evaluate=lambda host, inv, found: [Check("flag", found["p.flag"].out == "good\n",
                                                 found["p.flag"].out.strip())])
    session = Session(board.root)
    report = check.check_host(board.host, board.inventory, Connector(session), lambda _t: None,
                              [("p", probe)], [("drift", plain_runbook(board.root))], None,
                              board.hints)
    assert len(session.batches) == 1, session.batches  # one round trip, one lane
    assert session.batches[0].count(same) == 1  # asked by both: run once
    flag = verdict(report, "p")
    assert flag.ok is ok and flag.detail == state
    assert verdict(report, "plain").ok
