"""The lab's state on disk: keys, known_hosts, per-host dirs and the lab.json state file.

Layout of a lab's state dir (``~/.local/state/greenroom/lab/<site>/``)::

    lab.json              status, pids, paths (read by access.lab_access)
    keys/id_ed25519       the lab key (created by lab.up; kept across lab.down)
    keys/hosts/<host>     each host's ed25519 host key (stable across resets)
    known_hosts           the hosts' keys by management address
    hosts/<host>/         upper, work, root (overlay mount), firmware, console.log
    upstream.log          client addresses seen by the upstream HTTP server
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from runbooks.lab.access import STATE_FILE, state_dir_for
from runbooks.lab.plan import LabPlan


class LabState:
    """Paths and the JSON state of one lab."""

    def __init__(self, site: str):
        self.dir = state_dir_for(site)
        self.file = self.dir / STATE_FILE
        self.key = self.dir / "keys" / "id_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.upstream_log = self.dir / "upstream.log"

    def host_dir(self, name: str) -> Path:
        """A host's own directory (overlay upper, work, mount point, console log)."""
        return self.dir / "hosts" / name

    def load(self) -> dict[str, Any]:
        """The state dict ({} when missing or unreadable)."""
        try:
            data = json.loads(self.file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save(self, data: dict[str, Any]) -> None:
        """Write the state atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        tmp.replace(self.file)

    def ensure_keys(self, plan: LabPlan) -> str:
        """Create the lab key and missing host keys; write known_hosts; return the pubkey."""
        (self.dir / "keys" / "hosts").mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "keys", 0o700)
        if not self.key.exists():
            _keygen(self.key, "greenroom-lab")
        lines = []
        for guest in plan.guests:
            if guest.kind == "client" or guest.mgmt_address is None:
                continue
            hostkey = self.host_key(guest.name)
            if not hostkey.exists():
                _keygen(hostkey, f"root@{guest.name}")
            kind, blob = Path(f"{hostkey}.pub").read_text().split()[:2]
            lines.append(f"{guest.mgmt_address.ip} {kind} {blob}")
        self.known_hosts.write_text("\n".join(lines) + "\n")
        return Path(f"{self.key}.pub").read_text()

    def host_key(self, name: str) -> Path:
        """Path of a host's private ed25519 host key (``.pub`` beside it)."""
        return self.dir / "keys" / "hosts" / name


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                    str(path)], check=True, capture_output=True)
