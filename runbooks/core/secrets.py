"""Keep secrets out of output: every value registered here is masked in what greenroom prints.

Sudo passwords, join tokens and registry credentials are registered the moment they are
read, and `mask()` replaces them in every line the engine prints or writes to a report.
"""

from __future__ import annotations

import os
import threading

MASK = "********"

_lock = threading.Lock()
_secrets: set[str] = set()


def register(value: str | None) -> None:
    """Remember `value` as a secret so that `mask()` hides it from now on."""
    if value and len(value) >= 3:
        with _lock:
            _secrets.add(value)


def mask(text: str) -> str:
    """Return `text` with every registered secret replaced by a mask."""
    if not _secrets or not text:
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def from_env(name: str) -> str | None:
    """Read a secret from the environment and register it; None when unset or empty."""
    value = os.environ.get(name) or None
    register(value)
    return value
