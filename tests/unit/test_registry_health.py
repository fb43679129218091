"""The registry's health probes, run by POSIX sh (dash) with stand-in commands on PATH.

A fresh gateway (the VLAN address not yet there) must be answered at once, and only a
registry that is starting (connection refused or reset while its unit is active or
activating) is waited for: these count the curl tries and pauses each case costs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from runbooks.registry import converge
from runbooks.registry.demo_hooks import Expected, head_command

ADDRESS = "192.168.10.1"
URL = f"http://{ADDRESS}:5001"
ON_HOST = f"1: lo    inet 127.0.0.1/8 scope host lo\n3: eth1.10    inet {ADDRESS}/24 brd x\n"
OFF_HOST = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 10.0.0.2/24 brd x\n"


def run_probe(tmp_path: Path, script: str, *, addrs: str, codes: list[int],
              state: str = "active") -> tuple[subprocess.CompletedProcess[str], list[str],
                                              int]:
    """Run `script` with stand-ins on PATH; -> (result, curl calls, sleeps)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "codes").write_text("\n".join(map(str, codes)) + "\n")
    (tmp_path / "addrs").write_text(addrs)
    stubs = {
        "ip": f'cat {tmp_path}/addrs',
        # each call takes the next exit code; the last one repeats
        "curl": (f'echo "$*" >> {tmp_path}/curl.log; '
                 f'code=$(head -n1 {tmp_path}/codes); '
                 f'[ "$(wc -l < {tmp_path}/codes)" -gt 1 ] && sed -i 1d {tmp_path}/codes; '
                 '[ "$code" = 0 ] && { echo "HTTP/1.1 200 OK"; exit 0; }; '
                 'echo "curl: ($code) failed" >&2; exit "$code"'),
        "systemctl": f'echo {state}',
        "docker": f'echo {state}',
        "sleep": f'echo x >> {tmp_path}/sleeps',
    }
    for name, body in stubs.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=30)
    log = tmp_path / "curl.log"
    calls = log.read_text().splitlines() if log.exists() else []
    sleeps = tmp_path / "sleeps"
    return done, calls, len(sleeps.read_text().splitlines()) if sleeps.exists() else 0


HEALTH = converge.health_probe(URL, ADDRESS, converge.unit_running("docker-registry"))


@pytest.mark.parametrize("addrs, codes, state, rc, tries, says", [
    pytest.param(OFF_HOST, [0], "active", 1, 0, "192.168.10.1 is not on this host",
                 id="address-not-on-host-answers-at-once"),
    pytest.param(ON_HOST, [0], "active", 0, 1, "", id="answers-first-try"),
    pytest.param(ON_HOST, [7, 56, 0], "activating", 0, 3, "", id="starting-waited-for"),
    pytest.param(ON_HOST, [7], "inactive", 1, 1, "curl: (7)", id="refused-unit-stopped"),
    pytest.param(ON_HOST, [7], "failed", 1, 1, "curl: (7)", id="refused-unit-failed"),
    pytest.param(ON_HOST, [28], "active", 1, 1, "curl: (28)", id="timeout-not-retried"),
    pytest.param(ON_HOST, [22], "active", 1, 1, "curl: (22)", id="http-error-not-retried"),
    pytest.param(ON_HOST, [7], "active", 1, 12, "curl: (7)", id="refused-gives-up-after-12"),
])
def test_health_probe(tmp_path, addrs, codes, state, rc, tries, says):
    done, calls, sleeps = run_probe(tmp_path, HEALTH, addrs=addrs, codes=codes, state=state)
    assert done.returncode == rc, done
    assert len(calls) == tries
    assert sleeps == max(tries - 1, 0)  # a pause between tries, none after the last
    assert says in done.stdout
    assert all("--connect-timeout 1" in call for call in calls)


def test_health_probe_container_state(tmp_path):
    script = converge.health_probe(URL, ADDRESS, converge.container_running("reg"))
    done, calls, _ = run_probe(tmp_path, script, addrs=ON_HOST, codes=[7, 0],
                               state="restarting")
    assert done.returncode == 0 and len(calls) == 2


def test_healthy_step_reports_the_missing_address(tmp_path):
    step = converge.RegistryHealthy(URL, "true", ADDRESS, converge.unit_running("x"))
    done, calls, _ = run_probe(tmp_path, step.facts()["health"], addrs=OFF_HOST, codes=[0])
    from runbooks.core.facts import FactResult

    (change,) = step.plan({"health": FactResult(done.returncode, done.stdout)})
    assert calls == [] and "192.168.10.1 is not on this host" in change.summary


@pytest.mark.parametrize("codes, state, logs, says", [
    pytest.param([0], "active", 0, None, id="healthy-no-log-read"),
    pytest.param([7], "failed", 1, "curl: (7)", id="down-log-read-once"),
])
def test_healthy_step_reads_the_log_only_when_down(tmp_path, codes, state, logs, says):
    """One fact: the probe, and the unit's log only when it fails (a converged gateway's
    check started journalctl every time)."""
    step = converge.RegistryHealthy(URL, f"echo LOGLINE; echo x >> {tmp_path}/logs", ADDRESS,
                                    converge.unit_running("x"))
    (command,) = step.facts().values()
    done, _calls, _ = run_probe(tmp_path, command, addrs=ON_HOST, codes=codes, state=state)
    from runbooks.core.facts import FactResult

    read = tmp_path / "logs"
    assert (len(read.read_text().splitlines()) if read.exists() else 0) == logs
    changes = step.plan({"health": FactResult(done.returncode, done.stdout)})
    if says is None:
        assert changes == [] and done.returncode == 0
    else:
        (change,) = changes
        assert says in change.summary and converge.LOG_MARK not in change.summary
        assert "LOGLINE" in change.diff and done.returncode == 1


@pytest.mark.parametrize("addrs, codes, rc, tries", [
    pytest.param(OFF_HOST, [0], 1, 0, id="address-not-on-host-no-curl"),
    pytest.param(ON_HOST, [0], 0, 1, id="one-curl-for-every-url"),
])
def test_image_heads_probe(tmp_path, addrs, codes, rc, tries):
    want = Expected(f"{ADDRESS}:5001", (("a", "1", None), ("b", "2", None)))
    done, calls, _ = run_probe(tmp_path, head_command(want), addrs=addrs, codes=codes)
    assert done.returncode == rc and len(calls) == tries
    if calls:
        assert "--fail-early" in calls[0] and "/v2/b/manifests/2" in calls[0]
    else:
        assert "not on this host" in done.stdout
