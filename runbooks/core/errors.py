"""The one kind of error that means "bad input": the CLI reports it in one line and exits 2.

Anything the user can fix before a host is touched derives from `UsageError`: an invalid
inventory (`InventoryError`), a `--host` naming hosts without the runbook's roles, a bad
option value, or a plug-in's refusal (the virtual lab not running). The CLI layer catches
`UsageError` once, in one place; nothing compares exception names.
"""

from __future__ import annotations


class UsageError(Exception):
    """The command line, the inventory or the environment asks for something we cannot do;
    the message says what is wrong and what to do. Nothing was touched."""
