"""Reusable steps: import them from here."""

from runbooks.core.steps.base import (
    Action,
    Change,
    Command,
    Composite,
    Handler,
    Health,
    Plan,
    Step,
    StepFailed,
    Verify,
)
from runbooks.core.steps.files import (
    Directory,
    Edit,
    File,
    LineInFile,
    Tokens,
    ensure_line,
    ensure_tokens,
    unified_diff,
)
from runbooks.core.steps.system import Packages, Service, daemon_reloaded

__all__ = [
    "Action", "Change", "Command", "Composite", "Directory", "Edit", "File",
    "Handler", "Health", "Verify",
    "LineInFile", "Packages", "Plan", "Service", "Step", "StepFailed", "Tokens",
    "daemon_reloaded", "ensure_line", "ensure_tokens", "unified_diff",
]
