"""The files reader: a batch of file facts only is answered by one `perl` sent without `sh -c`.

Both forms run here on real files, on this machine: the batch script through the real
/bin/sh with coreutils' `stat` and GNU `grep` (what every host without perl still runs),
and the reader's command line as sshd runs it, `LOGIN_SHELL -c LINE`. Their `stat` and
`grep` parts must be the same bytes, and `gather` must give the same results for every key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runbooks.core import facts
from runbooks.core.facts import (
    FactResult,
    dir_command,
    file_command,
    gather,
    parse_file,
    split_batch,
    sysctl_command,
)
from runbooks.core.session import CommandResult, Session

ROOT = os.geteuid() == 0
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _cases(tmp: Path) -> dict[str, Callable[[], dict[str, str]]]:
    """Each case builds its files under `tmp` and returns its fact commands by key."""

    def write(name: str, data: bytes, mode: int = 0o644) -> str:
        path = tmp / name
        path.write_bytes(data)
        path.chmod(mode)
        return str(path)

    def plain() -> dict[str, str]:
        return {"f": file_command(write("k8s.conf", b"overlay\nbr_netfilter\n"))}

    def missing() -> dict[str, str]:
        return {"f": file_command(str(tmp / "nothing-here")),
                "g": file_command(write("there", b"x\n"))}

    def directory() -> dict[str, str]:
        (tmp / "certs.d").mkdir(mode=0o2750)
        return {"as-file": file_command(str(tmp / "certs.d")),
                "as-dir": dir_command(str(tmp / "certs.d")),
                "no-dir": dir_command(str(tmp / "absent.d")),
                "file-as-dir": dir_command(write("plain", b"p\n"))}

    def no_newline() -> dict[str, str]:
        return {"f": file_command(write("cmdline.txt", b"console=tty1 rootwait")),
                "one": file_command(write("one", b"x"))}

    def empty() -> dict[str, str]:
        return {"f": file_command(write("empty", b"")),
                "blank": file_command(write("blank", b"\n\n\n"))}

    def binary() -> dict[str, str]:
        return {"f": file_command(write("blob", b"a\x00b\xff\xfe\r\nc\xc3\xa4\xe2\x82\n\x80")),
                "utf8": file_command(write("utf8", "grüße € ✓\n".encode()))}

    def unreadable() -> dict[str, str]:
        return {"f": file_command(write("secret", b"token\n", 0o600)),
                "ok": file_command(write("public", b"hello\n"))}

    def symlinks() -> dict[str, str]:
        target = write("target.conf", b"real\n", 0o640)
        (tmp / "link.conf").symlink_to(target)
        (tmp / "broken").symlink_to(tmp / "nowhere")
        (tmp / "dir-link").symlink_to(tmp)
        return {"link": file_command(str(tmp / "link.conf")),
                "broken": file_command(str(tmp / "broken")),
                "dir-link": dir_command(str(tmp / "dir-link"))}

    def many() -> dict[str, str]:
        return {f"f{i}": file_command(write(f"file-{i}.conf", f"line {i}\n".encode() * i))
                for i in range(40)}

    def grep_lookalikes() -> dict[str, str]:
        first = write("a:1:", b"b:1:x\n")
        return {"a": file_command(first),
                "b": file_command(write("b", f"{first}:1:fake\n{first}:2:y\n".encode())),
                "c": file_command(write("c:2:", b""))}

    def modes_and_owners() -> dict[str, str]:
        setuid = write("setuid", b"s\n", 0o4755)
        odd = write("odd-owner", b"o\n", 0o600)
        if ROOT:
            os.chown(odd, 54321, 54321)  # no name for either: stat prints UNKNOWN
        return {"setuid": file_command(setuid), "odd": file_command(odd),
                "zero": file_command(write("mode-zero", b"z\n", 0o000))}

    def proc_and_duplicates() -> dict[str, str]:
        path = write("twice", b"same\n")
        return {"forward": sysctl_command("net.ipv4.ip_forward"),
                "swappiness": sysctl_command("vm.swappiness"),
                "one": file_command(path), "two": file_command(path),
                "dir": dir_command(str(tmp))}

    def fifo() -> dict[str, str]:
        os.mkfifo(tmp / "pipe")
        return {"f": file_command(str(tmp / "pipe")), "ok": file_command(write("ok", b"k\n"))}

    return {name: case for name, case in locals().items() if callable(case) and name != "write"}


CASES = ["plain", "missing", "directory", "no_newline", "empty", "binary", "unreadable",
         "symlinks", "many", "grep_lookalikes", "modes_and_owners", "proc_and_duplicates"]


def _shell(line: str, login: list[str], env: dict[str, str] | None = None,
           user: list[str] | None = None) -> SimpleNamespace:
    """`line` as sshd runs a command: the login shell's `-c`, a UTF-8 session locale."""
    done = subprocess.run([*(user or []), *login, "-c", line], capture_output=True,
                          env=env or {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                          check=False, timeout=30)
    return SimpleNamespace(rc=done.returncode, stdout=done.stdout.decode(errors="replace"),
                           stderr=done.stderr.decode(errors="replace"))


def _both(commands: dict[str, str], user: list[str] | None = None,
          login: list[str] | None = None) -> tuple[Any, ...]:
    script, parse, program = facts._prepare(commands)
    assert program is not None, "a batch of file facts only is answered by the reader"
    by_script = _shell(script, ["/bin/sh"], user=user)
    by_program = _shell(program, login or ["/bin/bash"], user=user)
    assert by_program.rc == 0, by_program.stderr
    return by_script, by_program, parse, program


@pytest.mark.parametrize("case", CASES)
def test_the_reader_prints_what_stat_and_grep_print(tmp_path: Path, case: str) -> None:
    commands = _cases(tmp_path)[case]()
    by_script, by_program, parse, program = _both(commands)
    marker, reads = program.rsplit("' ", 1)[1].split()[:2]
    keys = ["\0stat", "\0grep"] if int(reads) else ["\0stat"]
    script_parts = split_batch(by_script.stdout, keys, marker)
    program_parts = split_batch(by_program.stdout, keys, marker)
    for key in keys:  # the same bytes (the exit statuses may differ: no one reads them)
        assert program_parts[key].out == script_parts[key].out, key
    assert parse(by_program.stdout) == parse(by_script.stdout)


@pytest.mark.parametrize("login", [["/bin/bash"], ["/bin/dash"], ["busybox", "sh"]],
                         ids=["bash", "dash", "busybox-sh"])
def test_any_posix_login_shell_passes_the_reader_on_unchanged(tmp_path: Path,
                                                              login: list[str]) -> None:
    if shutil.which(login[0]) is None:
        pytest.skip(f"{login[0]} is not installed")
    commands = _cases(tmp_path)["binary"]()
    commands.update(_cases(tmp_path)["grep_lookalikes"]())
    by_script, by_program, parse, _ = _both(commands, login=login)
    assert parse(by_program.stdout) == parse(by_script.stdout)


def test_the_reader_is_one_line_no_shell_reads_otherwise() -> None:
    """No quote, backslash, `!` (csh's history) or newline inside its single quotes."""
    assert not set(facts._READER) & {"'", "\\", "!", "\n", "\r"}
    line = facts.files_reader("@@greenroom-00ff", ["/etc/a:b", "/proc/sys/x"],
                              ["/etc/a:b", "/proc/sys/x", "/etc/d.d"])
    words = line.split(" ", 5)
    assert words[:4] == ["LC_ALL=C", "perl", "-T", "-C0"]
    assert line.endswith(" @@greenroom-00ff 2 /etc/a:b /proc/sys/x /etc/d.d")


@pytest.mark.parametrize("commands", [
    {"f": file_command("/etc/with space.conf")},
    {"f": file_command("relative/path")},
    {"f": file_command("/etc/$HOME")},
    {"f": file_command("/etc/fstab"), "guard": "test -d /proc"},
    {"f": file_command("/etc/fstab"), "ip": "cat /proc/net/dev /proc/net/snmp"},
    {"f": file_command("/etc/fstab"), "glob": "cat /etc/chrony/conf.d/*.conf"},
], ids=["space", "relative", "dollar", "a-shell-command", "cat-of-two-files", "cat-of-a-glob"])
def test_a_batch_the_reader_cannot_answer_is_the_script(commands: dict[str, str]) -> None:
    script, _, program = facts._prepare(commands)
    assert program is None
    assert script.startswith("exec 2>/dev/null </dev/null\n")


def test_an_unreadable_file_reads_as_empty_in_both_forms() -> None:
    """Read by a user who may not read it (the mode says so): stat still answers, the
    content is empty, in both forms (as `grep -s` left it)."""
    if not ROOT or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to read as nobody")
    with tempfile.TemporaryDirectory() as folder:  # pytest's tmp_path is root's alone
        os.chmod(folder, 0o755)
        _unreadable(Path(folder))


def _unreadable(tmp_path: Path) -> None:
    commands = _cases(tmp_path)["unreadable"]()
    by_script, by_program, parse, _ = _both(commands, user=NOBODY)
    found = parse(by_program.stdout)
    assert found == parse(by_script.stdout)
    assert parse_file(found["f"]) == parse_file(FactResult(0, "600 root root\n"
                                                              "@@greenroom-content\n"))
    assert parse_file(found["ok"]).content == "hello\n"


def test_a_fifo_is_not_a_file_and_the_reader_does_not_block_on_it(tmp_path: Path) -> None:
    commands = _cases(tmp_path)["fifo"]()
    _, parse, program = facts._prepare(commands)
    assert program is not None
    found = parse(_shell(program, ["/bin/bash"]).stdout)  # times out should it read the fifo
    assert parse_file(found["f"]).content is None
    assert parse_file(found["ok"]).content == "k\n"


@pytest.mark.parametrize("env", [
    {"LANG": "de_DE.UTF-8", "LANGUAGE": "de", "LC_ALL": "de_DE.UTF-8"},
    {"PERL_UNICODE": "SDAL", "LANG": "C.UTF-8"},
    {"PERL5OPT": "-CS", "LANG": "C.UTF-8"},
], ids=["german-session", "perl-unicode", "perl5opt"])
def test_the_reader_copies_bytes_whatever_the_session_locale(tmp_path: Path,
                                                              env: dict[str, str]) -> None:
    commands = _cases(tmp_path)["binary"]()
    _, parse, program = facts._prepare(commands)
    assert program is not None
    plain = _shell(program, ["/bin/bash"])
    odd = _shell(program, ["/bin/bash"], env={"PATH": "/usr/bin:/bin", **env})
    assert odd.stdout == plain.stdout
    assert parse_file(parse(odd.stdout)["utf8"]).content == "grüße € ✓\n"


# -- sent without sh -c, through the Session ------------------------------------------------

class LocalSession(Session):
    """greenroom's Session whose channel is this machine's `LOGIN -c LINE` (as sshd runs
    a command); counts the command lines it sends."""

    def __init__(self, login: list[str], path: str = "/usr/bin:/bin") -> None:
        super().__init__(SimpleNamespace(name="board", user="root"), None)  # type: ignore[arg-type]
        self.login, self.path, self.sent = login, path, []  # type: ignore[var-annotated]

    def _exec_raw(self, line: str, data: bytes | None,
                  timeout: float | None = None) -> CommandResult:
        self.sent.append(line)
        done = _shell(line, self.login, env={"PATH": self.path, "LANG": "C.UTF-8"})
        return CommandResult(done.rc, done.stdout, done.stderr)


def _plan(tmp: Path) -> dict[str, str]:
    commands = _cases(tmp)["no_newline"]()
    commands["dir"] = dir_command(str(tmp))
    commands["live"] = sysctl_command("net.ipv4.ip_forward")
    return commands


def test_a_file_batch_goes_as_one_program_without_sh(tmp_path: Path) -> None:
    session = LocalSession(["/bin/bash"])
    found = gather(session, _plan(tmp_path))
    [line] = session.sent
    assert line.startswith("LC_ALL=C perl -T -C0 -e '") and "sh -c" not in line
    assert parse_file(found["f"]).content == "console=tty1 rootwait"
    assert found["dir"].ok and found["live"].out == Path(
        "/proc/sys/net/ipv4/ip_forward").read_text()
    assert found == gather(LocalShellOnly(), _plan(tmp_path))


class LocalShellOnly:
    def run(self, command: str, stdin: str | None = None) -> SimpleNamespace:
        return _shell(command, ["/bin/sh"])


def test_a_batch_with_a_shell_command_still_goes_through_sh(tmp_path: Path) -> None:
    session = LocalSession(["/bin/bash"])
    commands = {**_plan(tmp_path), "guard": "test -d /proc"}
    found = gather(session, commands)
    [line] = session.sent
    assert line.startswith("sh -c ")
    assert found["guard"].ok and parse_file(found["f"]).content == "console=tty1 rootwait"


@pytest.fixture()
def no_perl(tmp_path: Path) -> str:
    """A PATH with the shell tools but no perl (an OpenWrt router, a minimal image)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "stat", "grep", "printf"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


class FishLike(LocalSession):
    """A login shell that runs no `VAR=value program` line (csh, an old fish): the line
    fails; `sh -c SCRIPT` runs."""

    def _exec_raw(self, line: str, data: bytes | None,
                  timeout: float | None = None) -> CommandResult:
        if not line.startswith("sh -c "):
            self.sent.append(line)
            return CommandResult(127, "", "Unknown command: LC_ALL=C\n")
        return super()._exec_raw(line, data, timeout)


@pytest.mark.parametrize("kind", ["no-perl-dash", "no-perl-bash", "login-shell-otherwise"])
def test_a_host_where_the_program_does_not_run_gets_the_script_and_no_more_tries(
        tmp_path: Path, no_perl: str, kind: str) -> None:
    files = tmp_path / "files"
    files.mkdir()
    plan = _plan(files)
    session = {"no-perl-dash": LocalSession(["/bin/sh"], no_perl),
               "no-perl-bash": LocalSession(["/bin/bash"], no_perl),
               "login-shell-otherwise": FishLike(["/bin/sh"])}[kind]
    first = gather(session, plan)
    second = gather(session, plan)
    assert [line.split(" ", 1)[0] for line in session.sent] == ["LC_ALL=C", "sh", "sh"]
    assert first == second == gather(LocalShellOnly(), plan)
    assert parse_file(first["f"]).content == "console=tty1 rootwait"


def test_privileged_programs_go_through_sudo_as_scripts_do() -> None:
    session = Session(SimpleNamespace(name="board", user="pi"), None)  # type: ignore[arg-type]
    session._sudo = "nopasswd"
    assert session._wrap("LC_ALL=C perl -e 1", True, shell=False) == (
        "sudo -n -- LC_ALL=C perl -e 1", "")
    assert session._wrap("true", True) == ("sudo -n -- sh -c true", "")


def _programs_started(tmp: Path, line: str, login: str = "/bin/bash") -> list[str]:
    trace = tmp / "trace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), login,
                    "-c", line], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return [entry.split('"')[1].rsplit("/", 1)[-1] for entry in trace.read_text().splitlines()
            if "execve(" in entry and "= 0" in entry][1:]  # the first is the login shell


def test_a_converged_file_batch_starts_one_program_on_the_host(tmp_path: Path) -> None:
    """What the boards run per no-op besides the login shell: perl alone, against sh, stat
    and grep for the same batch as a script (the fleet plan's facts: files, a directory,
    a /proc/sys read)."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    script, _, program = facts._prepare(_plan(tmp_path))
    assert program is not None
    assert _programs_started(tmp_path, program) == ["perl"]
    assert _programs_started(tmp_path, "sh -c " + __import__("shlex").quote(script)) == [
        "sh", "stat", "grep"]


def test_the_reader_looks_each_owner_and_group_up_once(tmp_path: Path) -> None:
    """`stat` reads /etc/passwd and /etc/group again for every file; the reader once."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    _, _, program = facts._prepare(_cases(tmp_path)["many"]())
    assert program is not None
    trace = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace), "/bin/dash",
                    "-c", program], check=True, capture_output=True,  # bash reads passwd too
                   env={"PATH": "/usr/bin:/bin"})
    opened = trace.read_text()
    assert (opened.count('"/etc/passwd"'), opened.count('"/etc/group"')) == (1, 1)


def _cat_cases(tmp: Path) -> dict[str, str]:
    """`cat PATH` facts of every kind of path a fact reads: files with and without a last
    newline, empty, binary (ending in a newline: one that is not UTF-8 and lacks it gets
    one, as a file fact's content does), missing, a directory, a symbolic link, /proc and
    /sys pseudo-files (their size says 0)."""
    for name, data in (("plain", b"a\nb\n"), ("no-newline", b"console=tty1 rootwait"),
                       ("empty", b""), ("blob", b"a\x00b\xff\r\nc\xc3\xa4\n\x80\n")):
        (tmp / name).write_bytes(data)
    (tmp / "os-release").symlink_to(tmp / "plain")
    (tmp / "d").mkdir()
    paths = {n: str(tmp / n) for n in ("plain", "no-newline", "empty", "blob", "os-release",
                                       "d", "missing")}
    # pseudo-files whose content does not move while the test reads them twice (not
    # /proc/cgroups: its counts change whenever another job on the machine makes a cgroup)
    paths.update({"swaps": "/proc/swaps", "filesystems": "/proc/filesystems",
                  "forward": "/proc/sys/net/ipv4/ip_forward"})
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        paths["controllers"] = "/sys/fs/cgroup/cgroup.controllers"
    return {key: f"cat {path}" for key, path in paths.items()}


@pytest.mark.parametrize("form", ["script", "program"])
def test_a_plain_cat_is_answered_by_the_batchs_reader_as_cat_answers_it(
        tmp_path: Path, form: str) -> None:
    """Each `cat PATH` of the batch, read by its one stat and one grep (or the reader), gives
    what `cat` itself gives: its output and its exit status."""
    commands = _cat_cases(tmp_path)
    script, parse, program = facts._prepare(commands)
    assert program is not None and "cat " not in script  # no `cat` process at all
    found = parse(_shell(script if form == "script" else program,
                         ["/bin/sh"] if form == "script" else ["/bin/bash"]).stdout)
    for key, command in commands.items():
        real = _shell(f"exec 2>/dev/null; {command}", ["/bin/sh"])
        assert (found[key].rc != 0, found[key].out) == (real.rc != 0, real.stdout), key


def test_a_batch_of_cat_reads_starts_no_cat(tmp_path: Path) -> None:
    """Reads like the pi-prep probe's (/proc pseudo-files, cgroup.controllers) and a
    release file in a batch with a shell command: the script's sh, stat and grep, no cat."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    commands = {**_cat_cases(tmp_path), "guard": "test -d /proc"}
    script, _, _program = facts._prepare(commands)
    assert _programs_started(tmp_path, "sh -c " + __import__("shlex").quote(script)) == [
        "sh", "stat", "grep"]
