"""Start, find, enter and stop one lab guest.

Kinds:
- ``systemd``: ``systemd-nspawn -b`` on the host's overlay, inside the host's network
  namespace, supervised by a small shell loop: when the guest reboots (nspawn exits 133) it
  is started again after a pause, keeping its overlay, like a board.
- ``chroot``: the host's network namespace + ``unshare`` (mount, uts, ipc, pid) +
  ``pivot_root`` into the overlay, then ``sshd -D`` (no systemd inside).
- ``client``: like chroot, but runs ``dhclient`` in a loop on ``eth0`` (no SSH).

Safety: every guest loses the machine-wide capabilities in DROP_CAPS (CAP_SYS_ADMIN,
CAP_SYS_MODULE, CAP_MKNOD...), sees /proc/sys read-only except /proc/sys/net, has its own
pid namespace and no path to the machine's files (nspawn / pivot_root).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from runbooks.lab.network import netns_inode
from runbooks.lab.plan import GuestPlan

# capabilities with machine-wide effect; guests never hold them
DROP_CAPS = ("sys_admin", "sys_module", "sys_time", "sys_rawio", "mknod", "syslog",
             "sys_ptrace", "dac_read_search", "mac_admin", "mac_override", "wake_alarm",
             "block_suspend", "audit_control", "perfmon", "bpf", "sys_pacct",
             "checkpoint_restore", "sys_tty_config", "linux_immutable", "sys_resource")
# chroot guests also lose CAP_SYS_BOOT (nspawn keeps it so `reboot` ends its pid namespace)
CHROOT_EXTRA_DROP = ("sys_boot",)
REBOOT_PAUSE = 2
CGROUP_PARENT = "greenroom-lab"
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class GuestError(RuntimeError):
    """A guest could not be started or entered."""


def setpriv_args(kind: str) -> list[str]:
    """``setpriv`` arguments that drop the machine-wide capabilities from the bounding set."""
    caps = DROP_CAPS + (CHROOT_EXTRA_DROP if kind != "systemd" else ())
    bounding = ",".join(f"-{c}" for c in caps)
    return ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--"]


def machine_name(guest: GuestPlan) -> str:
    """nspawn machine name (also its hostname): the namespace name."""
    return guest.netns


def is_mounted(path: Path) -> bool:
    """True when ``path`` is a mount point (per /proc/self/mountinfo)."""
    target = str(path)
    with open("/proc/self/mountinfo") as info:
        return any(line.split()[4] == target for line in info)


def mount_overlay(lower: Path, hdir: Path) -> Path:
    """Mount lower + ``hdir/upper`` at ``hdir/root`` (idempotent); return the root."""
    root = hdir / "root"
    for sub in ("upper", "work", "root"):
        (hdir / sub).mkdir(parents=True, exist_ok=True)
    if not is_mounted(root):
        opts = f"lowerdir={lower},upperdir={hdir / 'upper'},workdir={hdir / 'work'}"
        proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(root)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise GuestError(f"mounting the overlay at {root} failed: {proc.stderr.strip()}")
    return root


def umount_overlay(hdir: Path) -> None:
    """Unmount a guest's overlay (lazily when still busy)."""
    root = hdir / "root"
    for _ in range(20):
        if not is_mounted(root):
            return
        if subprocess.run(["umount", str(root)], capture_output=True,
                          check=False).returncode == 0:
            continue
        time.sleep(0.05)
    subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)


def cgroup_dirs(guest: GuestPlan) -> list[Path]:
    """A private cgroup per systemd guest in the hierarchies systemd manages.

    Without it, every nspawn guest would put its payload in the same ``/payload`` cgroup and
    the guests' systemd instances would fight over it (units failing with 219/CGROUP).
    """
    ours: dict[str, str] = {}
    with open("/proc/self/cgroup") as own:
        for line in own:
            ident, controllers, path = line.rstrip("\n").split(":", 2)
            if ident == "0":
                ours["cgroup2"] = path
            elif controllers == "name=systemd":
                ours["name=systemd"] = path
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            left, _, right = line.partition(" - ")
            fstype, _, options = right.split()[:3]
            point = left.split()[4]
            if fstype == "cgroup2" and "cgroup2" in ours:
                found.append(Path(point + ours["cgroup2"]))
            elif fstype == "cgroup" and "name=systemd" in options.split(",") \
                    and "name=systemd" in ours:
                found.append(Path(point + ours["name=systemd"]))
    return [base / CGROUP_PARENT / guest.netns for base in found]


