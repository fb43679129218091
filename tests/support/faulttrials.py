"""One fault trial per call: a runbook's converging run on the lab, its SSH cut at a chosen
command, then every promise checked (tests/lab/test_faults*.py and bench/faults/run.py).

A `Subject` says how to bring a runbook's hosts to the state its converging run starts from
(`prepare`), how to run it (`run`, returning the report dict of `--report`), which host to
cut, and what else must survive (`intact`: the DHCP lease database, registry storage).
`trial` cuts the target at command `at` after `delay` seconds and returns an `Outcome`
whose `problems` list is empty when every promise held:

- the cut fired while the run went on, and the recap names the host unreachable or failed;
- every other host of the run finished (ok or changed);
- every file greenroom was writing holds its old or its new content (sha256), and no
  temporary file of greenroom's is left after the next run;
- the subject's own data (lease database, registry storage) is intact;
- every object of the subject's `state` (a cluster's objects) is after the cut as it was
  before the run or as it is after recovery, never a mix;
- the next run converges, and a second one changes nothing;
- what runs serves what the files say (`healthy`: a service started after its config was
  last written, so a restart the cut prevented was not forgotten).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.faultcut import (
    ABSENT,
    Injector,
    half_written,
    injected,
    leftovers,
    wait_ssh,
)

ROOT = Path(__file__).resolve().parents[2]
BAD = ("unreachable", "failed")


@dataclass
class Subject:
    """A runbook under trial on one lab."""

    name: str
    target: str
    hosts: tuple[str, ...]
    prepare: Callable[[Any], None]
    run: Callable[[Any, io.StringIO], dict[str, Any]]
    intact: Callable[[Any], list[str]] = lambda _lab: []
    healthy: Callable[[Any], list[str]] = lambda _lab: []
    # named pieces of state the run changes through a program, not files (a cluster's
    # objects), each as a digest: read before the run, after the cut and after recovery
    state: Callable[[Any], dict[str, str]] | None = None


@dataclass
class Outcome:
    """What one trial saw."""

    subject: str
    at: int | str
    delay: float
    commands: int = 0
    cut_command: str = ""
    status: str = ""
    fired: bool = False
    problems: list[str] = field(default_factory=list)
    files_checked: int = 0
    objects_checked: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per part of the trial
    text: str = ""

    @property
    def missed(self) -> bool:
        """The run ended before the cut could land (not a failure of greenroom's)."""
        return not self.fired or self.status not in BAD

    def row(self) -> dict[str, Any]:
        return {"subject": self.subject, "at": self.at, "delay": round(self.delay, 3),
                "commands": self.commands, "cut_command": self.cut_command,
                "status": self.status, "missed": self.missed, "problems": self.problems,
                "files_checked": self.files_checked,
                "objects_checked": self.objects_checked, "seconds": round(self.seconds, 1),
                "phases": {k: round(v, 1) for k, v in self.phases.items()}}


def recap_names(text: str, host: str) -> bool:
    """True when the recap's table lists `host` as unreachable or failed."""
    recap = text.rpartition("\nRECAP ")[2]
    return any(re.match(rf"{re.escape(host)}\s+(unreachable|failed)\b", line)
               for line in recap.splitlines())


def converge_run(subject: Subject, lab: Any) -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = subject.run(lab, out)
    return report, out.getvalue()


def count_commands(lab: Any, subject: Subject) -> int:
    """Prepare, then one uncut converging run: how many commands it sends the target."""
    subject.prepare(lab)
    injector = Injector(lab, subject.target)
    with injected(injector):
        report, text = converge_run(subject, lab)
    if not report.get("ok"):
        raise AssertionError(f"{subject.name}: the uncut run failed:\n{text[-3000:]}")
    return injector.count


def trial(lab: Any, subject: Subject, at: int | str, delay: float, *,
          prepared: bool = False) -> Outcome:
    """Prepare (unless done), cut the target at command `at` after `delay` s, judge."""
    started = time.monotonic()
    outcome = Outcome(subject.name, at, delay)
    clock = [started]

    def lap(name: str) -> None:
        now = time.monotonic()
        outcome.phases[name] = now - clock[0]
        clock[0] = now

    if not prepared:
        subject.prepare(lab)
    before = subject.state(lab) if subject.state else {}
    lap("prepare")
    injector = Injector(lab, subject.target, at, delay)
    with injected(injector):
        report, text = converge_run(subject, lab)
    lap("cut run")
    outcome.text = text
    outcome.commands = injector.count
    outcome.cut_command = injector.cut.command
    outcome.fired = injector.cut.fired
    hosts = report.get("hosts", {})
    outcome.status = str(hosts.get(subject.target, {}).get("status", "missing"))
    problems = outcome.problems
    if outcome.missed:
        # the run ended before the cut: nothing to judge about the cut itself, but the
        # run must then have been a good one
        if outcome.status in BAD:
            problems.append(f"{subject.target} ended {outcome.status} with no cut: "
                            f"{hosts[subject.target].get('error')}")
    elif not recap_names(text, subject.target):
        problems.append(f"the recap does not name {subject.target} unreachable or failed")
    for name in subject.hosts:
        if name != subject.target and hosts.get(name, {}).get("status") not in (
                "ok", "changed"):
            problems.append(f"other host {name} ended {hosts.get(name, {}).get('status')}: "
                            f"{hosts.get(name, {}).get('error')}")
    if not wait_ssh(lab, subject.target, 90):
        problems.append(f"{subject.target} does not answer SSH after the cut")
        outcome.seconds = time.monotonic() - started
        return outcome
    lap("ssh back")
    outcome.files_checked = len({w.path for w in injector.writes})
    problems += half_written(lab, subject.target, injector.writes)
    problems += [f"after the cut: {p}" for p in subject.intact(lab)]
    cut_state = subject.state(lab) if subject.state else {}
    lap("judge")
    again, text2 = converge_run(subject, lab)
    lap("next run")
    if not again.get("ok"):
        bad = {n: h.get("error") for n, h in again.get("hosts", {}).items()
               if h.get("status") in BAD}
        problems.append(f"the next run did not converge: {json.dumps(bad)[:1500]}")
    else:
        third, text3 = converge_run(subject, lab)
        changed = {n: [s["name"] for s in h.get("steps", []) if s.get("status") == "changed"]
                   for n, h in third.get("hosts", {}).items() if h.get("changed")}
        if not third.get("ok") or changed:
            problems.append(f"the second run after recovery changed {json.dumps(changed)}")
        lap("second run")
        if subject.state:
            outcome.objects_checked = len(set(before) | set(cut_state))
            problems += torn(before, cut_state, subject.state(lab))
    problems += [f"left behind: {p}" for p in leftovers(lab, subject.target, injector.writes)]
    problems += [f"after recovery: {p}" for p in subject.intact(lab)]
    problems += [f"after recovery: {p}" for p in subject.healthy(lab)]
    lap("judge after")
    outcome.seconds = time.monotonic() - started
    return outcome


def torn(before: dict[str, str], cut: dict[str, str], after: dict[str, str]) -> list[str]:
    """The objects whose digest after the cut is neither the one before the run nor the one
    after recovery (a missing object counts as "absent" on each side)."""
    return [f"{key}: after the cut neither as before the run ({before.get(key, ABSENT)[:12]}) "
            f"nor as after recovery ({after.get(key, ABSENT)[:12]}) but "
            f"{cut.get(key, ABSENT)[:12]}"
            for key in sorted(set(before) | set(cut) | set(after))
            if cut.get(key, ABSENT) not in (before.get(key, ABSENT), after.get(key, ABSENT))]


# -- what must survive ----------------------------------------------------------------------

def sh(lab: Any, host: str, command: str, timeout: float = 120) -> str:
    done = lab.exec(host, command, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{host}: {command}: {done.stdout}{done.stderr}")
    return done.stdout


LEASES = "/var/lib/dhcp/dhcpd.leases"
SEEDED_LEASES = ("192.168.10.90", "192.168.10.91")


def seed_leases(lab: Any, host: str) -> None:
    """Two live leases in the running dhcpd's database (stopped, written, started: dhcpd
    keeps the leases of its pool and rewrites the file)."""
    blocks = "".join(
        f"lease {ip} {{\n  starts 4 2026/11/26 10:00:00;\n  ends 4 2036/11/26 10:00:00;\n"
        f"  binding state active;\n  hardware ethernet 02:00:00:00:00:{ip[-2:]};\n"
        f'  client-hostname "seeded-{ip[-2:]}";\n}}\n' for ip in SEEDED_LEASES)
    text = "# The format of this file is documented in the dhcpd.leases(5) manual page.\n" + blocks
    done = lab.exec(host, f"systemctl stop isc-dhcp-server && cat > {LEASES} && "
                          "systemctl start isc-dhcp-server", stdin=text)
    if done.returncode != 0:
        raise AssertionError(done.stderr)


def leases_intact(lab: Any, host: str) -> list[str]:
    """The seeded leases are still in the database and the file ends with a whole block."""
    done = lab.exec(host, f"cat {LEASES}")
    if done.returncode != 0:
        return [f"{LEASES} is gone"]
    text = done.stdout
    problems = [f"{LEASES} lost the lease of {ip}" for ip in SEEDED_LEASES
                if f"lease {ip} {{" not in text]
    if text.count("{") != text.count("}"):
        problems.append(f"{LEASES} ends in the middle of a lease block")
    return problems


REGISTRY_STORAGE = "/var/lib/docker-registry"
BLOBS = f"{REGISTRY_STORAGE}/docker/registry/v2/blobs/sha256"


def seed_registry_storage(lab: Any, host: str) -> str:
    """An image (one layer, a config, an OCI manifest) laid out in the registry's storage
    as the distribution registry keeps it; returns the manifest digest."""
    import hashlib

    layer = b"greenroom fault campaign layer\n"
    config = json.dumps({"architecture": "arm64", "os": "linux"}).encode()

    def desc(media: str, data: bytes) -> dict[str, Any]:
        return {"mediaType": media, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                "size": len(data)}

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", layer)]}).encode()
    repo = f"{REGISTRY_STORAGE}/docker/registry/v2/repositories/lab/faults"
    lines = ["set -e"]
    for blob in (layer, config, manifest):
        digest = hashlib.sha256(blob).hexdigest()
        folder = f"{BLOBS}/{digest[:2]}/{digest}"
        lines.append(f"mkdir -p {folder} && printf %s {shlex.quote(blob.decode())} "
                     f"> {folder}/data")
    for blob in (layer, config):
        digest = hashlib.sha256(blob).hexdigest()
        lines.append(f"mkdir -p {repo}/_layers/sha256/{digest} && "
                     f"printf sha256:{digest} > {repo}/_layers/sha256/{digest}/link")
    digest = hashlib.sha256(manifest).hexdigest()
    lines.append(f"mkdir -p {repo}/_manifests/revisions/sha256/{digest} "
                 f"{repo}/_manifests/tags/v1/current {repo}/_manifests/tags/v1/index/sha256/"
                 f"{digest}")
    for link in (f"_manifests/revisions/sha256/{digest}/link", "_manifests/tags/v1/current/link",
                 f"_manifests/tags/v1/index/sha256/{digest}/link"):
        lines.append(f"printf sha256:{digest} > {repo}/{link}")
    sh(lab, host, "\n".join(lines))
    return "sha256:" + digest


def storage_intact(lab: Any, host: str) -> list[str]:
    """Every blob in the registry's storage hashes to its name, the seeded one included."""
    done = lab.exec(host, f"cd {BLOBS} 2>/dev/null && for d in */*; do "
                          'echo "${d#*/}  $d/data"; done | sha256sum -c --quiet - 2>&1; '
                          f"ls {BLOBS}/*/ 2>/dev/null | grep -c . || true")
    problems = [line for line in done.stdout.splitlines()[:-1] if "FAILED" in line or
                "No such" in line]
    count = int((done.stdout.split() or ["0"])[-1])
    if count < 3:
        problems.append(f"registry storage holds {count} blob(s), 3 were seeded")
    return problems


def started_after(lab: Any, host: str, unit: str, *files: str) -> list[str]:
    """The unit runs, and it last became active after each existing file's last write
    (else a restart a cut prevented was forgotten: it serves an old config)."""
    quoted = " ".join(shlex.quote(f) for f in files)
    script = (f"systemctl is-active -q {shlex.quote(unit)} || {{ echo inactive; exit; }}; "
              f"started=$(date -d \"$(systemctl show -p ActiveEnterTimestamp --value "
              f"{shlex.quote(unit)})\" +%s); for f in {quoted}; do [ -e \"$f\" ] || continue; "
              '[ "$(stat -c %Y "$f")" -le "$started" ] || echo "$f"; done')
    out = lab.exec(host, script).stdout.split()
    if out == ["inactive"]:
        return [f"{host}: {unit} is not running"]
    return [f"{host}: {unit} started before {path} was last written (a restart was lost)"
            for path in out]
