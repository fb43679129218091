"""Secrets audit: runbooks run with known secret values, then every byte greenroom produced
is searched for them (as is and base64-encoded at any alignment): stdout and stderr (at the
file-descriptor level, children included), the --report files, the timing history, `ps`
snapshots of this machine and of the guests taken all through the runs, the guests'
journals and /var/log, and every file the guests changed (their overlay's upper layer),
where a secret may only sit in a file of mode 0600.

Runs: on the k3s site router, dell-gateway, registry.up, pi-prep, k3s, metallb, demo.check
and demo.reset (each with --report; the demo's timing history); on hosts/lab-xen.yaml
xen-dom0.converge (with its reboot into Xen), demo.reset, demo.check, xen-dom0.check and
xen-dom0.leases; microk8s on hosts/lab-microk8s.yaml; registry.load-images; pi-prep.flash.

Secrets: a sudo password (every host of the site is reached as a non-root user with sudo:
the router, the k3s nodes that metallb.converge and demo.check also use, the gateway whose
registry k3s pushes to, the xen dom0), MetalLB's BGP password
(written into the router's FRR config), the k3s token (made by the server, handed to the
agents), the microk8s join tokens (single-use, issued by the seed; hosts/lab-microk8s.yaml)
registry credentials (registry.load-images from a loopback registry that wants them) and
the password `pi-prep.flash --password` hashes onto a card (GREENROOM_FLASH_PASSWORD; a loop
device, no lab). Every value greenroom registers as a secret during the runs is searched for
too, and so are the environments of every process on this machine and in the guests while
the runs go on (a secret handed to a child in its environment), except the variables the
operator gave the secrets in, in the operator's own process.

The first tests are the negative controls: the search finds a secret that leaks, in any
of its forms, so a clean audit means something; the xen-dom0 part has its own, on its dom0
(a value planted in the journal, a 0644 file, a guest's ps and environment is found; in a
0600 file it is not).

One known exposure is not greenroom's to fix and is set aside by name (JOIN_ARGV): the real
`microk8s join` takes its token only as an argument, so the token is in that one process's
command line on the joining node while it runs (greenroom hands it over on stdin and a shell
builtin puts it there; the token is single-use and spent by the seed during that join). Only
that exact command line, on a joining node, is set aside; the token anywhere else, in any
other command line or on any other host, fails the audit.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from runbooks.core import secrets as secrets_mod
from tests.lab.conftest import LabHandle, lab_skip_reason, lab_up
from tests.support.faultsubjects import k3s_inventory
from tests.support.secretaudit import (
    Exposure,
    PsSampler,
    changed_files,
    environment_hits,
    hits,
    journal,
    needles,
    set_aside,
    set_aside_given,
)

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]

SUDO_PASSWORD = "Audit-sudo-5e1d9c04"
BGP_PASSWORD = "Audit-bgp-8a2f7e61"
REGISTRY_USER, REGISTRY_PASSWORD = "auditor", "Audit-registry-3c6b4d27"
BOARDS = ("rp0", "rp1", "lp0")
MK8S_SEED, MK8S_JOINING = "mk0", ("mk1", "mk2")

# The known upstream exposure (reported upstream as blocked; see the module's docstring).
JOIN_ARGV = Exposure(
    "microk8s join takes its token only in argv (upstream)", frozenset(MK8S_JOINING),
    # at most two words before it (an interpreter, its wrapper), none of them a shell's -c
    re.compile(rb"(?:(?!-c )\S+ ){0,2}?\S*microk8s\S* (?:microk8s )?join "
               rb"\d+\.\d+\.\d+\.\d+:25000/[0-9a-f]{32}/[0-9a-f]+(?: --worker)?"),
    "`microk8s join ADDRESS/TOKEN` has no stdin or file form for the token")


# -- negative controls: the search can fail --------------------------------------------------

@pytest.mark.parametrize("form", ["plain", "base64-0", "base64-1", "base64-2"])
def test_search_finds_a_leaked_secret_in_any_form(form):
    secret = "Leaky-secret-0042"
    if form == "plain":
        leaked = f"log line: token={secret} end".encode()
    else:
        pad = int(form[-1])
        leaked = b"data: " + base64.b64encode(b"x" * pad + f"user:{secret}\n".encode())
    assert hits({"stdout": leaked, "clean": b"nothing here"}, {"token": secret}) == [
        "stdout: token"]


def test_search_ignores_what_only_looks_alike():
    assert hits({"out": b"Leaky-secret-004 and ********"}, {"token": "Leaky-secret-0042"}) == []
    assert all(len(n) >= 8 for n in needles("Leaky-secret-0042"))


def test_environments_of_other_processes_are_searched():
    """Negative control: a child handed a secret in its environment is found, though the
    same variable in the operator's own process is set aside."""
    secret = "Leaky-environ-0042"
    with PsSampler(None, ()) as ps, subprocess.Popen(
            ["sleep", "0.5"], env={"PATH": os.environ["PATH"], "GIVEN": secret}) as child:
        child.wait()
    blob = ps.blobs()["environments in /proc"]
    assert f"\t{child.pid}\tsleep\tGIVEN={secret}".encode() in blob
    assert environment_hits(blob, {"secret": secret}) == [
        f"{os.uname().nodename} sleep ({child.pid}): GIVEN holds secret"]
    assert hits({"env": set_aside_given(blob, [os.getpid()], ["GIVEN"])},
                {"secret": secret}) == ["env: secret"]
    assert hits({"env": set_aside_given(blob, [child.pid], ["GIVEN"])},
                {"secret": secret}) == []
    assert hits({"env": set_aside_given(blob, [child.pid], ["OTHER"])},
                {"secret": secret}) == ["env: secret"]


