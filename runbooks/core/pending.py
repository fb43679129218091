"""Handlers owed to a host, remembered on the host until they ran.

A step that changes something notifies handlers (restart a service, reboot) that run once at
the end of the host's run. When the connection is lost between the change and the end, the
next run finds the file already converged and would notify nothing: the service would go on
with its old configuration for ever. So before a notifying change is applied, a marker per
handler is left under /var/lib/greenroom/handlers/ on the host; a run that finds markers of
its plan's handlers runs them (reported as left by an interrupted run), and a marker goes
once its handler ran. Converged hosts pay nothing: the markers are listed by the run's first
fact-gathering round trip, and only changes write or remove them.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable

DIRECTORY = "/var/lib/greenroom/handlers"
FACT_KEY = "\0pending-handlers"
LIST_COMMAND = f"ls -1 {DIRECTORY} 2>/dev/null || true"


def marker(name: str) -> str:
    """The marker file's name for handler `name` (readable, and unique by its hash)."""
    readable = re.sub(r"[^A-Za-z0-9_.@-]+", "_", name)[:60]
    return f"{readable}.{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def found(listing: str, handlers: Iterable[str]) -> list[str]:
    """The handlers (of `handlers`, in their order) whose marker the listing shows."""
    present = set(listing.split())
    return [name for name in handlers if marker(name) in present]


def mark_command(names: Iterable[str]) -> str:
    """Shell that leaves a marker for each handler."""
    paths = " ".join(shlex.quote(f"{DIRECTORY}/{marker(n)}") for n in names)
    return f"mkdir -p {DIRECTORY} && touch {paths}"


def clear_command(names: Iterable[str]) -> str:
    """Shell that removes the markers of handlers that ran."""
    paths = " ".join(shlex.quote(f"{DIRECTORY}/{marker(n)}") for n in names)
    return f"rm -f {paths}"