def remove_cgroups(guest: GuestPlan) -> None:
    """Remove a guest's cgroups (deepest first; retried while exiting tasks drain)."""
    for top in cgroup_dirs(guest):
        for _ in range(50):
            if not top.exists():
                break
            dirs = sorted((p for p in top.rglob("*") if p.is_dir()),
                          key=lambda p: len(p.parts), reverse=True) + [top]
            for folder in dirs:
                try:
                    folder.rmdir()
                except OSError:
                    pass
            if top.exists():
                time.sleep(0.02)
        try:
            top.parent.rmdir()  # the shared parent, once no lab guest uses it
        except OSError:
            pass


def _nspawn_command(guest: GuestPlan, root: Path, firmware: Path | None) -> list[str]:
    caps = ",".join(f"CAP_{c.upper()}" for c in DROP_CAPS)
    cmd = ["systemd-nspawn", "--quiet", f"--directory={root}", f"--machine={machine_name(guest)}",
           f"--hostname={guest.name}", f"--network-namespace-path=/run/netns/{guest.netns}",
           "--register=no", "--keep-unit", "--console=read-only", "--resolv-conf=off",
           "--timezone=off", "--link-journal=no", "--tmpfs=/run/lock",
           # nspawn grants CAP_NET_ADMIN only with its own --private-network; our guests own
           # their network namespace, so they get it back (ip addr, ip_forward, nft)
           "--capability=CAP_NET_ADMIN", f"--drop-capability={caps}"]
    if firmware is not None:
        cmd.append(f"--bind-ro={firmware}:/sys/firmware")
    return cmd + ["--boot"]


def _supervisor_script(guest: GuestPlan, root: Path, firmware: Path | None,
                       pidfile: Path) -> str:
    nspawn = shlex.join(_nspawn_command(guest, root, firmware))
    enter = "".join(f"mkdir -p {shlex.quote(str(d))} && echo $$ > "
                    f"{shlex.quote(str(d / 'cgroup.procs'))}\n" for d in cgroup_dirs(guest))
    return (f"echo $$ > {shlex.quote(str(pidfile))}\n" + enter +
            "export SYSTEMD_NSPAWN_API_VFS_WRITABLE=network SYSTEMD_NSPAWN_TMPFS_TMP=0\n"
            "while :; do\n"
            f"  {nspawn}\n"
            "  rc=$?\n"
            '  [ "$rc" -eq 133 ] || exit "$rc"\n'
            f'  echo "[lab] {guest.name} rebooting"; sleep {REBOOT_PAUSE}\n'
            "done\n")


def _chroot_inner_script(guest: GuestPlan, root: Path, firmware: Path | None) -> str:
    """Runs as pid 1 of the new pid namespace: private mounts, pivot_root, drop caps."""
    r = shlex.quote(str(root))
    lines = [
        "set -e", f"R={r}",
        'mount --bind "$R" "$R"',
        'mount -t proc -o nosuid,nodev,noexec proc "$R/proc"',
        'mount --bind "$R/proc/sys" "$R/proc/sys"',
        'mount -o remount,bind,ro "$R/proc/sys"',
        'mount --bind "$R/proc/sys/net" "$R/proc/sys/net"',
        'mount -o remount,bind,rw "$R/proc/sys/net"',
        'if [ -e "$R/proc/sysrq-trigger" ]; then '
        'mount --bind "$R/proc/sysrq-trigger" "$R/proc/sysrq-trigger"; '
        'mount -o remount,bind,ro "$R/proc/sysrq-trigger"; fi',
        'mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"',
    ]
    if firmware is not None:
        lines += [f'mount --bind {shlex.quote(str(firmware))} "$R/sys/firmware"',
                  'mount -o remount,bind,ro "$R/sys/firmware"']
    lines += [
        'mount -t tmpfs -o mode=755,nosuid,size=8m tmpfs "$R/dev"',
        'for d in null zero full random urandom tty; do touch "$R/dev/$d"; '
        'mount --bind "/dev/$d" "$R/dev/$d"; done',
        'mkdir -p "$R/dev/pts" "$R/dev/shm"',
        'mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"',
        'ln -s pts/ptmx "$R/dev/ptmx"', 'ln -s /proc/self/fd "$R/dev/fd"',
        'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"',
        'mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/run"',
        'mkdir -p "$R/run/sshd" "$R/run/lock"',
        f"hostname {shlex.quote(guest.name)}",
        'cd "$R"', "pivot_root . mnt",
    ]
    if guest.kind == "client":
        payload = ("mkdir -p /var/lib/dhcp; while :; do dhclient -d -v "
                   "-lf /var/lib/dhcp/dhclient.eth0.leases eth0 >>/var/log/dhclient.log 2>&1;"
                   " sleep 1; done")
        final = shlex.join(setpriv_args(guest.kind) + ["/bin/sh", "-c", payload])
    else:
        final = shlex.join(setpriv_args(guest.kind) + ["/usr/sbin/sshd", "-D", "-e"])
    lines.append("exec /usr/sbin/chroot . /bin/sh -c "
                 + shlex.quote(f"umount -l /mnt && exec {final}"))
    return "\n".join(lines) + "\n"


