#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["nox>=2025.2.9"]
# ///
"""greenroom's nox sessions, and the set-up a fresh machine needs to run them.

    python3 noxfile.py -s rehearse     # the main job, on the virtual lab (root)
    python3 noxfile.py -s tests        # the tests

Run as a script (nox's ``nox.main()`` convention), this file first does the set-up: as
root on Debian it installs the packages in DEBIAN_PACKAGES that are missing (and the
interpreter's venv support when ``python3 -m venv`` is unavailable), then makes ``.venv``
with nox and greenroom in it, never touching the system interpreter (so Debian's own
PEP 668 ``/usr/bin/python3`` works as well as any other Python >= 3.11), and hands over to
nox running in ``.venv``. A second run finds everything in place and installs nothing.
Plain ``nox -s ...`` works too when nox is already installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Every Debian package the lab, the tests and the benchmarks use: the one list (the README's
# commands and .ci/run install from it). Add yours here, with what needs it. "a|b": b
# installed also does (the first is installed when none is).
DEBIAN_PACKAGES = [
    "openssh-server", "openssh-client",   # engine tests' sshd; the lab's keys and sshd
    "iproute2", "util-linux",             # lab: ip, nsenter, unshare, mount, setsid
    "debootstrap", "systemd-container",   # lab: guests' root filesystem; systemd-nspawn
    "xz-utils", "zstd",                   # compressed images
    "isc-dhcp-server", "isc-dhcp-client",  # dell-gateway's dhcpd (dhcpd -t); DHCP clients
    "dnsmasq-base", "dnsmasq",            # DHCP and DNS servers
    "docker-registry", "skopeo",          # registry tests and bench
    "nftables", "iptables", "ethtool",    # NAT and forwarding
    "curl", "procps", "psmisc",           # probes; ps, pkill, fuser
    "kubernetes-client|kubectl",          # kubectl for the cluster runbooks (kubectl: the
                                          # upstream package, which owns the same file)
    "frr", "bird2",                       # routers and BGP speakers
    "busybox",                            # the engine's facts under busybox sh (OpenWrt)
    "gcc", "libc6-dev",                   # lab seed frr-caps: builds FRR's capability preload
    "mtools", "dosfstools", "e2fsprogs", "fdisk",  # SD card images: FAT boot, ext4 root
    "openssl",                            # pi-prep.flash --password: the SHA-512 crypt hash
]

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
# what .venv holds: nox to run the sessions, greenroom (editable) to run `inv` directly
VENV_REQUIREMENTS = ["nox>=2025.2.9", "-e", str(HERE)]
STAMP = ".greenroom-installed"
BYTECODE_PATHS = ["tasks.py", "runbooks"]  # what `inv` imports from the checkout
ROOT_SESSIONS = {"rehearse": "the virtual lab", "bench": "the benchmarks (they use the lab)"}
PACKAGE_SESSIONS = {"rehearse", "bench", "tests"}
DEFAULT_SESSIONS = ["lint", "typecheck", "tests"]
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
POLICY_MARK = "# greenroom: no services start while its packages install"


class SetupError(SystemExit):
    """Set-up cannot go on; the message says what is needed."""

    def __init__(self, message: str):
        super().__init__(f"noxfile.py: {message}")


def say(message: str) -> None:
    print(f"greenroom set-up: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- what the run needs

def requested_sessions(argv: Sequence[str]) -> list[str] | None:
    """The sessions nox will run for ``argv`` (None: it only lists or helps)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-s", "-e", "--session", "--sessions", nargs="*", dest="sessions",
                        action="extend")
    parser.add_argument("-l", "--list", "--list-sessions", "-h", "--help", "--version",
                        action="store_true", dest="info")
    args, _ = parser.parse_known_args(list(argv)[: _posargs_at(argv)])
    if args.info:
        return None
    return list(args.sessions or DEFAULT_SESSIONS)


def _posargs_at(argv: Sequence[str]) -> int:
    return list(argv).index("--") if "--" in argv else len(argv)


def check_platform(sessions: Sequence[str], system: str | None = None,
                   euid: int | None = None) -> None:
    """Raise SetupError naming what is missing when a session needs Linux and root."""
    system = system or platform.system()
    euid = os.geteuid() if euid is None else euid
    for name in sessions:
        what = ROOT_SESSIONS.get(name)
        if what is None:
            continue
        if system != "Linux":
            raise SetupError(f"{name}: {what} needs Linux (network namespaces, overlayfs, "
                             f"systemd-nspawn); this is {system}. Nothing was installed.")
        if euid != 0:
            raise SetupError(f"{name}: {what} needs root (namespaces, mounts, bridges, "
                             f"apt-get): run `sudo python3 noxfile.py -s {name}`. "
                             "Nothing was installed.")