TOKEN = "0123456789abcdef" * 2 + "/" + "fedcba98"
SET_ASIDE = [
    # (where the line is, the line, set aside?)
    ("ps in mk1", f"/snap/bin/microk8s join 192.168.30.3:25000/{TOKEN}", True),
    ("ps in mk2", f"microk8s join 192.168.30.3:25000/{TOKEN} --worker", True),
    ("ps in mk1", f"/bin/sh /usr/local/bin/microk8s join 192.168.30.3:25000/{TOKEN}", True),
    ("ps in mk1", "/usr/bin/python3 /usr/local/lib/greenroom-double/microk8s.py microk8s "
                  f"join 192.168.30.3:25000/{TOKEN}", True),
    ("command lines in /proc", f"mk1\tmicrok8s join 192.168.30.3:25000/{TOKEN}", True),
    ("ps in mk0", f"microk8s join 192.168.30.3:25000/{TOKEN}", False),
    ("command lines in /proc", f"mk0\tmicrok8s join 192.168.30.3:25000/{TOKEN}", False),
    ("command lines in /proc", f"?\tmicrok8s join 192.168.30.3:25000/{TOKEN}", False),
    ("ps in mk1", f"sh -c microk8s join 192.168.30.3:25000/{TOKEN}", False),
    ("ps in mk1", f"bash -c 'microk8s join 192.168.30.3:25000/{TOKEN}'", False),
    ("ps in mk1", f"microk8s join 192.168.30.3:25000/{TOKEN} && echo {TOKEN}", False),
    ("ps in mk1", f"curl -d {TOKEN} http://192.168.30.3:25000/", False),
    ("stdout", f"microk8s join 192.168.30.3:25000/{TOKEN}", False),
]


@pytest.mark.parametrize(("place", "line", "aside"), SET_ASIDE,
                         ids=["join-on-mk1", "worker-join-on-mk2", "wrapper-join",
                              "interpreter-join", "join-in-proc-scan",
                              "join-on-the-seed", "seed-in-proc-scan", "unknown-host",
                              "join-in-a-shell", "join-in-bash", "join-and-more", "other-command",
                              "not-a-ps-blob"])
