"""The k3s join token is read once per run and shared by every host of it
(runbooks/k3s/plan.py: token_from, JoinToken): counted on a session double that answers
`base64 -w0 /var/lib/rancher/k3s/server/token` as the first server would."""

from __future__ import annotations

import base64
import threading
import time
from types import SimpleNamespace

import pytest

from runbooks.core import secrets
from runbooks.core.facts import FactResult
from runbooks.core.session import Connector as RealConnector
from runbooks.k3s import config as cfg
from runbooks.k3s import plan as k3s_plan
from runbooks.k3s.plan import JoinToken, token_from

TOKEN = "K10abc::server:s3cret-join-password"
READ = f"base64 -w0 {cfg.TOKEN}"


class FirstServer:
    """The first server's session: counts the token reads; `token` is "" until k3s wrote it."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.reads = 0
        self.lock = threading.Lock()

    def run(self, command: str) -> SimpleNamespace:
        assert command == READ, command
        with self.lock:
            self.reads += 1
        time.sleep(0.01)  # a round trip: the other hosts ask meanwhile
        out = base64.b64encode(self.token.encode()).decode() if self.token else ""
        return SimpleNamespace(ok=bool(self.token), stdout=out, rc=0 if self.token else 1)


class Connector:
    """One run's connector: every host's session (only the first server's is used here)."""

    def __init__(self, first: FirstServer) -> None:
        self.first = first
        self.run_values: dict[str, object] = {}  # as runbooks.core.session.Connector's
        self.run_values_lock = threading.Lock()

    def session(self, host: object) -> FirstServer:
        return self.first

    new_run = RealConnector.new_run  # the engine's own: one Connector, several runs


def ctx(connector: Connector, name: str, check: bool = False, **options: object):
    return SimpleNamespace(connector=connector, host=SimpleNamespace(name=name), check=check,
                           options=options, session=connector.first, log=lambda _m: None)


FIRST = SimpleNamespace(name="rp0")


@pytest.fixture(autouse=True)
def forget_secrets(monkeypatch):
    monkeypatch.setattr(secrets, "_secrets", set())


def agents_at_once(connector: Connector, check: bool = False) -> list[object]:
    """Three agents plan at once (each needs the token while it plans), as the runner's
    threads do."""
    found: list[object] = []
    threads = [threading.Thread(target=lambda n=n: found.append(
        token_from(ctx(connector, n, check), FIRST))) for n in ("rp1", "lp0", "rp2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def server_step(connector: Connector, check: bool = False) -> tuple[JoinToken, object]:
    """The first server's JoinToken in one pass: its facts (read in its batch, no round
    trip of its own, when asked), then its plan; returns the step and the token it shares."""
    step = JoinToken(ctx(connector, "rp0", check), {})
    asked = step.facts()
    answers = {}
    if asked:
        first = connector.first
        with first.lock:
            first.reads += 1  # the batch reads it
        answers = {"token": FactResult(0 if first.token else 1,
                                       base64.b64encode(first.token.encode()).decode())}
    step.plan(answers)
    return step, step.shared.get("token")


@pytest.mark.parametrize("check", [False, True], ids=["converge", "check"])
def test_one_pass_the_agents_read_the_token_once_and_the_server_takes_it(check):
    first = FirstServer()
    connector = Connector(first)
    assert agents_at_once(connector, check) == [TOKEN] * 3
    step, token = server_step(connector, check)
    assert first.reads == 1 and token == TOKEN
    assert step.facts() == {}  # the run read it: the server's batch does not again


def test_one_pass_the_servers_facts_read_first_are_the_agents_token():
    first = FirstServer()
    connector = Connector(first)
    _step, token = server_step(connector)
    assert token == TOKEN and first.reads == 1  # its batch
    assert agents_at_once(connector) == [TOKEN] * 3
    assert first.reads == 1


def test_each_run_reads_it_once_again():
    first = FirstServer()
    agents_at_once(Connector(first))
    agents_at_once(Connector(first))
    assert first.reads == 2


def test_a_check_before_k3s_started_does_not_hide_the_token_from_the_run_after_it():
    """demo.reset: its check finds no token (k3s not started yet), its converge phase starts
    k3s over the same Connector: that run must read the token, not take the check's None."""
    first = FirstServer(token="")
    connector = Connector(first)
    assert agents_at_once(connector, check=True) == [None] * 3
    first.token = TOKEN  # the converge phase's first server started k3s
    connector.new_run()
    assert agents_at_once(connector) == [TOKEN] * 3


def test_every_demo_phase_and_check_is_a_new_run_of_the_connector(monkeypatch):
    from runbooks.demo import check as demo_check
    from runbooks.demo import run as demo_run

    connector = Connector(FirstServer())
    connector.run_values["k3s join token"] = "what an earlier phase read"
    demo_run.run_phase("converge", SimpleNamespace(roles=("k3s-server",), name="k3s"), None,
                       [], connector, False, 1, None, None, {})
    assert connector.run_values == {}
    connector.run_values["k3s join token"] = "what the reset's phases read"
    monkeypatch.setattr(demo_check, "parts", lambda *a, **k: [])
    monkeypatch.setattr(demo_check, "converge_parts", lambda roles: [])
    no_hints = SimpleNamespace(save=lambda: None)
    monkeypatch.setattr(demo_check.Hints, "of_site", staticmethod(lambda site: no_hints))
    demo_check.check_all(SimpleNamespace(site="lab"), connector, [], lambda *_: None)
    assert connector.run_values == {}


def test_a_read_under_way_never_holds_up_the_first_servers_facts():
    """An agent waiting for the token (the server not up yet) holds the run's read: the
    first server's own facts must not wait for it (the token comes only once this host
    went on and started k3s)."""
    first = FirstServer()
    connector = Connector(first)
    read = k3s_plan._token_read(connector)
    with read.lock:  # a read under way
        step = JoinToken(ctx(connector, "rp0"), {})
        assert step.facts() == {"token": READ}
        fact = FactResult(0, base64.b64encode(TOKEN.encode()).decode())
        assert step.plan({"token": fact}) == [] and step.shared["token"] == TOKEN


def test_phased_the_first_servers_facts_are_the_one_read():
    first = FirstServer()
    connector = Connector(first)
    shared: dict[str, object] = {}
    step = JoinToken(ctx(connector, "rp0", shared=shared), shared)
    assert step.facts() == {"token": READ}  # read in the host's batch, no round trip of its own
    fact = FactResult(0, base64.b64encode(TOKEN.encode()).decode())
    assert step.plan({"token": fact}) == [] and shared["token"] == TOKEN
    # the other nodes take it from `shared`; asked anyway in that run, nobody reads again
    assert token_from(ctx(connector, "rp1"), FIRST) == TOKEN
    assert first.reads == 0


def test_check_mode_shares_no_token_yet_without_reading_again():
    first = FirstServer(token="")
    connector = Connector(first)
    assert agents_at_once(connector, check=True) == [None] * 3 and first.reads == 1
    step, token = server_step(connector, check=True)
    assert token is None and first.reads == 1 and step.facts() == {}


def test_a_real_run_that_found_no_token_lets_the_next_host_wait_on_its_own(monkeypatch):
    monkeypatch.setattr(k3s_plan, "TOKEN_WAIT", 0.0)
    first = FirstServer(token="")
    connector = Connector(first)
    assert token_from(ctx(connector, "rp1"), FIRST) is None
    first.token = TOKEN  # the server came up meanwhile
    assert token_from(ctx(connector, "lp0"), FIRST) == TOKEN
    assert token_from(ctx(connector, "rp2"), FIRST) == TOKEN
    assert first.reads == 2  # rp1 found nothing, lp0 found it, rp2 took it from lp0


def test_the_token_read_is_masked_at_once():
    first = FirstServer()
    token_from(ctx(Connector(first), "rp1"), FIRST)
    assert "s3cret-join-password" not in secrets.mask(f"joined with {TOKEN}")


def test_demo_checks_wrappers_of_the_connector_share_the_runs_read():
    """demo.check hands each host's plans a wrapper of the run's Connector (shared cluster
    reads, plans built ahead): the token read is the run's all the same."""
    from runbooks.demo.planning import Ahead
    from runbooks.demo.reads import SharedReads

    first = FirstServer()
    connector = Connector(first)
    reads = SharedReads(connector)
    wrappers = [Ahead(reads, None, None) for _host in range(3)]  # type: ignore[arg-type]
    assert k3s_plan._token_read(wrappers[0]) is k3s_plan._token_read(wrappers[2]) \
        is k3s_plan._token_read(connector)
