"""Bring a lab up, take it down, reset one host, report status.

``up`` is idempotent and recovers from a crash: guests that still run are kept, anything
stale (namespaces, mounts, pids of a killed run) is cleaned and started again. ``down``
works from the inventory alone, even without a state file.
"""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runbooks.lab import guest as guests
from runbooks.lab import network
from runbooks.lab.aptsources import allowed_hosts, machine_sources
from runbooks.lab.doubles.k3s import install_module as install_k3s_module
from runbooks.lab.plan import GuestPlan, LabPlan, make_plan
from runbooks.lab.rootfs import cache_root, ensure_rootfs
from runbooks.lab.seed import MARKER, seed_guest, write_firmware_dir
from runbooks.lab.state import LabState

REPO_ROOT = Path(__file__).resolve().parents[2]
SSH_TIMEOUT = 60.0


class LabError(RuntimeError):
    """The lab cannot be built or used; the message says what to do."""


class LabBusy(LabError):
    """Another inventory's lab of the same site is running."""


@contextmanager
def locked(state: LabState) -> Iterator[None]:
    """Serialise up/down/reset of one lab across processes."""
    state.dir.mkdir(parents=True, exist_ok=True)
    with open(state.dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def check_platform(plan: LabPlan | None = None) -> None:
    """Linux, root and the tools the lab needs; raise LabError naming what is missing."""
    if platform.system() != "Linux":
        raise LabError(f"the virtual lab needs Linux (network namespaces, overlayfs); this is "
                       f"{platform.system()}")
    if os.geteuid() != 0:
        raise LabError("the virtual lab needs root (namespaces, mounts, bridges): run it as "
                       "root, e.g. `sudo inv lab.up`")
    tools = ["ip", "unshare", "nsenter", "setsid", "mount", "ssh-keygen", "pivot_root"]
    if plan is None or any(g.kind == "systemd" for g in plan.guests):
        tools.append("systemd-nspawn")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise LabError(f"missing tools: {', '.join(missing)}; install them with apt-get "
                       "(iproute2, util-linux, systemd-container, openssh-client)")


def _owned(pid: int | None, token: str) -> bool:
    """True when ``pid`` is alive and its command line mentions ``token``."""
    if not pid or not guests.pid_alive(pid):
        return False
    try:
        return token in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _start_daemon(args: list[str], pidfile: Path, logfile: Path) -> int:
    """Start a detached helper process (own session) and return its pid."""
    pidfile.unlink(missing_ok=True)
    script = f'echo $$ > "{pidfile}"; exec "$@"'
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    with open(logfile, "ab") as log:
        subprocess.run(["setsid", "-f", "/bin/sh", "-c", script, "sh", *args], env=env,
                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                       check=True)
    for _ in range(500):
        try:
            return int(pidfile.read_text())
        except (OSError, ValueError):
            time.sleep(0.01)
    raise LabError(f"could not start {args[0]}; see {logfile}")


def ssh_banner(address: str, timeout: float = 1.0) -> str | None:
    """The SSH banner of ``address``:22, or None (one TCP connect, lab address only)."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = sock.recv(256).decode(errors="replace")
    except OSError:
        return None
    return data.strip() if data.startswith("SSH-") else None


def wait_ssh(plan: LabPlan, names: list[str] | None = None, timeout: float = SSH_TIMEOUT,
             state: LabState | None = None) -> None:
    """Wait until every (named) SSH guest answers with a banner; raise LabError otherwise."""
    pending = [g for g in plan.guests if g.kind != "client" and g.mgmt_address is not None
               and (names is None or g.name in names)]
    deadline = time.monotonic() + timeout
    while pending:
        pending = [g for g in pending if g.mgmt_address is not None
                   and ssh_banner(str(g.mgmt_address.ip), 0.5) is None]
        if not pending:
            return
        if time.monotonic() > deadline:
            hints = ", ".join(f"{g.name} (console: {state.host_dir(g.name) / 'console.log'})"
                              if state else g.name for g in pending)
            raise LabError(f"SSH did not answer within {timeout:.0f}s on: {hints}"
                           + (_inotify_hint(state, pending) if state else ""))
        time.sleep(0.05)


def _inotify_hint(state: LabState, pending: list[GuestPlan]) -> str:
    """Explain the machine-wide inotify limit when a guest's console shows it."""
    for guest in pending:
        try:
            text = (state.host_dir(guest.name) / "console.log").read_text(errors="replace")
        except OSError:
            continue
        if "inotify" in text and "Too many open files" in text:
            return ("\nguests ran out of inotify instances: all systemd guests on this machine "
                    "share root's fs.inotify.max_user_instances "
                    f"({Path('/proc/sys/fs/inotify/max_user_instances').read_text().strip()}); "
                    "stop other labs (`inv lab.down -i ...`) or use kind: chroot for some hosts")
    return ""


def _guest_running(guest: GuestPlan, entry: dict[str, Any], hdir: Path) -> bool:
    return (guests.init_pid(guest) is not None and _owned(entry.get("supervisor"), guest.netns)
            and guests.is_mounted(hdir / "root"))


def _start_one(plan: LabPlan, guest: GuestPlan, state: LabState, lower: Path,
               pubkey: str) -> int:
    """(Re)create a guest's network and overlay, seed it if fresh, start it."""
    hdir = state.host_dir(guest.name)
    network.wire_guest(plan, guest)
    root = guests.mount_overlay(lower, hdir)
    if not (root / MARKER).exists():
        seed_guest(root, plan, guest, pubkey, state.host_key(guest.name))
    install_k3s_module(root)  # every start: the guest runs this checkout's double
    firmware = None
    if guest.model:
        firmware = hdir / "firmware"
        write_firmware_dir(firmware, guest.model)
    (hdir / "console.log").write_bytes(b"")
    supervisor = guests.start_guest(guest, root, hdir, firmware)
    guests.wait_entered(guest, supervisor, hdir)
    return supervisor


def _stop_one(guest: GuestPlan, entry: dict[str, Any]) -> None:
    supervisor = entry.get("supervisor")
    guests.stop_guest(guest, supervisor if _owned(supervisor, guest.netns) else None)


def up(inventory: Any, wait: bool = True, log=print) -> dict[str, Any]:  # noqa: ANN001
    """Build (or repair) the lab of ``inventory``; return the state dict."""
    plan = make_plan(inventory)
    check_platform(plan)
    state = LabState(plan.site)
    with locked(state):
        data = _up(plan, state, wait, log)
    from runbooks.lab.release import forget_stale_pins

    forget_stale_pins(inventory, log)
    return data


def _up(plan: LabPlan, state: LabState, wait: bool, log) -> dict[str, Any]:  # noqa: ANN001
    data = state.load()
    if data.get("inventory") and data["inventory"] != plan.inventory_path and \
            network.link_exists(plan.bridge):
        raise LabBusy(f"a lab for site {plan.site!r} from {data['inventory']} is running; "
                       "take it down first (`inv lab.down -i ...`)")
    started = time.monotonic()
    lower = ensure_rootfs()
    network.ensure_fabric(plan)
    pubkey = state.ensure_keys(plan)
    wanted = {g.netns for g in plan.guests}
    for name in network.lab_netns_names(plan):  # hosts removed from the inventory
        if name not in wanted and name not in (plan.switch_ns, plan.upstream_ns):
            network.netns_delete(name)
    old = data.get("guests", {})
    data.update(status="starting", site=plan.site, inventory=plan.inventory_path,
                bridge=plan.bridge, state_dir=str(state.dir), key_filename=str(state.key),
                known_hosts=str(state.known_hosts), user="root", lower=str(lower))
    data["guests"] = {}
    state.save(data)
    fresh: list[str] = []

    def bring(guest: GuestPlan) -> tuple[str, dict[str, Any]]:
        entry = dict(old.get(guest.name, {}))
        if _guest_running(guest, entry, state.host_dir(guest.name)):
            install_k3s_module(state.host_dir(guest.name) / "root")
            return guest.name, entry
        _stop_one(guest, entry)
        pid = _start_one(plan, guest, state, lower, pubkey)
        fresh.append(guest.name)
        return guest.name, {"supervisor": pid, "kind": guest.kind, "netns": guest.netns,
                            "address": str(guest.mgmt_address.ip) if guest.mgmt_address
                            else None}

    with ThreadPoolExecutor(max_workers=8) as pool:
        data["guests"] = dict(pool.map(bring, plan.guests))
    _ensure_services(plan, state, data)
    state.save(data)
    if wait:
        wait_ssh(plan, state=state)
    data["status"] = "up"
    state.save(data)
    log(f"lab {plan.site}: {len(plan.guests)} guests up ({len(fresh)} started) in "
        f"{time.monotonic() - started:.1f}s; bridge {plan.bridge} {plan.bridge_address}")
    return data


def _kill_stray_helpers(state: LabState, keep: set[int]) -> None:
    """SIGKILL this lab's apt proxy / upstream server processes that the state no longer
    knows (a lab.up killed between starting them and saving their pids leaves them)."""
    token = str(state.dir)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in keep:
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args]
        if any(w.startswith("runbooks.lab.") for w in words) and \
                any(w == token or w.startswith(token + "/") for w in words):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                continue