def test_only_the_named_exposure_is_set_aside(place, line, aside):
    """Negative controls of the exception: the join's own argv on a joining node, nothing
    else, is taken out of the search."""
    blobs = {place: b"other\n" + line.encode() + b"\n"}
    kept, named = set_aside(blobs, [JOIN_ARGV])
    leaks = hits(kept, {"join token": TOKEN})
    if aside:
        assert leaks == [] and len(named) == 1 and named[0].startswith(JOIN_ARGV.name)
    else:
        assert leaks == [f"{place}: join token"] and named == []


# -- the audit ------------------------------------------------------------------------------

def call(name: str, verdicts: tuple[int, ...] = (0,), **options: Any) -> None:
    """Run the Invoke task `name` in this process as the CLI would; an Exit code outside
    `verdicts` fails the test."""
    import tasks as root

    task = root.ns[name]
    params = inspect.signature(task.body).parameters
    kwargs = {k: p.default for k, p in params.items()
              if k != "c" and p.default is not inspect.Parameter.empty}
    kwargs.update(options)
    try:
        task(Context(), **kwargs)
    except Exit as exc:
        if (exc.code or 0) not in verdicts:
            raise AssertionError(f"{name} exited {exc.code}: {exc.message}") from None


@pytest.fixture
def registered(monkeypatch):
    """Every value greenroom registers as a secret while the test runs."""
    seen: set[str] = set()
    original = secrets_mod.register

    def register(value: str | None) -> None:
        if value and len(value) >= 3:
            seen.add(value)
        original(value)

    monkeypatch.setattr(secrets_mod, "register", register)
    return seen


SUDO_USER = (
    "{ id ubuntu >/dev/null 2>&1 || useradd -m -s /bin/sh ubuntu; } && "
    f"echo 'ubuntu:{SUDO_PASSWORD}' | chpasswd && "
    "echo 'ubuntu ALL=(ALL) ALL' > /etc/sudoers.d/ubuntu && chmod 440 /etc/sudoers.d/ubuntu && "
    "mkdir -p /home/ubuntu/.ssh && cp /root/.ssh/authorized_keys /home/ubuntu/.ssh/ && "
    "chown -R ubuntu: /home/ubuntu/.ssh"
)


NO_SUDO_USER = "userdel -r ubuntu 2>/dev/null; rm -f /etc/sudoers.d/ubuntu"
SUDO_HOSTS = ("dell", "edge", *BOARDS)  # every host the audited runs reach


def audit_inventory(folder: Path) -> Path:
    """The k3s lab site, every host reached as `ubuntu` with sudo, a BGP password."""
    path = k3s_inventory(folder)
    text = path.read_text()
    text = text.replace("  peers: [edge]\n",
                        "  peers: [edge]\n  password: {env: GREENROOM_BGP_PASSWORD}\n", 1)
    text = text.replace("\ndefaults: {user: root,", "\ndefaults: {user: ubuntu,", 1)
    assert "GREENROOM_BGP_PASSWORD" in text and "defaults: {user: ubuntu," in text
    path.write_text(text)
    return path


def search_everything(lab: LabHandle, hosts: tuple[str, ...], produced: dict[str, bytes],
                      known: dict[str, str]) -> list[str]:
    """Hits in what the runs produced, the guests' journals, and the files the guests
    changed unless they are 0600."""
    blobs = dict(produced)
    for host in hosts:
        blobs[f"journal of {host}"] = journal(lab, host)
    found = hits(blobs, known)
    for host in hosts:
        for path, (mode, data) in changed_files(lab, host).items():
            if path == CLUSTER_DATASTORE:
                continue  # the cluster's, not greenroom's: asserted to hold the Secret
            for name in [n for n in hits({path: data}, known)]:
                if mode != "600":
                    found.append(f"{host}:{name} (mode {mode}, not 0600)")
    return found


