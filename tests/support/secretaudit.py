"""Search every byte a greenroom run produced for known secret values.

`needles(secret)` gives the forms a secret can leak in: as is, and base64 at each of the
three alignments (a Kubernetes Secret, a basic-auth header, a docker config). `hits(blobs,
secrets)` names every (place, secret) where one occurs. `PsSampler` snapshots the process
lists of this machine and of lab guests while a run goes on, so a secret that shows in any
argv for a moment is caught, and the environments of those processes (a secret handed to a
child in its environment); `ArgvSampler` keeps only the command lines a test asks about
(with their pids and hosts). `changed_files(lab, host)` lists the files a guest changed
since it was reset (its overlay's upper layer), with their modes. `Exposure` names one
known exposure that is not ours to fix (an upstream tool that takes a secret only in its
argv); `set_aside` takes the command lines that are exactly that out of the ps snapshots,
so the search of the rest still fails on anything else.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def needles(secret: str) -> set[bytes]:
    """The secret, and its base64 at every alignment (the middle of a longer encoding)."""
    raw = secret.encode()
    found = {raw}
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        # drop the characters that depend on the padding bytes and on what follows
        start = (0, 2, 3)[pad]
        middle = encoded[start:len(encoded) - 4]
        if len(middle) >= 8:
            found.add(middle)
    return found


def hits(blobs: Mapping[str, bytes], secrets: Mapping[str, str]) -> list[str]:
    """'<place>: <secret name>' for every blob holding any form of a secret."""
    found = []
    for place, data in blobs.items():
        for name, value in secrets.items():
            if any(n in data for n in needles(value)):
                found.append(f"{place}: {name}")
    return found


def processes(keep: Callable[[bytes], bool] = lambda args: True,
              ) -> Iterator[tuple[int, bytes, bytes]]:
    """(pid, host name, command line) of every process in this machine's /proc (the guests'
    included: their pid namespaces are below this one) whose command line `keep` accepts;
    the host name is what the process's root filesystem gives (b"?" when unreadable), read
    only for the lines kept. Processes that end meanwhile are skipped."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        args = raw.rstrip(b"\0").replace(b"\0", b" ").strip()
        if not args or not keep(args):
            continue
        try:
            where = Path(f"/proc/{pid}/root/etc/hostname").read_bytes().strip()
        except OSError:
            where = b"?"
        yield int(pid), where, args


def proc_lines() -> set[bytes]:
    """Every process's command line as `ps` shows it (`processes`), each prefixed by the
    host name its root filesystem gives ('<host>\t<args>')."""
    return {where + b"\t" + args for _pid, where, args in processes()}