def _ensure_services(plan: LabPlan, state: LabState, data: dict[str, Any]) -> None:
    """Start the apt proxy and the upstream HTTP server unless they already run."""
    token = str(state.dir)
    keep = {int(data[key]) for key in ("proxy_pid", "upstream_pid", "release_pid")
            if _owned(data.get(key), token)}
    _kill_stray_helpers(state, keep)
    if not _owned(data.get("proxy_pid"), token):
        allow = allowed_hosts(machine_sources())
        args = [sys.executable, "-m", "runbooks.lab.aptproxy", "--listen",
                f"{plan.bridge_address.ip}:{plan.proxy_port}", "--tag", token,
                "--cache", str(cache_root() / "apt")]
        for host in allow:
            args += ["--allow", host]
        data["proxy_pid"] = _start_daemon(args, state.dir / "aptproxy.pid",
                                          state.dir / "aptproxy.log")
    if not _owned(data.get("upstream_pid"), token):
        state.upstream_log.touch()
        args = ["nsenter", f"--net=/run/netns/{plan.upstream_ns}", sys.executable, "-m",
                "runbooks.lab.upstream", "--port", "80", "--log", str(state.upstream_log)]
        data["upstream_pid"] = _start_daemon(args, state.dir / "upstream.pid",
                                             state.dir / "upstream.err")
    if not _owned(data.get("release_pid"), token):
        from runbooks.lab import release

        args = [sys.executable, "-m", "runbooks.lab.release", "--listen",
                f"{release.ADDRESS}:{release.PORT}", "--log", str(state.dir / "release.log"),
                "--tag", token]
        data["release_pid"] = _start_daemon(args, state.dir / "release.pid",
                                            state.dir / "release.err")
        data["release_url"] = release.URL


