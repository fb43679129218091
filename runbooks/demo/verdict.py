"""What demo.check found on one host: one Verdict per check, the drift, the timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """One check on one host: who contributed it, whether it is fine, evidence, the fix."""

    host: str
    source: str  # "demo" or the runbook that contributed the check
    name: str
    ok: bool
    detail: str
    fix: str = ""

    @classmethod
    def of(cls, host: str, source: str, check: Any) -> Verdict:
        """From any check object with name, ok, detail (and maybe fix)."""
        return cls(host, source, str(check.name), bool(check.ok), str(check.detail),
                   str(getattr(check, "fix", "") or ""))


@dataclass
class HostReport:
    """Everything demo.check learnt about one host."""

    host: str
    reachable: bool = False
    verdicts: list[Verdict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds
    clock_offset: float | None = None
    disk_free: str = ""

    @property
    def ok(self) -> bool:
        return self.reachable and all(v.ok for v in self.verdicts)

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "ok": self.ok, "reachable": self.reachable,
                "clock_offset": self.clock_offset, "disk_free": self.disk_free,
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "checks": [{"source": v.source, "name": v.name, "ok": v.ok,
                            "detail": v.detail, **({"fix": v.fix} if v.fix else {})}
                           for v in self.verdicts]}
