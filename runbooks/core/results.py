"""What a run produced: a status per step and per host, as an enum whose values are the
words the recap and the JSON report show."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """ok: nothing to change; changed: changes applied (or, in check mode, needed);
    failed: a step failed; unreachable: the host could not be reached or was lost."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"

    @property
    def good(self) -> bool:
        """Whether a run ending in this status succeeded."""
        return self in (Status.OK, Status.CHANGED)


@dataclass
class StepResult:
    name: str
    status: Status = Status.OK
    changes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class HostResult:
    host: str
    status: Status = Status.OK
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    reboot_needed: bool = False

    @property
    def changed(self) -> int:
        return sum(1 for s in self.steps if s.status is Status.CHANGED)

    @property
    def failed(self) -> int:
        failed_steps = sum(1 for s in self.steps if s.status is Status.FAILED)
        return failed_steps or (0 if self.status.good else 1)

    @property
    def ok(self) -> int:
        return sum(1 for s in self.steps if s.status is Status.OK)
