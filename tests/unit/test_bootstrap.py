"""The README's commands set a fresh machine up: `python3 noxfile.py -s ...` run by any
Python >= 3.11, Debian's PEP 668 one included, installs into .venv, never into the system
interpreter; it refuses early, installing nothing, where the lab cannot run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
try:
    import noxfile
finally:
    sys.path.remove(str(REPO))

DEBIAN_PYTHON = Path("/usr/bin/python3")


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A copy of what the set-up step reads (noxfile, pyproject, the package), readable by
    every user (pytest's tmp_path is not), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="greenroom-checkout-"))
    folder.chmod(0o755)
    try:
        for name in ("noxfile.py", "pyproject.toml"):
            shutil.copy2(REPO / name, folder / name)
        shutil.copytree(REPO / "runbooks", folder / "runbooks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_BREAK", "VIRTUAL_ENV", "NOX", "PYTHON", "GREENROOM"))}
    env["PIP_BREAK_SYSTEM_PACKAGES"] = "0"  # pip must not be told to ignore PEP 668
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


def _pep668(python: Path) -> Path:
    """The EXTERNALLY-MANAGED marker of ``python`` (asserted to be there)."""
    stdlib = subprocess.run([str(python), "-c", "import sysconfig; "
                             "print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    marker = Path(stdlib) / "EXTERNALLY-MANAGED"
    assert marker.is_file(), f"{python} is not a PEP 668 interpreter (no {marker})"
    return marker


@pytest.mark.skipif(not DEBIAN_PYTHON.exists() or os.geteuid() != 0,
                    reason="needs Debian's /usr/bin/python3, and root (the main command's)")
def test_main_commands_set_up_under_debians_pep668_python_installs_into_venvs_only(checkout):
    """`python3 noxfile.py -s rehearse` up to the lab: --install-only is nox's way of
    running a session's set-up without its commands."""
    if noxfile.missing_packages(noxfile.DEBIAN_PACKAGES):
        pytest.skip("Debian packages are missing: the set-up would install them here")
    _pep668(DEBIAN_PYTHON)
    refused = subprocess.run([str(DEBIAN_PYTHON), "-m", "pip", "install", "--dry-run",
                              "nox"], capture_output=True, text=True, env=_env(), check=False)
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    system_before = subprocess.run([str(DEBIAN_PYTHON), "-m", "pip", "list"],
                                   capture_output=True, text=True, check=True).stdout
    command = [str(DEBIAN_PYTHON), "noxfile.py", "-s", "rehearse", "--install-only"]

    first = subprocess.run(command, cwd=checkout, capture_output=True, text=True,
                           env=_env(), check=False, timeout=900)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "break-system-packages" not in output
    assert "installing nox and greenroom" in output
    assert "pip install -e ." in output  # the session's own environment, from pyproject
    assert "Skipping inv run" in output  # set-up only: no lab
    for venv in (checkout / ".venv", checkout / ".nox" / "rehearse"):
        where = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import invoke, fabric, runbooks; print(runbooks.__file__)"],
                               capture_output=True, text=True, check=False, cwd="/")
        assert where.returncode == 0, where.stderr
        assert Path(where.stdout.strip()).is_relative_to(checkout)  # editable, this checkout

    second = subprocess.run(command, cwd=checkout, capture_output=True, text=True,
                            env=_env(), check=False)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert "installing" not in output and "pip install" not in output
    assert subprocess.run([str(DEBIAN_PYTHON), "-m", "pip", "list"], capture_output=True,
                          text=True, check=True).stdout == system_before


@pytest.mark.skipif(os.geteuid() != 0 or not DEBIAN_PYTHON.exists(),
                    reason="switches to an unprivileged user, who runs /usr/bin/python3")
@pytest.mark.parametrize("session", ["rehearse", "bench"])
def test_lab_sessions_without_root_say_so_and_install_nothing(checkout, session):
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           str(DEBIAN_PYTHON), "noxfile.py", "-s", session], cwd=checkout,
                          capture_output=True, text=True, env=_env(), check=False)
    assert proc.returncode != 0
    assert "needs root" in proc.stderr and f"sudo python3 noxfile.py -s {session}" in proc.stderr
    assert not (checkout / ".venv").exists()


