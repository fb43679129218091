"""Swap entries in /etc/fstab, commented out so swap stays off after a reboot.

A line is a swap entry when its third field (the type) is `swap`, whatever the source
(a file, a partition, UUID=, LABEL=, PARTUUID=). The line itself is kept after a `#`, with
its tabs and spacing, so it is easy to restore by hand.
"""

from __future__ import annotations

from runbooks.core.steps.files import Edit

MARK = "#"


def is_swap_entry(line: str) -> bool:
    """True for an active (uncommented) fstab line whose type field is `swap`."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return False
    fields = stripped.split()
    return len(fields) >= 3 and fields[2] == "swap"


def swap_entries(content: str | None) -> list[str]:
    """The active swap lines of an fstab (empty for a missing file)."""
    return [line for line in (content or "").splitlines() if is_swap_entry(line)]


def comment_swap_lines(content: str | None) -> str | None:
    """The fstab with every active swap line commented out; None keeps a missing file missing."""
    if content is None:
        return None
    lines = content.splitlines(keepends=True)
    changed = False
    for index, line in enumerate(lines):
        if is_swap_entry(line):
            lines[index] = MARK + line
            changed = True
    return "".join(lines) if changed else content


def fstab_step(path: str = "/etc/fstab") -> Edit:
    """The step that keeps swap lines out of fstab."""
    return Edit(path, comment_swap_lines, name=f"Ensure no swap entry is active in {path}")
