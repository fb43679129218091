"""`python -m runbooks.registry load-images ...` when there is nothing to copy, answered
before Invoke is imported.

Importing Invoke costs more CPU (~0.13 s: its vendored YAML, unittest.mock, asyncio) than
the whole no-op check of 16 images (one HEAD each). So `__main__` first hands the command
line here: when it is `load-images` with only the options below, every image is already in
the target under the digest the lock pins, and the target is plain HTTP (loopback or named
with --insecure), the run is printed exactly as the task prints it and ends with status 0.
Anything else returns None having printed nothing, and Invoke runs the task as always:
another task, --help, an option this parser does not know (--refresh, --rewrite, ...), a
malformed one, an error of any kind, Invoke configuration this module would not read
(INVOKE_* variables, ~/.invoke.*, /etc/invoke.*), or a single image left to do. This path
never copies, never writes the lock and never reports an error.

`inv registry.load-images ...` (the task as users type it) gets the same answer from the
project's tasks.py through `answer_inv`, before any runbook's collection is loaded and before
Invoke parses the task's options: Invoke itself is already imported by then, the rest of the
start-up (every collection, the parser's copies of every task's options) is saved.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

TASK = "load-images"
VALUED = {"--images": "images", "-m": "images", "--to": "to", "-t": "to",
          "--inventory": "inventory", "-i": "inventory", "--platform": "platform",
          "-p": "platform", "--jobs": "jobs", "-j": "jobs", "--lock": "lock", "-l": "lock",
          "--insecure": "insecure", "-n": "insecure", "--runbook": "runbook", "-u": "runbook"}
SWITCHES = {"--all-platforms": "all_platforms", "-a": "all_platforms"}
REPEATABLE = {"insecure", "runbook"}
INVOKE_CONFIGS = ("/etc/invoke", "~/.invoke")
INV_PROGRAMS = ("inv", "invoke")        # Invoke's own console scripts
INV_TASK = "registry." + TASK
CONFIG_SUFFIXES = (".yaml", ".yml", ".json", ".py")


def parse(argv: list[str]) -> dict[str, Any] | None:
    """The load-images options of `argv` (without the program name), or None when this
    parser does not take it all (Invoke then parses it)."""
    if not argv or argv[0] != TASK:
        return None
    found: dict[str, Any] = {}
    words = argv[1:]
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        given: Any = value
        if flag in SWITCHES and not eq:
            key, given = SWITCHES[flag], True
        elif flag in VALUED:
            key = VALUED[flag]
            if not eq:
                i += 1
                if i >= len(words) or words[i].startswith("-"):
                    return None
                given = words[i]
            if not given:
                return None
        else:
            return None
        if key in REPEATABLE:
            found.setdefault(key, []).append(given)
        elif key in found:
            return None
        else:
            found[key] = given
        i += 1
    if "jobs" in found:
        if not str(found["jobs"]).isdigit() or int(found["jobs"]) < 1:
            return None
        found["jobs"] = int(found["jobs"])
    return found


def _invoke_configured_elsewhere() -> bool:
    """Whether Invoke would read configuration this module does not (then it decides)."""
    if any(name.startswith("INVOKE_") for name in os.environ):
        return True
    return any(Path(os.path.expanduser(base + suffix)).exists()
               for base in INVOKE_CONFIGS for suffix in CONFIG_SUFFIXES)


def answer(argv: list[str], project: Callable[[], dict[str, Any]],
           out: TextIO | None = None) -> bool:
    """Print the whole no-op run and return True; or return False having printed nothing.

    `project()` gives invoke.yaml's content (greenroom.inventory is the default inventory);
    it is read only when the run needs an inventory."""
    out = sys.stdout if out is None else out
    found = parse(argv)
    if found is None or _invoke_configured_elsewhere():
        return False
    try:
        from .run import Options, needs_inventory, noop_run

        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in found.items()}
        opts = Options(**values)
        if opts.inventory is None and needs_inventory(opts):
            inventory = ((project() or {}).get("greenroom") or {}).get("inventory")
            if inventory is None:
                return False
            opts.inventory = str(inventory)
        summary = noop_run(opts, out)
    except Exception:  # noqa: BLE001 - anything unusual is the task's to report, not ours
        return False
    if summary is None:
        return False
    out.write(summary.text() + "\n")
    out.flush()
    return True


def project_config(path: Path) -> Callable[[], dict[str, Any]]:
    """A reader of the project's invoke.yaml at `path` ({} without one), read when called."""
    def read() -> dict[str, Any]:
        import yaml

        return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}

    return read


def answer_inv(argv: list[str], config: Path, out: TextIO | None = None) -> bool:
    """For tasks.py, while Invoke loads it: True (the run printed; the caller ends the
    process with status 0) when `argv` is Invoke's own program running exactly
    `registry.load-images` with options `parse` takes, first on the line (no core option
    before it, no other task after it), and there is nothing to copy; False, having printed
    nothing, for anything else, including tasks.py imported by a test or a tool."""
    if len(argv) < 2 or Path(argv[0]).name not in INV_PROGRAMS or argv[1] != INV_TASK:
        return False
    return answer([TASK, *argv[2:]], project_config(config), out)