class ArgvSampler:
    """Until stopped: every command line in this machine's /proc (`processes`) that `keep`
    accepts, sampled every few milliseconds; `seen` maps (pid, line) to the host name."""

    def __init__(self, keep: Callable[[bytes], bool] = lambda args: True,
                 every: float = 0.005) -> None:
        self.keep, self.every = keep, every
        self.seen: dict[tuple[int, str], str] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid, where, args in processes(self.keep):
                key = (pid, args.decode(errors="replace"))
                if key not in self.seen:
                    self.seen[key] = where.decode(errors="replace")
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _where(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/root/etc/hostname").read_bytes().strip()
    except OSError:
        return b"?"


def proc_environments(known: dict[str, bytes]) -> set[bytes]:
    """Every process's environment, one variable a line
    ('<host>\t<pid>\t<process name>\t<NAME=value>'),
    read from this machine's /proc (guests' processes included). `known` maps pid to the
    start time and command line its environment was last read with: a process is read
    again only after it exec'd (the environment in /proc is the one it was started with)."""
    lines: set[bytes] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            # the start time tells a reused pid apart; the command line, an exec
            started = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[19]
            key = started + b" " + Path(f"/proc/{pid}/cmdline").read_bytes()
            if known.get(pid) == key:
                continue
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except (OSError, IndexError):
            continue
        known[pid] = key
        where = _where(pid)
        name = key.partition(b" ")[2].split(b"\0")[0].rsplit(b"/", 1)[-1] or b"?"
        lines.update(b"\t".join((where, pid.encode(), name, var))
                     for var in raw.split(b"\0") if var)
    return lines


def environment_hits(blob: bytes, secrets: Mapping[str, str]) -> list[str]:
    """Where in an environments blob each secret is: '<host> <process> (pid): <NAME> holds
    <secret name>' (the value never shown)."""
    found = []
    for line in blob.split(b"\n"):
        fields = line.split(b"\t", 3)
        if len(fields) < 4:
            continue
        host, pid, name, var = (f.decode(errors="replace") for f in fields)
        for secret, value in secrets.items():
            if any(n in fields[3] for n in needles(value)):
                found.append(f"{host} {name} ({pid}): {var.partition('=')[0]} holds {secret}")
    return found


def set_aside_given(blob: bytes, pids: Iterable[int], names: Iterable[str]) -> bytes:
    """An environments blob without the variables the operator gave greenroom its secrets
    in (`names`), in the operator's own processes (`pids`: the process the operator
    started); the same variable in any other process (a child it was passed on to, a
    guest) stays and is searched."""
    own = {str(p).encode() for p in pids}
    given = tuple(f"{n}=".encode() for n in names)
    kept = []
    for line in blob.split(b"\n"):
        fields = line.split(b"\t", 3)
        pid, var = (fields[1], fields[3]) if len(fields) == 4 else (b"", b"")
        if not (pid in own and var.startswith(given)):
            kept.append(line)
    return b"\n".join(kept)


class PsSampler:
    """Until stopped: every command line in this machine's /proc (the guests' processes
    included, with their host names) every 10 ms, what is new kept, with every new
    process's environment (unless `environments` is false); and `ps` run inside each of
    `guests` every `every` seconds."""

    def __init__(self, lab: Any, guests: Iterable[str], every: float = 0.05,
                 environments: bool = True) -> None:
        self.lab = lab
        self.environments = environments
        self.environ: set[bytes] = set()
        self._environ_seen: dict[str, bytes] = {}
        self.guests = list(guests)
        self.every = every
        self.snapshots = 0
        self.scans = 0
        self.data: dict[str, bytearray] = {}
        for name in self.guests:
            self.data[f"ps in {name}"] = bytearray()
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._scanner = threading.Thread(target=self._scan, daemon=True)

    def _scan(self) -> None:
        while not self._stop.is_set():
            self.seen |= proc_lines()
            if self.environments:
                self.environ |= proc_environments(self._environ_seen)
            self.scans += 1
            self._stop.wait(0.01)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for name in self.guests:
                try:
                    done = self.lab.exec(name, "ps -eww -o args=", timeout=10)
                    self.data[f"ps in {name}"] += done.stdout.encode()
                except Exception:  # noqa: BLE001 - a guest rebooting has no ps for a moment
                    pass
            self.snapshots += 1
            self._stop.wait(self.every)

    def __enter__(self) -> PsSampler:
        self._thread.start()
        self._scanner.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._scanner.join()

    def blobs(self) -> dict[str, bytes]:
        found = {k: bytes(v) for k, v in self.data.items()}
        found["command lines in /proc"] = b"\n".join(sorted(self.seen)) + b"\n"
        if self.environments:
            found["environments in /proc"] = b"\n".join(sorted(self.environ)) + b"\n"
        return found


@dataclass(frozen=True)
class Exposure:
    """A known exposure that is not greenroom's to fix: the ps lines on `hosts` matching
    `argv` (a whole command line, without its host prefix) may hold the secrets named."""

    name: str
    hosts: frozenset[str]
    argv: re.Pattern[bytes]
    why: str


def set_aside(blobs: Mapping[str, bytes], exposures: Iterable[Exposure],
              hosts: Mapping[str, str] | None = None) -> tuple[dict[str, bytes], list[str]]:
    """`blobs` without the ps lines that are one of `exposures`, and what was set aside
    ('<exposure>: <place>: <line>'). Only ps blobs are touched: 'ps in <host>' (the host
    from its name) and the /proc scan ('<host>\t<args>' lines); a line anywhere else, or
    on another host, or in any other form, stays and is searched."""
    kept: dict[str, bytes] = {}
    aside: list[str] = []
    exposures = list(exposures)
    for place, data in blobs.items():
        if not place.startswith(("ps in ", "command lines in /proc")):
            kept[place] = data
            continue
        lines = []
        for line in data.split(b"\n"):
            host, args = (place[len("ps in "):], line) if place.startswith("ps in ") else (
                line.partition(b"\t")[0].decode(errors="replace"), line.partition(b"\t")[2])
            match = next((e for e in exposures
                          if host in e.hosts and e.argv.fullmatch(args.strip())), None)
            if match:
                aside.append(f"{match.name}: {place}: {host}: "
                             f"{args.decode(errors='replace')}")
            else:
                lines.append(line)
        kept[place] = b"\n".join(lines)
    return kept, aside


def changed_files(lab: Any, host: str) -> dict[str, tuple[str, bytes]]:
    """Every regular file the guest changed since its reset: path -> (octal mode, content).
    Read from the overlay's upper layer on this machine (the guest's own view of modes)."""
    upper = Path(lab.state_dir) / "hosts" / host / "upper"
    files: dict[str, tuple[str, bytes]] = {}
    for folder, _dirs, names in os.walk(upper):
        for name in names:
            path = Path(folder) / name
            try:
                if not path.is_file() or path.is_symlink():
                    continue
                mode = f"{path.stat().st_mode & 0o7777:o}"
                files["/" + str(path.relative_to(upper))] = (mode, path.read_bytes())
            except OSError:
                continue
    return files


def journal(lab: Any, host: str) -> bytes:
    """The guest's whole journal (every field of every entry) and its /var/log."""
    done = lab.exec(host, "{ journalctl --no-pager -o export 2>/dev/null; "
                          "find /var/log -type f -exec cat {} + 2>/dev/null; } | base64 -w0",
                    timeout=120)
    return base64.b64decode(done.stdout)
