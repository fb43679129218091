"""The virtual lab as a pytest fixture, shared by every test under tests/lab/.

``lab`` (session scope) brings up ``hosts/lab.yaml`` with ``runbooks.lab.control.up`` and
takes it down at the end of the session, unless another pytest session (another process)
still uses it: each session registers its pid under ``<state dir>/sessions/``. It skips,
with the reason shown, when not root or not on Linux. It yields a :class:`LabHandle`:

- ``lab.inventory``: the loaded Inventory (runbooks.core.inventory)
- ``lab.access``: LabAccess(key_filename, known_hosts, user) for Fabric / the engine
- ``lab.state_dir``: Path of the lab's state dir
- ``lab.exec(host, cmd, timeout=120, stdin=None) -> subprocess.CompletedProcess[str]``: run
  ``cmd`` with /bin/sh inside the guest (no SSH; nsenter, guest capabilities), text mode,
  never raises on a non-zero exit; raises GuestError while the guest is down or between
  two boots, and subprocess.TimeoutExpired after ``timeout`` (a probe in a polling loop
  passes a short one, so the loop's own timeout bounds it). Works for clients too
  (``lab.exec("microvm", ...)``).
- ``lab.connection(host) -> fabric.Connection``: a real SSH connection with the lab key and
  the lab's known_hosts enforced (unknown keys rejected). Close it when done.
- ``lab.reset(host)``: put a host back to a fresh board (stop, wipe its overlay upper dir and
  its network namespace, start, wait for SSH); about a second.
- ``lab.upstream_log() -> list[str]``: client addresses the upstream HTTP server has seen,
  one per request, oldest first.
- ``lab.plan``: the lab topology (runbooks.lab.plan.LabPlan).
- ``lab.machine_ip_forward``: the machine's net.ipv4.ip_forward before the lab came up.

Runbook tests: call ``lab.reset(name)`` at the start of a test that needs a fresh board.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from runbooks.lab.schema import lab_of

REPO = Path(__file__).resolve().parents[2]
LAB_INVENTORY = REPO / "hosts" / "lab.yaml"


def lab_skip_reason() -> str | None:
    """Why lab tests cannot run here, or None."""
    if platform.system() != "Linux":
        return f"the virtual lab needs Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "the virtual lab needs root (namespaces, mounts, bridges); run pytest as root"
    return None


class LabHandle:
    """A running lab, for tests."""

    def __init__(self, inventory: Any, machine_ip_forward: str = ""):
        from runbooks.lab.access import lab_access
        from runbooks.lab.plan import make_plan
        from runbooks.lab.state import LabState

        self.inventory = inventory
        self.plan = make_plan(inventory)
        self.access = lab_access(inventory)
        self._state = LabState(self.plan.site)
        self.state_dir = self._state.dir
        self.machine_ip_forward = machine_ip_forward

    def exec(self, host: str, cmd: str, timeout: float | None = 120,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside ``host`` without SSH (check=False, text mode)."""
        from runbooks.lab.guest import exec_in

        return exec_in(self.plan.guest(host), cmd, timeout=timeout, stdin=stdin)

    def connection(self, host: str) -> Any:
        """A Fabric connection to ``host`` with the lab key; host keys checked strictly."""
        import paramiko
        from fabric import Config, Connection

        target = self.inventory.hosts[host]
        config = Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}})
        conn = Connection(target.address, user=self.access.user, port=target.port,
                          config=config, connect_timeout=10,
                          connect_kwargs={"key_filename": self.access.key_filename,
                                          "look_for_keys": False, "allow_agent": False})
        conn.client = paramiko.SSHClient()
        conn.client.load_host_keys(self.access.known_hosts)
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return conn

    def reset(self, host: str) -> None:
        """Put ``host`` back to fresh (new overlay upper, new network namespace)."""
        from runbooks.lab.control import reset

        # a DHCP client guest has no SSH to wait for
        reset(self.inventory, host, wait=host not in lab_of(self.inventory).clients)

    def upstream_log(self) -> list[str]:
        """Client addresses of every request the upstream HTTP server received."""
        path = self.state_dir / "upstream.log"
        if not path.exists():
            return []
        return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session", autouse=True)
def lab_plugged_in() -> Iterator[None]:
    """Plug the lab into the engine as tasks.py does (and unplug it afterwards), so runbooks
    run by the tests reach the lab's hosts with its key."""
    from runbooks.core import access
    from runbooks.lab.access import provider

    access.plug_in(provider)
    yield
    access.unplug(provider)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    """Bring up hosts/lab.yaml for the session and take it down afterwards."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from runbooks.core.inventory import load_inventory
    from runbooks.lab import control

    inventory = load_inventory(str(LAB_INVENTORY))
    # runbooks that merge a kubeconfig (k3s) write the lab's, never this machine's own
    os.environ.setdefault("KUBECONFIG", str(_sessions_dir(inventory).parent / "kubeconfig"))
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    sessions = _sessions_dir(inventory)
    mine = sessions / str(os.getpid())
    mine.touch()
    try:
        control.up(inventory, log=lambda _msg: None)
    except control.LabBusy:
        mine.unlink(missing_ok=True)
        raise
    except BaseException:
        _leave(inventory, mine)
        raise
    try:
        yield LabHandle(inventory, machine_ip_forward=forward)
    finally:
        _leave(inventory, mine)


@contextmanager
def lab_up(path: Path) -> Iterator[LabHandle]:
    """Another site's lab (hosts/lab-xen.yaml, hosts/lab-microk8s.yaml ...) up for one test
    module, taken down after it: `with lab_up(INVENTORY) as handle: yield handle` in a
    module-scoped fixture. Skips, with the reason, where the lab cannot run."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from runbooks.core.inventory import load_inventory
    from runbooks.lab import control

    inventory = load_inventory(str(path))
    control.up(inventory, log=lambda _msg: None)
    try:
        yield LabHandle(inventory)
    finally:
        control.down(inventory, log=lambda _msg: None)


def _sessions_dir(inventory: Any) -> Path:
    """Where each pytest session using the lab leaves a file named after its pid."""
    from runbooks.lab.state import LabState

    folder = LabState(inventory.site).dir / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _leave(inventory: Any, mine: Path) -> None:
    """Drop this session; take the lab down unless another live session still uses it."""
    from runbooks.lab import control

    mine.unlink(missing_ok=True)
    others = [p for p in mine.parent.iterdir() if p.name.isdigit()
              and Path(f"/proc/{p.name}").exists()]
    if not others:
        control.down(inventory, log=lambda _msg: None)


@pytest.fixture(scope="module")
def fresh_lab(lab: LabHandle) -> LabHandle:
    """The session lab with every guest put back to fresh once, for a test module that
    looks at the lab as `lab.up` made it (runbook tests before it may have changed it)."""
    for name in [*lab.inventory.hosts, *lab_of(lab.inventory).clients]:
        lab.reset(name)
    return lab
