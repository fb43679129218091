"""demo's connections opened while its modules load (runbooks/demo/early.py): every host's
open starts at once; whoever asks while it is under way gets that one open (a host that is off
is tried once, its failure raised to each asker); later asks are the connector's own."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from runbooks.core.session import HostUnreachable
from runbooks.demo.early import Early


class Connector:
    def __init__(self) -> None:
        self.opens: list[str] = []
        self.lock = threading.Lock()
        self.closed = False
        self.gate = threading.Event()  # the hosts answer once the test lets them

    def session(self, host):  # noqa: ANN001, ANN201
        with self.lock:
            self.opens.append(host.name)
        self.gate.wait(5)
        if host.name == "off":
            raise HostUnreachable(f"cannot connect to {host.name}")
        return f"session of {host.name}"

    def close_all(self) -> None:
        self.closed = True


ON, OFF = SimpleNamespace(name="on"), SimpleNamespace(name="off")


def test_every_open_starts_at_once_and_each_asker_waits_for_it():
    connector = Connector()
    started = time.monotonic()
    early = Early(connector, [ON, OFF], parallel=10)
    assert time.monotonic() - started < 0.05  # nothing waited for yet
    with ThreadPoolExecutor(4) as pool:
        asked = [pool.submit(early.session, host) for host in (ON, ON, OFF, OFF)]
        time.sleep(0.3)  # every asker is waiting by now
        connector.gate.set()
        assert asked[0].result() == asked[1].result() == "session of on"
        for future in asked[2:]:
            with pytest.raises(HostUnreachable):
                future.result()
    assert sorted(connector.opens) == ["off", "on"]  # one open each, however many asked
    assert early.session(ON) == "session of on"  # later: the connector's own
    assert sorted(connector.opens) == ["off", "on", "on"]


def test_close_all_waits_for_opens_never_asked_for_then_closes():
    connector = Connector()
    early = Early(connector, [ON, OFF], parallel=2)
    connector.gate.set()
    early.close_all()
    assert sorted(connector.opens) == ["off", "on"] and connector.closed