def test_a_python_that_cannot_make_venvs_and_is_not_debians_is_told_so(checkout, tmp_path):
    """A copy of the interpreter whose stdlib lacks ensurepip (what Debian's python3 is
    without python3-venv), outside /usr/bin so no Debian package could fix it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(subprocess.run([sys.executable, "-c", "import sysconfig; "
                                  "print(sysconfig.get_path('stdlib'))"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    lib = prefix / "lib" / version
    lib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("ensurepip", "site-packages", "dist-packages"):
            (lib / entry.name).symlink_to(entry)
    python = prefix / "bin" / version
    shutil.copy2(Path(sys.executable).resolve(), python)
    env = _env()
    env["PYTHONHOME"] = str(prefix)
    proc = subprocess.run([str(python), "noxfile.py", "--list"], cwd=checkout, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "cannot make virtual environments" in proc.stderr, proc.stderr
    assert not (checkout / ".venv").exists()


def test_debians_python_without_venv_support_gets_its_venv_package(monkeypatch):
    planned: list[list[str]] = []
    monkeypatch.setattr(noxfile, "can_make_venv", lambda: False)
    monkeypatch.setattr(noxfile, "missing_packages", lambda _packages: [])
    monkeypatch.setattr(noxfile, "VENV", Path("/nonexistent/greenroom/.venv"))
    debians = noxfile.venv_package
    monkeypatch.setattr(noxfile, "venv_package", lambda: debians("/usr/bin/python3"))

    def stop(packages, *_args):
        planned.append(list(packages))
        raise SystemExit(0)
    monkeypatch.setattr(noxfile, "install_packages", stop)
    with pytest.raises(SystemExit):
        noxfile.bootstrap(["-s", "lint"])
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert planned == [[f"python{minor}-venv"]]


@pytest.mark.parametrize("argv, sessions", [
    (["-s", "rehearse"], ["rehearse"]),
    (["-s", "rehearse", "--", "--check"], ["rehearse"]),
    (["--session", "tests", "lint", "--", "-s", "x"], ["tests", "lint"]),
    (["-e", "bench", "-s", "tests"], ["bench", "tests"]),
    (["-R"], ["lint", "typecheck", "tests"]),
    (["--list"], None),
    (["-l"], None),
    (["--help"], None),
], ids=["one", "posargs-ignored", "several", "both-spellings", "default", "list",
        "short-list", "help"])
def test_the_sessions_a_command_line_asks_for(argv, sessions):
    assert noxfile.requested_sessions(argv) == sessions


@pytest.mark.parametrize("sessions, system, euid, needs", [
    (["rehearse"], "Darwin", 0, "needs Linux"),
    (["bench"], "Windows", 0, "needs Linux"),
    (["rehearse"], "Linux", 1000, "needs root"),
    (["tests", "bench"], "Linux", 1000, "needs root"),
    (["rehearse"], "Linux", 0, None),
    (["tests", "lint"], "Darwin", 1000, None),
], ids=["mac", "windows", "not-root", "bench-not-root", "linux-root", "tests-anywhere"])
def test_lab_sessions_need_linux_and_root(sessions, system, euid, needs):
    if needs is None:
        noxfile.check_platform(sessions, system=system, euid=euid)
        return
    with pytest.raises(SystemExit, match=needs):
        noxfile.check_platform(sessions, system=system, euid=euid)


def test_no_service_starts_while_packages_install_and_the_policy_goes_afterwards(
        tmp_path, monkeypatch):
    policy = tmp_path / "policy-rc.d"
    monkeypatch.setattr(noxfile, "POLICY_RC_D", policy)
    with noxfile.services_held():
        assert subprocess.run([str(policy), "ssh", "start"], check=False).returncode == 101
    assert not policy.exists()


def test_someone_elses_service_policy_is_left_alone(tmp_path, monkeypatch):
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    monkeypatch.setattr(noxfile, "POLICY_RC_D", policy)
    with noxfile.services_held():
        pass
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_pyproject_is_the_one_place_python_dependencies_are_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert {"test", "bench"} <= set(project["optional-dependencies"])
    assert not (REPO / "requirements.txt").exists()
    lines = [line for line in (REPO / "requirements-dev.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == ["-e .[test]"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dpkg-query") is None,
                    reason="only root on Debian has the packages installed by the set-up")
def test_every_listed_debian_package_is_installed_after_set_up():
    assert noxfile.missing_packages(noxfile.DEBIAN_PACKAGES) == []


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg")
def test_an_entry_is_satisfied_by_any_of_its_alternatives():
    absent = "greenroom-no-such-package"
    assert noxfile.missing_packages(["coreutils", f"{absent}|coreutils", absent,
                                     f"{absent}|{absent}-2"]) == [absent, absent]


def _run_in(folder: Path):
    """A stand-in for nox's ``session.run``: the command, with this interpreter for "python"."""
    def run(program: str, *args: str) -> None:
        assert program == "python"
        subprocess.run([sys.executable, *args], cwd=folder, check=True,
                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return run


def _imports_from_cache(folder: Path, module: str) -> bool:
    """Whether an import of ``module`` would load its cached bytecode: the cache is there
    and stamped with its source's mtime and size, as Python checks before using it."""
    source = folder / (module.replace(".", "/") + ".py")
    cache = Path(importlib.util.cache_from_source(str(source)))
    if not cache.exists():
        return False
    header, stat = cache.read_bytes()[:16], source.stat()
    return (header[:4] == importlib.util.MAGIC_NUMBER
            and int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF)


def test_the_projects_bytecode_is_compiled_once_and_again_only_where_a_source_changed(checkout):
    (checkout / "tasks.py").write_text('"""tasks"""\n')
    run = _run_in(checkout)
    noxfile.compile_bytecode(run, here=checkout)
    assert _imports_from_cache(checkout, "tasks")
    assert _imports_from_cache(checkout, "runbooks.core.session")
    cache = Path(importlib.util.cache_from_source(str(checkout / "runbooks/core/session.py")))
    untouched = cache.stat().st_mtime_ns
    source = checkout / "tasks.py"
    source.write_text('"""tasks, changed"""\nVALUE = 1\n')
    later = source.stat().st_mtime + 2  # an edit a while later (compileall compares seconds)
    os.utime(source, (later, later))
    assert not _imports_from_cache(checkout, "tasks")  # stale: Python would not use it
    noxfile.compile_bytecode(run, here=checkout)
    assert _imports_from_cache(checkout, "tasks")
    assert cache.stat().st_mtime_ns == untouched  # unchanged sources are not compiled again
