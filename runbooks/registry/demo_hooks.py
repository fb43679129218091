"""What the registry contributes to demo.check (see runbooks/demo/order.py): the registry is
healthy and holds every listed image under its tag with the digest the lock recorded,
answered by the registry host itself (curl over SSH: works offline, and from a laptop that
has no route to the VLAN). The same list, lock and platform selection as registry.verify.

The image list is the demo section's `images:` when the inventory has one, else the site's
list as registry.load-images builds it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbooks.core.facts import FactResult
from runbooks.core.readonly import Check
from runbooks.registry.manifests import ACCEPT

if TYPE_CHECKING:
    from runbooks.core.inventory import Host, Inventory

FIX = "inv demo.reset (or inv registry.load-images online)"


@dataclass(frozen=True)
class Expected:
    endpoint: str                                    # address:port on the VLAN
    images: tuple[tuple[str, str, str | None], ...]  # (repo, tag, locked digest or None)


def demo_images(inventory: Any) -> str | None:
    """The demo section's image list (absolute; relative paths are the repository's)."""
    from runbooks.common.demo_section import section_of
    from runbooks.registry.targets import PROJECT

    section = section_of(inventory)
    if section.images is None:
        return None
    path = Path(section.images).expanduser()
    return str(path if path.is_absolute() else PROJECT / path)


@lru_cache(maxsize=8)
def expected(inventory_path: str, images: str | None) -> Expected:
    """The endpoint and every listed image's (repo, tag, locked digest)."""
    from runbooks.registry.plan import selection_key
    from runbooks.registry.run import Options, setup

    ready = setup(Options(inventory=inventory_path, images=images))
    key = selection_key(ready.platforms)
    rows = []
    for spec in ready.listed.images:
        locked = (ready.lock.get(str(spec.source)) or {}).get("pushed", {}).get(key)
        rows.append((spec.target_repo, spec.target_tag, locked))
    return Expected(ready.target, tuple(rows))


def head_command(want: Expected) -> str:
    """HEAD of /v2/ and of every listed manifest in one curl. It answers at once when the
    endpoint's address is not on the host yet (a fresh gateway: nothing to wait for), and
    stops at the first connection that fails (`--fail-early`, a 1 s connect timeout), so a
    registry that is not there costs about a second, not five per URL."""
    from runbooks.registry.converge import address_missing

    address = want.endpoint.rsplit(":", 1)[0].strip("[]")
    urls = [f"http://{want.endpoint}/v2/"] + [
        f"http://{want.endpoint}/v2/{repo}/manifests/{tag}" for repo, tag, _ in want.images]
    return (f"if {address_missing(address)}; then "
            f"echo {shlex.quote(address + ' is not on this host')}; exit 1; fi; "
            f"curl -s -S -I --fail-early --connect-timeout 1 -m 5 "
            f"-H {shlex.quote('Accept: ' + ACCEPT)} "
            + " ".join(shlex.quote(u) for u in urls) + " 2>&1")


def parse_heads(text: str) -> list[tuple[int, str | None]]:
    """`curl -I URL...` output -> (status, Docker-Content-Digest) per response, in order."""
    answers: list[tuple[int, str | None]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("HTTP/"):
            parts = line.split()
            answers.append((int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0,
                            None))
        elif answers and line.lower().startswith("docker-content-digest:"):
            answers[-1] = (answers[-1][0], line.split(":", 1)[1].strip())
    return answers


class _Check:
    roles = ("registry",)

    def _want(self, inventory: Inventory) -> Expected:
        return expected(str(inventory.path), demo_images(inventory))

    def facts(self, host: Host, inventory: Inventory) -> dict[str, str]:
        if inventory.registry is None or inventory.registry.host != host.name:
            return {}
        return {"registry.heads": head_command(self._want(inventory))}

    def evaluate(self, host: Host, inventory: Inventory,
                 facts: Mapping[str, FactResult]) -> list[Check]:
        if "registry.heads" not in facts:
            return []
        want = self._want(inventory)
        answers = parse_heads(facts["registry.heads"].out)
        health = answers[0][0] if answers else 0
        said = "nothing"
        if not answers and facts["registry.heads"].out.strip():
            said = f"nothing ({facts['registry.heads'].out.strip().splitlines()[-1]})"
        checks = [Check("registry", health == 200,
                             f"http://{want.endpoint}/v2/ answered {health or said}",
                             "" if health == 200 else "inv demo.reset (runs registry.up)")]
        if health != 200:
            return checks
        bad = []
        for (repo, tag, locked), (status, digest) in zip(
                want.images, answers[1:] + [(0, None)] * len(want.images), strict=False):
            if status == 404:
                bad.append(f"{repo}:{tag} missing")
            elif status != 200:
                bad.append(f"{repo}:{tag} answered {status or 'nothing'}")
            elif locked is None:
                bad.append(f"{repo}:{tag} has no locked digest (run registry.load-images "
                           "once online)")
            elif digest != locked:
                bad.append(f"{repo}:{tag} is {digest}, locked {locked}")
        total = len(want.images)
        checks.append(Check(
            "images", not bad,
            f"{total - len(bad)} of {total} listed images with the locked digest"
            + (f"; {'; '.join(bad[:4])}" + (f" (+{len(bad) - 4} more)" if len(bad) > 4 else "")
               if bad else ""),
            FIX if bad else ""))
        return checks


CHECK = _Check()