# ---------------------------------------------------------------- Debian packages

def missing_packages(packages: Sequence[str]) -> list[str]:
    """The packages to install: of each entry ("a" or "a|b") none installed, its first
    ([] where there is no dpkg)."""
    if shutil.which("dpkg-query") is None:
        return []
    names = [name for entry in packages for name in entry.split("|")]
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n",
                          *names], capture_output=True, text=True, check=False).stdout
    installed = {line.split()[0] for line in out.splitlines()
                 if len(line.split()) > 1 and line.split()[1] == "ii"}
    return [entry.split("|")[0] for entry in packages
            if not installed.intersection(entry.split("|"))]


def install_packages(packages: Sequence[str], log: Callable[[str], None] = say) -> None:
    """apt-get install ``packages`` (root, Debian), starting none of their services."""
    if not packages:
        return
    if shutil.which("apt-get") is None:
        raise SetupError(f"missing Debian packages {' '.join(packages)} and no apt-get here; "
                         "install them with your system's package manager")
    if os.geteuid() != 0:
        raise SetupError(f"missing Debian packages: {' '.join(packages)}; install them as "
                         f"root: `sudo apt-get install {' '.join(packages)}`, or run this "
                         "command with sudo")
    log(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with services_held():
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                     *packages]):
            if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                              check=False).returncode != 0:
                raise SetupError(f"`{' '.join(cmd)}` failed (see above)")


class services_held:
    """While installing, Debian's policy-rc.d says no service may start: the lab and the
    tests start their own, in namespaces and on loopback, and the machine's own dhcpd,
    registry, frr or dnsmasq must not come up because greenroom needed the binaries. An
    existing policy-rc.d (someone else's) is left as it is."""

    def __enter__(self) -> None:
        self.ours = not POLICY_RC_D.exists()
        if self.ours:
            POLICY_RC_D.write_text(f"#!/bin/sh\n{POLICY_MARK}\nexit 101\n")
            POLICY_RC_D.chmod(0o755)

    def __exit__(self, *exc: object) -> None:
        if self.ours and POLICY_RC_D.exists() and POLICY_MARK in POLICY_RC_D.read_text():
            POLICY_RC_D.unlink()


def packages_to_install(sessions: Sequence[str], log: Callable[[str], None] = say) -> list[str]:
    """The Debian packages the sessions use that are missing. Without root, the tests go
    on without them (a warning says which are missing; the tests that need them skip)."""
    if not PACKAGE_SESSIONS.intersection(sessions):
        return []
    missing = missing_packages(DEBIAN_PACKAGES)
    if missing and os.geteuid() != 0 and not ROOT_SESSIONS.keys() & set(sessions):
        log(f"not root, so not installing the missing Debian packages {' '.join(missing)}; "
            "the tests that need them will skip (as root this command installs them)")
        return []
    return missing


# ---------------------------------------------------------------- the virtual environment

def venv_package(executable: str = sys.executable) -> str | None:
    """The Debian package that gives this interpreter ``-m venv`` (None: not Debian's)."""
    if not Path(executable).resolve().is_relative_to("/usr/bin"):
        return None
    return f"python{sys.version_info.major}.{sys.version_info.minor}-venv"


def can_make_venv() -> bool:
    """True when ``python -m venv`` would work (Debian ships ensurepip separately)."""
    from importlib.util import find_spec

    return find_spec("venv") is not None and find_spec("ensurepip") is not None


def stamp_of(requirements: Sequence[str]) -> str:
    """What an environment installed from pyproject.toml + ``requirements`` is stamped with."""
    digest = hashlib.sha256((HERE / "pyproject.toml").read_bytes())
    digest.update("\0".join(requirements).encode())
    return digest.hexdigest()


def ensure_venv(log: Callable[[str], None] = say) -> Path:
    """``.venv`` with VENV_REQUIREMENTS, made or updated only when needed; its python."""
    python = VENV / "bin" / "python"
    stamp = VENV / STAMP
    want = stamp_of(VENV_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    if not python.exists():
        log(f"making the virtual environment {VENV}")
        proc = subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=False)
        if proc.returncode != 0:
            raise SetupError(f"`{sys.executable} -m venv {VENV}` failed (see above)")
    log("installing nox and greenroom into it")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", *VENV_REQUIREMENTS], check=False)
    if proc.returncode != 0:
        raise SetupError("installing into .venv failed (see above)")
    stamp.write_text(want)
    return python


