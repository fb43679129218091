"""Search every byte a greenroom run produced for known secret values.

`needles(secret)` gives the forms a secret can leak in: as is, and base64 at each of the
three alignments (a Kubernetes Secret, a basic-auth header, a docker config). `hits(blobs,
secrets)` names every (place, secret) where one occurs. `PsSampler` snapshots the process
lists of this machine and of lab guests while a run goes on, so a secret that shows in any
argv for a moment is caught. `changed_files(lab, host)` lists the files a guest changed
since it was reset (its overlay's upper layer), with their modes.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterable, Mapping
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


def machine_ps() -> bytes:
    return subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True,
                          check=False).stdout


class PsSampler:
    """Snapshots `ps` on this machine and in `guests` every `every` seconds until stopped."""

    def __init__(self, lab: Any, guests: Iterable[str], every: float = 0.05) -> None:
        self.lab = lab
        self.guests = list(guests)
        self.every = every
        self.snapshots = 0
        self.data: dict[str, bytearray] = {"ps on this machine": bytearray()}
        for name in self.guests:
            self.data[f"ps in {name}"] = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.data["ps on this machine"] += machine_ps()
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
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def blobs(self) -> dict[str, bytes]:
        return {k: bytes(v) for k, v in self.data.items()}


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