def _kill_netns_processes(plan: LabPlan) -> None:
    """SIGKILL every process living in one of the lab's network namespaces."""
    inodes = {network.netns_inode(n) for n in network.lab_netns_names(plan)} - {None}
    if not inodes:
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                continue


def _lab_mounts(state: LabState) -> list[str]:
    prefix = str(state.dir) + "/"
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4] for line in info]
    return sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True)


def down(inventory: Any, log=print) -> None:  # noqa: ANN001
    """Remove every process, mount, namespace and link of the lab, and its state."""
    plan = make_plan(inventory)
    check_platform(plan)
    _drop_kept(inventory)
    state = LabState(plan.site)
    with locked(state):
        _down(plan, state, log)


def _drop_kept(inventory: Any, names: list[str] | None = None) -> None:
    """Close the SSH connections kept open to the lab's hosts (runbooks/core/keep_*), or to
    those of `names` only: the hosts go away, and a lab brought up again has new host keys."""
    from runbooks.core.keep_client import drop_addresses

    drop_addresses([host.address for name, host in inventory.hosts.items()
                    if names is None or name in names])


def _down(plan: LabPlan, state: LabState, log) -> None:  # noqa: ANN001
    data = state.load()
    entries = data.get("guests", {})
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda g: _stop_one(g, entries.get(g.name, {})), plan.guests))
    token = str(state.dir)
    for key in ("proxy_pid", "upstream_pid", "release_pid"):
        if _owned(data.get(key), token):
            os.kill(data[key], signal.SIGKILL)
    _kill_stray_helpers(state, keep=set())
    _kill_netns_processes(plan)
    for point in _lab_mounts(state):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    network.teardown_fabric(plan)
    shutil.rmtree(state.dir / "hosts", ignore_errors=True)
    shutil.rmtree(state.dir / "sessions", ignore_errors=True)
    for name in ("lab.json", "known_hosts", "upstream.log", "aptproxy.log", "aptproxy.pid",
                 "upstream.pid", "upstream.err", "release.log", "release.pid", "release.err"):
        (state.dir / name).unlink(missing_ok=True)
    log(f"lab {plan.site}: down")


def reset(inventory: Any, name: str, wait: bool = True) -> None:
    """Put one guest back to fresh: stop it, wipe its overlay and network, start it again."""
    plan = make_plan(inventory)
    guest = plan.guest(name)
    state = LabState(plan.site)
    # its kept connection (if any) would outlive the guest's sshd: a fresh guest, a fresh login
    _drop_kept(inventory, [name])
    with locked(state):
        _reset(plan, state, guest, wait)


def _reset(plan: LabPlan, state: LabState, guest: GuestPlan, wait: bool) -> None:
    name = guest.name
    data = state.load()
    if data.get("status") != "up":
        raise LabError("the virtual lab is not running: run `inv lab.up`")
    _stop_one(guest, data.get("guests", {}).get(name, {}))
    hdir = state.host_dir(name)
    guests.umount_overlay(hdir)
    for sub in ("upper", "work"):
        shutil.rmtree(hdir / sub, ignore_errors=True)
    pubkey = Path(f"{state.key}.pub").read_text()
    pid = _start_one(plan, guest, state, Path(data["lower"]), pubkey)
    data.setdefault("guests", {}).setdefault(name, {})["supervisor"] = pid
    state.save(data)
    if wait:
        wait_ssh(plan, [name], state=state)


def status(inventory: Any) -> list[dict[str, Any]]:
    """One row per guest: name, kind, addresses, running, ssh banner."""
    plan = make_plan(inventory)
    state = LabState(plan.site)
    up_ = state.load().get("status") == "up" and network.link_exists(plan.bridge)
    rows = []
    for guest in plan.guests:
        running = up_ and guests.init_pid(guest) is not None
        address = str(guest.mgmt_address.ip) if guest.mgmt_address else None
        banner = ssh_banner(address) if (running and address) else None
        rows.append({"name": guest.name, "kind": guest.kind, "address": address,
                     "vlan_if": guest.vlan_if,
                     "vlan_address": str(guest.vlan_address) if guest.vlan_address else None,
                     "running": running, "ssh": banner is not None, "banner": banner})
    return rows