def bootstrap(argv: Sequence[str]) -> None:
    """Set up what the requested sessions need, then run nox from ``.venv`` (no return)."""
    if sys.version_info < (3, 11):  # noqa: UP036  (the message older Pythons get)
        raise SetupError(f"greenroom needs Python >= 3.11; this is {platform.python_version()}"
                         f" ({sys.executable})")
    sessions = requested_sessions(argv) or []
    check_platform(sessions)
    packages = packages_to_install(sessions)
    if not (VENV / "bin" / "python").exists() and not can_make_venv():
        extra = venv_package()
        if extra is None:
            raise SetupError(f"{sys.executable} cannot make virtual environments (no venv / "
                             "ensurepip); use Debian's /usr/bin/python3 or a full Python")
        packages.append(extra)
    install_packages(packages)
    python = ensure_venv()
    os.environ["GREENROOM_SET_UP"] = "1"
    os.execv(python, [str(python), str(Path(__file__).resolve()), *argv])


if __name__ == "__main__" and not os.environ.pop("GREENROOM_SET_UP", ""):
    bootstrap(sys.argv[1:])


# ---------------------------------------------------------------- nox sessions

import nox  # noqa: E402  (after the set-up, which has made sure it is there)

nox.options.sessions = DEFAULT_SESSIONS
nox.options.reuse_existing_virtualenvs = True


def install(session: nox.Session, spec: str) -> None:
    """``pip install -e <spec>`` unless this session's environment already has it for
    the current pyproject.toml (so a second run installs nothing); then the project's
    bytecode, brought up to date."""
    location = getattr(session.virtualenv, "location", None)
    stamp = Path(location) / STAMP if location else None
    want = stamp_of([spec])
    if stamp is not None and stamp.exists() and stamp.read_text() == want:
        session.log(f"{spec}: installed, pyproject.toml unchanged")
    else:
        session.install("-e", spec)
        if stamp is not None:
            stamp.write_text(want)
    compile_bytecode(session.run)


def compile_bytecode(run: Callable[..., object], here: Path = HERE) -> None:
    """Compile the project's own modules, as pip does for an installed package. An editable
    install imports them from the checkout, and where PYTHONDONTWRITEBYTECODE is set (it is
    on CI's machines) every ``inv`` would compile about 150 of them again, about half a
    second of CPU per process. Only modules whose source changed are compiled again; a
    stale cache is never used (Python checks it against the source)."""
    run("python", "-m", "compileall", "-q", "-j", "0",
        *(str(here / path) for path in BYTECODE_PATHS))


def set_up(session: nox.Session) -> None:
    """Linux and root where the session needs them; the Debian packages it uses."""
    try:
        check_platform([session.name])
        install_packages(packages_to_install([session.name], session.log), session.log)
    except SetupError as exc:
        session.error(str(exc.code))


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, engine, registry and virtual-lab tests (lab tests need root)."""
    set_up(session)
    install(session, ".[test]")
    session.run("python", "-m", "pytest", *(session.posargs or ["tests"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the code and tests."""
    install(session, ".[test]")
    session.run("ruff", "check", "tasks.py", "noxfile.py", "runbooks", "tests", "bench", ".ci")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the runbooks package."""
    install(session, ".[test]")
    session.run("mypy", "runbooks", "tasks.py")


@nox.session
def rehearse(session: nox.Session) -> None:
    """The main job on the virtual lab: bring it up from hosts/lab.yaml and converge every
    runbook there, ending with the recap."""
    set_up(session)
    install(session, ".")
    inventory = ["--inventory", "hosts/lab.yaml"]
    session.run("inv", "lab.up", *inventory)
    session.run("inv", "demo.rehearse", *inventory, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the named peers (pyinfra, ansible-core, skopeo, dd + cmp); see
    bench/README.md."""
    set_up(session)
    install(session, ".[bench]")
    session.run("python", "bench/lab/bench_lab_up.py", "--runs", "3")
    session.run("python", "bench/fleet/run.py")
    session.run("python", "bench/registry/bench.py", "--out", "bench/registry/results.md")
    session.run("python", "bench/flash/bench.py", "--rounds", "5")


if __name__ == "__main__":
    nox.main()
