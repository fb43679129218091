"""Inventory declarations of the layers above core: one small module per runbook or topic.

Every module in this package is imported when `runbooks` is imported (see
runbooks/__init__.py), so a new file here is all it takes to add a top-level section or a
role's `vars:` keys; the core inventory then validates them with the rest of the file
(unknown key -> file, line, key and a "did you mean"; wrong type -> what is expected).
How to declare: the docstring of runbooks.core.inventory_schema.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module


def load_all() -> None:
    """Import every declaration module of this package (each registers itself once)."""
    for module in pkgutil.iter_modules(__path__):
        import_module(f"{__name__}.{module.name}")


load_all()