# Where the k3s (double's) API server keeps the cluster's objects: `inv metallb` asks the
# cluster to keep the BGP password as a Secret, so it is there by design, written by the
# cluster, not by greenroom (the test asserts it arrived there).
CLUSTER_DATASTORE = "/var/lib/rancher/k3s/server/db/state.json"


def keep_lab_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's own state stays where it is when XDG_STATE_HOME moves (for the history)."""
    from runbooks.lab.access import state_root

    monkeypatch.setenv("GREENROOM_LAB_STATE", str(state_root()))


def audited_run_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """Everything the audited runs write on this machine goes under tmp_path, to be searched:
    the timing history (state), the cache and the kubeconfig; the sudo password is given as
    the operator gives it. Returns (state, reports)."""
    state, reports = tmp_path / "state", tmp_path / "reports"
    monkeypatch.setenv("GREENROOM_SUDO_PASSWORD", SUDO_PASSWORD)
    keep_lab_state(monkeypatch)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    reports.mkdir()
    return state, reports


def read_tree(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def machine_files(folder: Path, known: dict[str, str]) -> list[str]:
    """Hits in the files the runs wrote on this machine that are not 0600 (a kubeconfig,
    which holds the cluster's admin credentials, is; reports and history must hold none)."""
    found = []
    for path, data in read_tree(folder).items():
        mode = f"{Path(path).stat().st_mode & 0o777:o}"
        found += [f"{name} (mode {mode}, not 0600)" for name in hits({path: data}, known)
                  if mode != "600"]
    return found


@pytest.fixture
def sudo_users(lab):
    """`ubuntu` with a sudo password on every audited host; gone again from the gateway
    after the test (the boards and the router are reset by the next test that uses them)."""
    for name in (*BOARDS, "edge"):
        lab.reset(name)
    for name in SUDO_HOSTS:
        done = lab.exec(name, SUDO_USER)
        assert done.returncode == 0, f"{name}: {done.stderr}"
    yield
    lab.exec("dell", NO_SUDO_USER)


def test_every_runbook_on_the_site_leaks_nothing(lab, sudo_users, tmp_path, monkeypatch,
                                                       capfd, registered):
    inventory = str(audit_inventory(tmp_path))
    state, reports = audited_run_dirs(monkeypatch, tmp_path)
    monkeypatch.setenv("GREENROOM_BGP_PASSWORD", BGP_PASSWORD)
    with PsSampler(lab, SUDO_HOSTS) as ps:
        call("router.converge", inventory=inventory, report=str(reports / "router.json"))
        call("dell-gateway.converge", inventory=inventory,
             report=str(reports / "dell-gateway.json"))
        call("registry.up", inventory=inventory, report=str(reports / "registry.json"))
        call("pi-prep.converge", inventory=inventory, report=str(reports / "pi-prep.json"))
        call("k3s.converge", inventory=inventory, report=str(reports / "k3s.json"))
        call("metallb.fetch", inventory=inventory)
        call("metallb.converge", inventory=inventory, report=str(reports / "metallb.json"))
        # NO-GO (the gateway is not converged here): run for its screen and timing history
        call("demo.check", (0, 1), inventory=inventory, report=str(reports / "demo.json"))
        # and the reset before a talk: every runbook converged again, the site's reset steps
        call("demo.reset", (0, 1), inventory=inventory, report=str(reports / "reset.json"))
    out, err = capfd.readouterr()
    assert ps.snapshots > 10
    token = lab.exec("rp0", "cat /var/lib/rancher/k3s/server/token").stdout.strip()
    assert token.count(":") >= 2, token
    known = {"sudo password": SUDO_PASSWORD, "BGP password": BGP_PASSWORD,
             "k3s token": token, "k3s token's password": token.rpartition(":")[2]}
    known |= {f"registered secret {n}": v for n, v in enumerate(sorted(registered))}
    produced = {"stdout": out.encode(), "stderr": err.encode(), **ps.blobs()}
    produced["environments in /proc"] = set_aside_given(
        produced["environments in /proc"], [os.getpid()],
        ["GREENROOM_SUDO_PASSWORD", "GREENROOM_BGP_PASSWORD"])
    assert list(state.rglob("*.jsonl")), "no timing history was written"
    # the runs did what they were run for (the secrets travelled where they should), each
    # through sudo with the password
    for name in ("router", "dell-gateway", "registry", "pi-prep", "k3s", "metallb"):
        assert json.loads((reports / f"{name}.json").read_text())["ok"] is True, name
    for name in SUDO_HOSTS:  # as ubuntu, through sudo
        logged = lab.exec(name, "journalctl --no-pager -q _COMM=sudo").stdout
        assert "ubuntu : " in logged and "COMMAND=" in logged, f"{name}: no sudo by ubuntu"
    assert json.loads((reports / "metallb.json").read_text())["ok"] is True
    assert BGP_PASSWORD in lab.exec("edge", "cat /etc/frr/frr.conf").stdout
    assert BGP_PASSWORD in lab.exec("rp0", f"cat {CLUSTER_DATASTORE}").stdout, \
        "MetalLB's Secret did not reach the cluster"
    # demo.reset ran the lab's speaker double too: its bird.conf holds the password, 0600
    for name in BOARDS:
        conf = lab.exec(name, "stat -c '%a %U' /etc/bird/bird.conf && "
                              "systemctl is-active bird && cat /etc/bird/bird.conf").stdout
        assert conf.startswith("600 bird\nactive\n") and BGP_PASSWORD in conf, name
    joined = lab.exec("rp1", "cat /etc/rancher/k3s/join-token").stdout
    assert token in joined or token.rpartition(":")[2] in joined
    # and every file the runs wrote on this machine: reports, timing history, cache, kubeconfig
    found = search_everything(lab, SUDO_HOSTS, produced, known) + machine_files(
        tmp_path, known) + environment_hits(produced["environments in /proc"], known)
    assert found == [], "\n".join(found)


@pytest.fixture(scope="module")
def mlab():
    """hosts/lab-microk8s.yaml brought up for the join-token audit, taken down after it."""
    with lab_up(ROOT / "hosts" / "lab-microk8s.yaml") as handle:
        yield handle


def test_microk8s_join_tokens_leak_nothing(mlab, tmp_path, monkeypatch, capfd, registered):
    """Zero hits but JOIN_ARGV: the join's own command line on the joining node. The nodes
    are reached as a non-root user with a sudo password (`auditor`: the site removes the
    image's ubuntu user), so the sudo password is searched for too."""
    nodes = (MK8S_SEED, *MK8S_JOINING)
    for name in nodes:
        mlab.reset(name)
        done = mlab.exec(name, SUDO_USER.replace("ubuntu", "auditor"))
        assert done.returncode == 0, f"{name}: {done.stderr}"
    text = (ROOT / "hosts" / "lab-microk8s.yaml").read_text()
    inventory = tmp_path / "lab-microk8s.yaml"
    inventory.write_text(text.replace("\ndefaults: {user: root,", "\ndefaults: {user: auditor,",
                                      1))
    assert "user: auditor" in inventory.read_text()
    monkeypatch.setenv("GREENROOM_SUDO_PASSWORD", SUDO_PASSWORD)
    keep_lab_state(monkeypatch)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    with PsSampler(mlab, nodes) as ps:
        call("microk8s.converge", inventory=str(inventory),
             report=str(tmp_path / "microk8s.json"))
    out, err = capfd.readouterr()
    tokens = {f"join token {n}": v for n, v in enumerate(sorted(registered))
              if v != SUDO_PASSWORD}
    assert len(tokens) >= 2, "the two joining nodes were given no token"
    tokens["sudo password"] = SUDO_PASSWORD
    assert json.loads((tmp_path / "microk8s.json").read_text())["ok"] is True
    produced = {"stdout": out.encode(), "stderr": err.encode(), **ps.blobs()}
    produced["environments in /proc"] = set_aside_given(
        produced["environments in /proc"], [os.getpid()], ["GREENROOM_SUDO_PASSWORD"])
    produced, exposed = set_aside(produced, [JOIN_ARGV])
    print(f"set aside ({len(exposed)} command lines):", *exposed, sep="\n  ")
    found = search_everything(mlab, nodes, produced, tokens) + machine_files(tmp_path, tokens)
    assert found == [], "\n".join(found)


XEN_INVENTORY = ROOT / "hosts" / "lab-xen.yaml"
DOM0 = "xen0"


@pytest.fixture(scope="module")
def xlab():
    """hosts/lab-xen.yaml brought up for the xen-dom0 audit, taken down after it."""
    with lab_up(XEN_INVENTORY) as handle:
        yield handle


def xen_audit_inventory(folder: Path) -> Path:
    """hosts/lab-xen.yaml with its dom0 reached as `ubuntu` with sudo."""
    path = folder / "lab-xen.yaml"
    path.write_text(XEN_INVENTORY.read_text().replace("\ndefaults: {user: root,",
                                                      "\ndefaults: {user: ubuntu,", 1))
    assert "defaults: {user: ubuntu," in path.read_text()
    return path


XEN_LEAK = "Leaky-xen-7c41d2e9"


def test_the_xen_search_finds_what_leaks_on_the_dom0(xlab, tmp_path):
    """Negative control of the xen-dom0 audit, on its own lab's dom0 (a systemd guest that
    reboots): a value leaked into the journal, into a changed file of mode 0644, into a
    process's command line or environment in the guest is found; the same value in a file
    of mode 0600 is not (the one place a secret may sit)."""
    xlab.reset(DOM0)
    leak = XEN_LEAK
    with PsSampler(xlab, (DOM0,)) as ps:
        plant = xlab.exec(DOM0, f"logger -t greenroom-audit 'token={leak}' && "
                                f"install -m 644 /dev/null /etc/default/leaky.cfg && "
                                f"echo 'K={leak}' > /etc/default/leaky.cfg && "
                                f"install -m 600 /dev/null /etc/default/kept.cfg && "
                                f"echo 'K={leak}' > /etc/default/kept.cfg && "
                                f"sh -c 'sleep 1' {leak} && env LEAKED={leak} sleep 1")
        assert plant.returncode == 0, plant.stderr
    produced = ps.blobs()
    found = search_everything(xlab, (DOM0,), {k: v for k, v in produced.items()
                                              if k != "environments in /proc"},
                              {"leak": leak})
    assert f"journal of {DOM0}: leak" in found
    assert f"{DOM0}:/etc/default/leaky.cfg: leak (mode 644, not 0600)" in found
    assert not [f for f in found if "kept.cfg" in f]
    # the guest's own ps and this machine's /proc scan each saw the leaked command line
    # (as ps shows it, not as the planting command wrote it, quotes and all)
    assert f"sh -c sleep 1 {leak}".encode() in produced[f"ps in {DOM0}"]
    assert f"{DOM0}\tsh -c sleep 1 {leak}".encode() in produced["command lines in /proc"]
    assert f"ps in {DOM0}: leak" in found and "command lines in /proc: leak" in found
    assert [h for h in environment_hits(produced["environments in /proc"], {"leak": leak})
            if h.startswith(f"{DOM0} sleep ") and "LEAKED holds leak" in h]


def test_xen_dom0_leaks_nothing(xlab, tmp_path, monkeypatch, capfd, registered):
    """xen-dom0.converge (packages, GRUB, bridges, dnsmasq, NAT, its reboot into Xen), then
    demo.reset and demo.check on the xen site (their --report files and the demo's timing
    history), xen-dom0.check and xen-dom0.leases, the dom0 reached as `ubuntu` with a sudo
    password. xen-dom0 handles no credential of its own (its vars hold none; read
    runbooks/common/schema/xen_dom0.py): the sudo password and every value registered as a
    secret during the runs are searched for."""
    xlab.reset(DOM0)
    done = xlab.exec(DOM0, SUDO_USER)
    assert done.returncode == 0, f"{DOM0}: {done.stderr}"
    inventory = str(xen_audit_inventory(tmp_path))
    state, reports = audited_run_dirs(monkeypatch, tmp_path)
    boot = xlab.exec(DOM0, "cat /proc/sys/kernel/random/boot_id").stdout
    with PsSampler(xlab, (DOM0,)) as ps:
        call("xen-dom0.converge", inventory=inventory, report=str(reports / "xen-dom0.json"))
        call("demo.reset", (0, 1), inventory=inventory, report=str(reports / "reset.json"))
        call("demo.check", (0, 1), inventory=inventory, report=str(reports / "check.json"))
        call("xen-dom0.check", (0, 1), inventory=inventory)
        call("xen-dom0.leases", inventory=inventory)
    out, err = capfd.readouterr()
    assert ps.snapshots > 10
    # the runs did what they were run for, through sudo as ubuntu, with the reboot
    assert json.loads((reports / "xen-dom0.json").read_text())["ok"] is True
    assert all(json.loads((reports / f"{name}.json").read_text())
               for name in ("reset", "check"))
    assert xlab.exec(DOM0, "cat /proc/sys/kernel/random/boot_id").stdout != boot
    assert "dom0_mem=1024M" in xlab.exec(DOM0, "xl info").stdout
    logged = xlab.exec(DOM0, "journalctl --no-pager -q _COMM=sudo").stdout
    assert "ubuntu : " in logged and "COMMAND=" in logged, f"{DOM0}: no sudo by ubuntu"
    assert len(list(state.rglob("*.jsonl"))) == 1, "no timing history was written"
    known = {"sudo password": SUDO_PASSWORD}
    known |= {f"registered secret {n}": v for n, v in enumerate(sorted(registered))}
    produced = {"stdout": out.encode(), "stderr": err.encode(), **ps.blobs()}
    produced["environments in /proc"] = set_aside_given(
        produced["environments in /proc"], [os.getpid()], ["GREENROOM_SUDO_PASSWORD"])
    found = search_everything(xlab, (DOM0,), produced, known) + machine_files(
        tmp_path, known) + environment_hits(produced["environments in /proc"], known)
    assert found == [], "\n".join(found)


def test_registry_credentials_leak_nothing(tmp_path):
    """`inv registry.load-images` (a whole process) from a loopback registry that wants a
    password (no lab needed: the registries are real docker-registry processes on
    127.0.0.1)."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from tests.registry.regkit import Builder, Registry, htpasswd_line, random_bytes

    source = Registry(tmp_path / "source", htpasswd_line(REGISTRY_USER, REGISTRY_PASSWORD))
    target = Registry(tmp_path / "target")
    try:
        builder = Builder(source.host, (REGISTRY_USER, REGISTRY_PASSWORD))
        builder.image("audit/app", "arm64", [random_bytes(20_000, 11)], tag="1")
        images = tmp_path / "images.txt"
        images.write_text(f"{source.host}/audit/app:1\n")
        env = "GREENROOM_REGISTRY_AUTH_" + source.host.replace(".", "_").replace(":", "_")
        environ = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker"),
                       XDG_STATE_HOME=str(tmp_path / "state"),
                       XDG_CACHE_HOME=str(tmp_path / "cache"))
        environ[env] = f"{REGISTRY_USER}:{REGISTRY_PASSWORD}"  # in the environment only
        with PsSampler(None, ()) as ps, subprocess.Popen(
                [sys.executable, "-m", "invoke", "registry.load-images", "--images",
                 str(images), "--to", target.host, "--jobs", "2"],
                cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True) as operator:
            out, err = operator.communicate(timeout=120)
    finally:
        source.stop()
        target.stop()
    # it pulled, from a source that answers 401 to anyone without the credentials
    assert "copied 1, skipped 0, failed 0" in out, out + err
    blobs = ps.blobs()
    # the operator gave the credentials in this one variable of this one process
    blobs["environments in /proc"] = set_aside_given(blobs["environments in /proc"],
                                                     [operator.pid], [env])
    produced = {"stdout": out.encode(), "stderr": err.encode(), **blobs,
                **read_tree(tmp_path / "target"), **{
                    k: v for k, v in read_tree(tmp_path).items()
                    if "/source/" not in k and "/target/" not in k}}
    assert hits(produced, {"registry password": REGISTRY_PASSWORD}) == []


FLASH_PASSWORD = "Audit-flash-71d03e9b"


def test_flash_password_leaks_nothing(tmp_path, monkeypatch, capfd):
    """`pi-prep.flash --password` (its task body, in this process) onto a loop device with
    GREENROOM_FLASH_PASSWORD set: only its crypt hash reaches the card, and the password is
    nowhere else: not in the output, any command line or any other process's environment
    (openssl, which hashes it, reads it on stdin), nor anywhere on the card."""
    from contextlib import ExitStack

    from runbooks.pi_prep.flash import run as flash_run
    from runbooks.pi_prep.flash.cli import PASSWORD_ENV, run_flash
    from tests.flash.conftest import PUBLIC_KEY, TOOLS
    from tests.flash.imagekit import MiB, build_image, fat_read, loop_device

    missing = [tool for tool in (*TOOLS, "openssl") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        pytest.skip("loop devices need root" if os.geteuid() != 0 else
                    f"missing tools: {', '.join(missing)}")
    image = build_image(tmp_path / "ubuntu.img", "ubuntu", size=48 * MiB)
    key = tmp_path / "id_ed25519.pub"
    key.write_text(PUBLIC_KEY + "\n")
    card = tmp_path / "card.bin"
    with open(card, "wb") as f:
        f.truncate(64 * MiB)
    monkeypatch.setenv(PASSWORD_ENV, FLASH_PASSWORD)
    original = flash_run.flash
    with ExitStack() as stack:
        device = stack.enter_context(loop_device(card))
        # the tests' own allow list for this one loop device (no task option reaches it)
        monkeypatch.setattr(flash_run, "flash", lambda *a, **k: original(
            *a, **{**k, "allowed_loops": {device}}))
        with PsSampler(None, ()) as ps:
            run_flash(Context(), host="rp0", image=str(image), device=device,
                      inventory=str(ROOT / "hosts" / "demo.yaml"), key=str(key),
                      password=True, yes=True, check=False, max_size="256GB",
                      no_prepare=False)
        user_data = fat_read(device, "user-data") or ""
    out, err = capfd.readouterr()
    # the password travelled where it should: its hash on the card
    [user] = __import__("yaml").safe_load(user_data)["users"]
    salt = user["passwd"].split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
                           input=FLASH_PASSWORD + "\n", text=True, capture_output=True)
    assert again.stdout.strip() == user["passwd"]
    blobs = ps.blobs()
    blobs["environments in /proc"] = set_aside_given(blobs["environments in /proc"],
                                                     [os.getpid()], [PASSWORD_ENV])
    produced = {"stdout": out.encode(), "stderr": err.encode(), **blobs,
                "the card": card.read_bytes(),
                **{k: v for k, v in read_tree(tmp_path).items() if not k.endswith(".bin")}}
    assert hits(produced, {"flash password": FLASH_PASSWORD}) == []