def start_guest(guest: GuestPlan, root: Path, hdir: Path, firmware: Path | None) -> int:
    """Start the guest detached (its own session); return its supervisor pid."""
    pidfile = hdir / "supervisor.pid"
    pidfile.unlink(missing_ok=True)
    console = open(hdir / "console.log", "ab")
    if guest.kind == "systemd":
        script = _supervisor_script(guest, root, firmware, pidfile)
    else:
        inner = _chroot_inner_script(guest, root, firmware)
        script = (f"echo $$ > {shlex.quote(str(pidfile))}\n"
                  f"exec nsenter --net=/run/netns/{guest.netns} unshare --mount --uts --ipc "
                  f"--pid --fork --kill-child=SIGKILL --propagation=private /bin/sh -c "
                  f"{shlex.quote(inner)}\n")
    with console:
        subprocess.run(["setsid", "-f", "/bin/sh", "-c", script], stdin=subprocess.DEVNULL,
                       stdout=console, stderr=subprocess.STDOUT, check=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            return int(pidfile.read_text())
        except (OSError, ValueError):
            time.sleep(0.01)
    raise GuestError(f"guest {guest.name} did not start; see {hdir / 'console.log'}")


def init_pid(guest: GuestPlan) -> int | None:
    """Pid (in our namespace) of the guest's pid-namespace init, found via its netns."""
    inode = netns_inode(guest.netns)
    if inode is None:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino != inode:
                continue
            with open(f"/proc/{entry}/status") as status:
                for line in status:
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        if len(ids) >= 2 and ids[-1] == "1":
                            return int(entry)
                        break
        except OSError:
            continue
    return None


def pid_alive(pid: int | None) -> bool:
    """True when the process exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill(pid: int | None, sig: int = signal.SIGKILL) -> None:
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def stop_guest(guest: GuestPlan, supervisor: int | None) -> None:
    """Stop a guest with SIGKILL (supervisor first, so nothing restarts it)."""
    helpers = _children(supervisor) if supervisor else []
    init = init_pid(guest)
    _kill(supervisor)
    _kill(init)
    if not _wait_gone(helpers, 3):
        for pid in helpers:
            _kill(pid)
        _wait_gone(helpers, 2)
    _wait_gone([p for p in (init,) if p], 2)
    if guest.kind == "systemd":
        remove_cgroups(guest)
    propagate = Path("/run/systemd/nspawn/propagate") / machine_name(guest)
    if propagate.is_dir() and not is_mounted(propagate):
        try:
            for child in propagate.iterdir():
                child.unlink()
            propagate.rmdir()
        except OSError:
            pass


def entered_root(pid: int) -> bool:
    """True once the guest's init has its own root (nspawn or pivot_root done).

    While a guest (re)starts, its pid-1 process already sits in the guest's namespaces
    but still sees the machine's filesystem: a command entered then would run on the
    machine's files, and systemctl there would talk to whatever /run/systemd it finds.
    """
    try:
        ours, theirs = os.stat("/"), os.stat(f"/proc/{pid}/root")
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino)


def wait_entered(guest: GuestPlan, supervisor: int, hdir: Path,
                 timeout: float = 30.0) -> None:
    """Wait until the guest's init runs in its own root, so that ``exec_in`` reaches the
    guest (a DHCP client guest has no SSH to wait for). GuestError when its supervisor
    died first, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = init_pid(guest)
        if pid is not None and entered_root(pid):
            return
        if pid is None and not pid_alive(supervisor):
            raise GuestError(f"guest {guest.name} stopped while starting; see "
                             f"{hdir / 'console.log'}")
        time.sleep(0.01)
    raise GuestError(f"guest {guest.name} did not start within {timeout:g}s; see "
                     f"{hdir / 'console.log'}")


def exec_in(guest: GuestPlan, command: str, timeout: float | None = 120,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with /bin/sh inside the guest (no SSH), capabilities dropped.

    Raises GuestError when the guest is not running (or is between two boots), and
    subprocess.TimeoutExpired after ``timeout`` seconds, having killed every process the
    command started (none is left holding the guest or our pipes).
    """
    pid = init_pid(guest)
    if pid is None or not entered_root(pid):
        raise GuestError(f"lab guest {guest.name} is not running")
    cmd = ["nsenter", "-t", str(pid), "-a"] + setpriv_args(guest.kind) + [
        "/bin/sh", "-c", command]
    env = {"PATH": GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
    with subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else
                          subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()  # not communicate(): a daemon the command left may hold the pipes
            raise
        except BaseException:
            _kill_group(proc.pid)
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
