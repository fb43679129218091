"""demo.reset on the virtual lab when the venue misbehaves (after test_demo.py's converge):

1. Offline: the lab's upstream link down, demo.reset still ends GO (a drifted clock stepped
   and an image deleted from the registry pushed back from the local layout on the way), and
   so does demo.reset --from-scratch; nothing was asked of the upstream, of the lab's apt
   proxy (the guests' other way out) nor of its release site (k3s's and MetalLB's downloads).
2. A host that stays unreachable (its sshd stopped) -> NO-GO naming only it, while another
   host's drift is still fixed.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from runbooks.core.keep_client import drop_addresses
from runbooks.demo import history
from runbooks.demo.tasks import reset
from tests.lab.test_demo import IMAGE, LOCK, OFFSET, REGISTRY, call, changed, failing, sh

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def converged(lab, tmp_path_factory):
    """The lab after one demo.reset (a no-op after test_demo.py), history in a temp dir."""
    tmp = tmp_path_factory.mktemp("demo-offline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(history, "state_dir", lambda: tmp / "history")
        code, data = call(reset, tmp, "converge")
        assert code == 0 and data["ok"], failing(data)
        yield lab


def test_offline_reset_ends_go(converged, tmp_path):
    lab = converged
    ns = lab.plan.upstream_ns
    seen = len(lab.upstream_log())
    # the guests' apt proxy and the lab's release site (k3s, MetalLB): the other ways out
    logs = {name: lab.state_dir / name for name in ("aptproxy.log", "release.log")}
    sizes = {name: log.stat().st_size if log.exists() else 0 for name, log in logs.items()}
    sh(lab, "rp1", f"mkdir -p {OFFSET.rsplit('/', 1)[0]} && echo 120 > {OFFSET}")
    digest = json.loads(LOCK.read_text())["images"][IMAGE]["pushed"]["linux/arm64"]
    sh(lab, "dell", f"curl -sf -X DELETE {REGISTRY}/v2/lab/hello/manifests/{digest}")
    subprocess.run(["ip", "-n", ns, "link", "set", "br0", "down"], check=True)
    try:
        code, data = call(reset, tmp_path, "offline")
        scratch_code, scratch = call(reset, tmp_path, "offline-scratch", from_scratch=True)
    finally:
        subprocess.run(["ip", "-n", ns, "link", "set", "br0", "up"], check=True)
    assert code == 0 and data["ok"] is True, failing(data)
    assert ("clocks", "rp1") in changed(data)
    assert ("demo.images", "dell") in changed(data)  # pushed from the local layout
    assert scratch_code == 0 and scratch["ok"] is True, failing(scratch)
    assert scratch["command"] == "demo.reset --from-scratch"
    assert len(lab.upstream_log()) == seen
    for name, log in logs.items():
        asked = log.read_bytes()[sizes[name]:].decode(errors="replace") if log.exists() else ""
        assert asked == "", f"{name}: {asked}"


def test_unreachable_host_is_named_while_others_are_reset(converged, tmp_path):
    lab = converged
    sh(lab, "rp0", f"mkdir -p {OFFSET.rsplit('/', 1)[0]} && echo -600 > {OFFSET}")
    sh(lab, "lp0", "systemctl stop ssh.socket ssh.service 2>/dev/null; "
                   "systemctl stop ssh; true")
    # a kept connection (on by default) outlives a stopped sshd, as with ControlPersist, so
    # lp0 would still answer: close it, as `inv ssh.close` would, so the reset must log in
    drop_addresses([lab.inventory.hosts["lp0"].address])
    try:
        code, data = call(reset, tmp_path, "unreachable")
    finally:
        sh(lab, "lp0", "systemctl start ssh")
    assert code == 1 and data["ok"] is False
    assert ("lp0", "demo", "reachable") in failing(data)
    assert {h for h, _s, _n in failing(data)} == {"lp0"}
    assert ("clocks", "rp0") in changed(data)
