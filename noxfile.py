"""nox sessions: tests, lint, typecheck, rehearse (the main job on the virtual lab), bench.

Each session installs what it needs into its own virtualenv, so a fresh machine with only
Python 3 can run them: `python3 -m pip install nox && nox -s tests`.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

BENCH_PEERS = ["pyinfra>=3,<4", "ansible-core"]


def _root_required(session: nox.Session, what: str) -> None:
    if os.geteuid() != 0:
        session.error(f"{what} needs root (network namespaces, mounts): run it with sudo")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, engine, registry and virtual-lab tests (lab tests need root)."""
    session.install("-r", "requirements-dev.txt")
    session.run("python", "-m", "pytest", *(session.posargs or ["tests"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the code and tests."""
    session.install("ruff")
    session.run("ruff", "check", "tasks.py", "noxfile.py", "runbooks", "tests", "bench")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the runbooks package."""
    session.install("-r", "requirements-dev.txt")
    session.run("mypy", "runbooks", "tasks.py")


@nox.session
def rehearse(session: nox.Session) -> None:
    """The main job on the virtual lab: bring it up from hosts/lab.yaml and converge every
    runbook there, ending with the recap."""
    _root_required(session, "the virtual lab")
    session.install("-r", "requirements.txt")
    inventory = ["--inventory", "hosts/lab.yaml"]
    session.run("inv", "lab.up", *inventory)
    session.run("inv", "demo.rehearse", *inventory, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the named peers (pyinfra, ansible-core, skopeo); see bench/README.md."""
    _root_required(session, "the benchmarks (they use the virtual lab)")
    session.install("-r", "requirements.txt", *BENCH_PEERS)
    session.run("python", "bench/lab/bench_lab_up.py", "--runs", "3")
    session.run("python", "bench/fleet/run.py")
    session.run("python", "bench/registry/bench.py", "--out", "bench/registry/results.md")
