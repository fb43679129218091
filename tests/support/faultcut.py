"""Cut a lab host's SSH session in the middle of a runbook's run, and judge what it left.

Used by the fault tests (tests/lab/test_faults*.py, a few seeded cut points) and the fault
campaign (bench/faults/run.py, 20 trials per runbook). The cut is real: the sshd processes
that serve greenroom's own connection to the host (the per-connection monitor and its
session child, found from the machine by the connection's TCP port in the guest's network
namespace) get SIGKILL while the n-th remote command greenroom sends that host is under way.
The listening sshd stays up, as it would on a board whose connection dropped.

While the run goes on, every atomic file write greenroom sends the host (the engine's
``write_command`` and k3s's ``upload_command``) is recorded with the file's hash before it
(read inside the guest without SSH) and the hash it is meant to get; after the trial each of
those files must hold one or the other, never anything else.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from runbooks.core import session as session_mod

DIGEST = re.compile(r'echo "([0-9a-f]{64})  \$tmp" \| sha256sum -c')
TARGET = re.compile(r'^mv -f "\$tmp" (.+)$', re.M)
# a batch's staged write (core.steps.files.staged_write) names itself in a comment
STAGED = re.compile(r"^# greenroom writes (.+) sha256 ([0-9a-f]{64})$", re.M)
PID = re.compile(r"pid=(\d+)")
ABSENT = "absent"


@dataclass
class Write:
    """One atomic write greenroom sent: the file, its hash before, the hash it should get."""

    path: str
    before: str
    wanted: str


@dataclass
class Cut:
    """What happened to the cut: the command it fell on and the processes it killed. `at`
    is a command number (1 = the first) or a regular expression: the first command whose
    text (its script included) matches it."""

    at: int | str
    delay: float
    command: str = ""
    killed: list[int] = field(default_factory=list)
    fired: bool = False


def guest_sha256(lab: Any, host: str, path: str) -> str:
    """sha256 of `path` inside the guest (no SSH), or "absent"."""
    done = lab.exec(host, f"sha256sum {shlex.quote(path)} 2>/dev/null", timeout=30)
    words = done.stdout.split()
    return words[0] if done.returncode == 0 and words else ABSENT


def sshd_pids(netns: str, client_port: int) -> list[int]:
    """Pids (in the machine's numbering) of the guest's sshd processes that hold the TCP
    connection whose client side is `client_port` on the machine."""
    done = subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", "ss", "-tnpH", "state", "established",
         f"( sport = :22 and dport = :{client_port} )"],
        capture_output=True, text=True, timeout=10, check=False)
    return sorted({int(p) for p in PID.findall(done.stdout)})


def kill(pids: Iterable[int]) -> list[int]:
    """SIGKILL each pid; the ones that existed."""
    killed = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


class Injector:
    """Counts the commands greenroom sends `host`; cuts its session at command `at` (1 =
    the first, or the first matching a regular expression) after `delay` seconds; records
    atomic writes. `at=0` never cuts (a counting run, to learn how many commands a
    converging run sends)."""

    def __init__(self, lab: Any, host: str, at: int | str = 0, delay: float = 0.0) -> None:
        self.lab = lab
        self.host = host
        self.netns = lab.plan.guest(host).netns
        self.cut = Cut(at, delay)
        self.count = 0
        self.writes: list[Write] = []
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []

    def before(self, session: Any, command: str) -> None:
        """Called before each command is sent (with its stdin: a batch's script travels
        there); session is greenroom's Session."""
        if session.host.name != self.host:
            return
        with self._lock:
            self.count += 1
            number = self.count
        # one command may carry several writes (consecutive steps applied in one go)
        pairs = [*zip(DIGEST.findall(command), TARGET.findall(command), strict=False),
                 *((wanted, target) for target, wanted in STAGED.findall(command))]
        for wanted, target in pairs:
            path = shlex.split(target)[0]
            self.writes.append(Write(path, guest_sha256(self.lab, self.host, path), wanted))
        at = self.cut.at
        due = (number == at) if isinstance(at, int) else (
            not self._timers and re.search(at, command) is not None)
        if due:
            sock = getattr(session.connection.transport, "sock", None)
            pids = sshd_pids(self.netns, sock.getsockname()[1]) if sock is not None else []
            match = re.search(at, command) if isinstance(at, str) else None
            self.cut.command = (match.group(0) if match else
                                command.strip().splitlines()[0] if command else "")[:120]

            def fire() -> None:
                self.cut.killed = kill(pids)
                self.cut.fired = bool(self.cut.killed)

            timer = threading.Timer(self.cut.delay, fire)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def settle(self) -> None:
        """Wait for a pending cut to fire (a run that ended before it still gets it)."""
        for timer in self._timers:
            timer.join()


@contextmanager
def injected(injector: Injector) -> Iterator[Injector]:
    """Route every remote command greenroom runs through `injector` for the duration.

    Connections are not kept for the duration (GREENROOM_SSH_KEEP=0): the cut kills the sshd
    serving this process's own connection, found by its client TCP port, and a kept
    connection lives in the keeper process instead (cuts of kept connections are
    tests/lab/test_keep.py's). Runs before and after the cut (prepare, recovery) keep theirs."""
    from runbooks.core.keep_paths import KEEP_ENV

    original: Callable[..., Any] = session_mod.Session.run
    saved_keep = os.environ.get(KEEP_ENV)
    os.environ[KEEP_ENV] = "0"

    def run(self: Any, command: str, stdin: Any = None, *args: Any, **kwargs: Any) -> Any:
        script = stdin if isinstance(stdin, str) else ""
        injector.before(self, f"{command}\n{script}" if script else command)
        return original(self, command, stdin, *args, **kwargs)

    session_mod.Session.run = run  # type: ignore[method-assign]
    try:
        yield injector
    finally:
        session_mod.Session.run = original  # type: ignore[method-assign]
        if saved_keep is None:
            os.environ.pop(KEEP_ENV, None)
        else:
            os.environ[KEEP_ENV] = saved_keep
        injector.settle()


def half_written(lab: Any, host: str, writes: Iterable[Write]) -> list[str]:
    """Files whose content is neither the old nor the new one (empty: all whole)."""
    bad = []
    seen: dict[str, set[str]] = {}
    for write in writes:
        seen.setdefault(write.path, set()).update({write.before, write.wanted})
    for path, allowed in seen.items():
        now = guest_sha256(lab, host, path)
        if now not in allowed:
            bad.append(f"{path}: sha256 {now[:12]} is neither the old nor the new content")
    return bad


def leftovers(lab: Any, host: str, writes: Iterable[Write]) -> list[str]:
    """Temporary files of greenroom's writes left beside their targets."""
    folders = sorted({w.path.rsplit("/", 1)[0] or "/" for w in writes})
    if not folders:
        return []
    quoted = " ".join(shlex.quote(f) for f in folders)
    out = lab.exec(host, f"ls -a {quoted} 2>/dev/null | grep '[.]greenroom[.]' || true").stdout
    return out.split()


def wait_ssh(lab: Any, host: str, timeout: float = 30.0) -> bool:
    """Wait until `host` answers SSH again (its listener survives a cut; a host that was
    rebooting when it was cut needs longer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with lab.connection(host) as conn:
                if conn.run("true", hide=True, warn=True).ok:
                    return True
        except Exception:  # noqa: BLE001 - not up yet, whatever the way it fails
            pass
        time.sleep(0.3)
    return False


def run_text(run: Callable[[io.StringIO], Any]) -> tuple[Any, str]:
    """Call `run(out)` with a fresh buffer; (its result, the text it printed)."""
    out = io.StringIO()
    result = run(out)
    return result, out.getvalue()
