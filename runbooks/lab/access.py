"""Lab access for the engine: which key, known_hosts and user reach the virtual lab.

Import cost is stdlib plus two small engine modules. The CLI layer plugs the lab into the
engine with :func:`plug_in` (its inventory keys, runbooks/lab/schema.py, and its access); the
engine then asks :func:`provider` before it opens any connection to an inventory that has a
``lab:`` section. The answer is decided from local
state only (the lab's state file and the management bridge), so no packet is sent when the
lab is down: :class:`LabNotRunning` is one of the engine's usage errors (exit 2).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbooks.core import access as engine_access
from runbooks.core.errors import UsageError

STATE_FILE = "lab.json"


class LabNotRunning(UsageError):
    """The virtual lab for this inventory is not up."""

    def __init__(self, message: str = "the virtual lab is not running: run `inv lab.up`"):
        super().__init__(message)


@dataclass(frozen=True)
class LabAccess:
    """How to reach the lab's hosts: private key, known_hosts file, login user."""

    key_filename: str
    known_hosts: str
    user: str


def lab_id(site: str) -> str:
    """Short id used in link/namespace names: the site, lower-case alnum, at most 7 chars."""
    cleaned = re.sub(r"[^a-z0-9]", "", site.lower())[:7]
    return cleaned or "lab"


def bridge_name(site: str) -> str:
    """Name of the management bridge the lab creates in the machine's namespace."""
    return f"gr{lab_id(site)}-mgmt"


def state_root() -> Path:
    """Directory holding one state dir per lab (``$GREENROOM_LAB_STATE`` overrides)."""
    override = os.environ.get("GREENROOM_LAB_STATE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "greenroom" / "lab"


def state_dir_for(site: str) -> Path:
    """State directory of the lab of one site."""
    return state_root() / lab_id(site)


def read_state(site: str) -> dict[str, Any] | None:
    """The lab's state file as a dict, or None when missing or unreadable."""
    path = state_dir_for(site) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def bridge_exists(name: str) -> bool:
    """True when a network interface of that name exists in our namespace (reads /sys)."""
    return Path("/sys/class/net", name).exists()


def lab_access(inventory: Any) -> LabAccess:
    """Return how to reach the running lab of ``inventory``; raise LabNotRunning if it is down.

    The lab counts as running when its state file says it is up for this site and the
    management bridge exists. Nothing is sent on the network.
    """
    site = str(getattr(inventory, "site", "") or "lab")
    state = read_state(site)
    if not state or state.get("status") != "up":
        raise LabNotRunning()
    if not bridge_exists(str(state.get("bridge") or bridge_name(site))):
        raise LabNotRunning()
    key = str(state.get("key_filename", ""))
    known = str(state.get("known_hosts", ""))
    if not (key and known and Path(key).exists() and Path(known).exists()):
        raise LabNotRunning()
    return LabAccess(key_filename=key, known_hosts=known, user=str(state.get("user", "root")))


def provider(inventory: Any) -> engine_access.Access | None:
    """The engine's access for a lab inventory (None for any other inventory)."""
    if getattr(inventory, "sections", {}).get("lab") is None:
        return None
    found = lab_access(inventory)  # raises LabNotRunning, sending no packet
    return engine_access.Access(key_filename=found.key_filename, known_hosts=found.known_hosts)


def plug_in() -> None:
    """Let inventories describe the virtual lab (its `lab:` keys) and the engine reach its
    hosts (called by the CLI layer, tasks.py)."""
    from runbooks.core.inventory_schema import declare_from

    declare_from("runbooks.lab.schema")  # imported with the first inventory read
    engine_access.plug_in(provider)
