"""The lab's apt proxy keeps packages once per machine: a second install, in another guest,
fetches nothing from the mirror."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab

INSTALL = ("apt-get purge -y -q tree >/dev/null 2>&1; apt-get clean; "
           "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tree "
           "&& tree --version")


def _log_from(lab, offset: int) -> list[str]:
    text = (lab.state_dir / "aptproxy.log").read_bytes()[offset:].decode(errors="replace")
    return text.splitlines()


def test_a_second_install_in_another_guest_is_served_from_the_cache(lab):
    log = lab.state_dir / "aptproxy.log"
    first = lab.exec("rp0", INSTALL, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    first_lines = _log_from(lab, 0)
    assert any("/pool/" in line and "/tree_" in line and
               ("cache store" in line or "cache hit" in line) for line in first_lines), \
        "\n".join(first_lines[-20:])

    offset = log.stat().st_size
    second = lab.exec("rp1", INSTALL, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    lines = _log_from(lab, offset)
    upstream = [line for line in lines if line.startswith("aptproxy: upstream ")]
    hits = [line for line in lines if line.startswith("aptproxy: cache hit ")]
    assert upstream == []
    assert any("/tree_" in line for line in hits), "\n".join(lines)
