"""Table-driven tests of the engine's steps: (arguments, facts) -> expected changes."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from runbooks.common.kernel import KernelModule, Sysctl
from runbooks.core.facts import FILE_STAT_SEPARATOR, FactResult, batch_script, split_batch
from runbooks.core.steps import (
    Command,
    Directory,
    File,
    LineInFile,
    Packages,
    Service,
    Tokens,
    ensure_line,
    ensure_tokens,
)
from runbooks.core.steps.files import write_command


def file_fact(content: str | None, mode: str = "644", owner: str = "root") -> FactResult:
    if content is None:
        return FactResult(1, "")
    return FactResult(0, f"{mode} {owner} {owner}\n{FILE_STAT_SEPARATOR}\n{content}")


def summaries(step, facts) -> list[str]:
    return [c.summary for c in step.plan(facts)]


@pytest.mark.parametrize(
    ("content", "add", "remove", "wanted"),
    [
        ("console=tty1 root=/dev/sda2 rootwait\n", ["cgroup_memory=1"], [],
         "console=tty1 root=/dev/sda2 rootwait cgroup_memory=1\n"),
        ("a cgroup_memory=1 b\n", ["cgroup_memory=1"], [], "a cgroup_memory=1 b\n"),
        ("a cgroup_memory=0 b\n", ["cgroup_memory=1"], [], "a cgroup_memory=1 b\n"),
        ("a cgroup_memory=0 b cgroup_memory=1\n", ["cgroup_memory=1"], [],
         "a cgroup_memory=1 b\n"),
        ("a cgroup_enable=cpuset\n", ["cgroup_enable=cpuset", "cgroup_enable=memory"], [],
         "a cgroup_enable=cpuset cgroup_enable=memory\n"),
        ("a quiet splash\n", [], ["quiet"], "a splash\n"),
        (None, ["x=1"], [], "x=1\n"),
        ("a  b\tc", ["d"], [], "a b c d\n"),
    ],
    ids=["append", "already-there", "value-replaced-in-place", "duplicate-key-dropped",
         "repeatable-key", "remove", "missing-file", "whitespace-normalised"],
)
def test_ensure_tokens(content, add, remove, wanted):
    assert ensure_tokens(content, add, remove) == wanted


def test_ensure_tokens_refuses_several_lines():
    with pytest.raises(ValueError, match="single line"):
        ensure_tokens("a\nb\n", ["c"])


@pytest.mark.parametrize(
    ("content", "line", "match", "wanted"),
    [
        (None, "x = 1", None, "x = 1\n"),
        ("a\nx = 1\n", "x = 1", None, "a\nx = 1\n"),
        ("a\nx = 0\nb\n", "x = 1", "x =", "a\nx = 1\nb\n"),
        ("x = 0\nx = 2\n", "x = 1", "x =", "x = 1\n"),
        ("a", "b", None, "a\nb\n"),
    ],
    ids=["new-file", "present", "replace-match", "dedupe-matches", "no-trailing-newline"],
)
def test_ensure_line(content, line, match, wanted):
    assert ensure_line(content, line, match) == wanted


def test_file_noop_when_same():
    step = File("/etc/x.conf", "a\n")
    assert step.plan({"file": file_fact("a\n")}) == []


def test_file_diff_and_create():
    step = File("/etc/x.conf", "a\nb\n")
    (change,) = step.plan({"file": file_fact("a\n")})
    assert change.summary == "update /etc/x.conf"
    assert "+b" in change.diff and change.diff.startswith("--- /etc/x.conf")
    (created,) = step.plan({"file": file_fact(None)})
    assert created.summary == "create /etc/x.conf" and "--- /dev/null" in created.diff


def test_file_mode_and_owner_only():
    step = File("/etc/x.conf", "a\n", mode="600")
    assert summaries(step, {"file": file_fact("a\n", "644", "pi")}) == [
        "chmod 600 /etc/x.conf (was 644)", "chown root:root /etc/x.conf (was pi:pi)"]


def test_secret_file_hides_diff():
    step = File("/etc/token", "s3cr3t-token\n", secret=True)
    (change,) = step.plan({"file": file_fact(None)})
    assert "s3cr3t" not in change.diff
    assert all("s3cr3t" not in a.command for a in change.actions)  # content goes on stdin


def test_file_path_is_quoted():
    step = File("/etc/it's here.conf", "a\n")
    (change,) = step.plan({"file": file_fact(None)})
    assert "'/etc/it'\"'\"'s here.conf'" in change.actions[0].command


@pytest.mark.parametrize(
    ("live", "persisted", "wanted"),
    [
        (FactResult(0, "1\n"), "net.ipv4.ip_forward = 1\n", []),
        (FactResult(0, "0\n"), "net.ipv4.ip_forward = 1\n",
         ["set net.ipv4.ip_forward = 1 live (was 0)"]),
        (FactResult(0, "1\n"), None, ["create /etc/sysctl.d/90-greenroom.conf"]),
        (FactResult(0, "0\n"), "net.ipv4.ip_forward = 0\n",
         ["set net.ipv4.ip_forward = 1 live (was 0)", "update /etc/sysctl.d/90-greenroom.conf"]),
        (FactResult(255, ""), None, ["set net.ipv4.ip_forward = 1 live (was unavailable)",
                                     "create /etc/sysctl.d/90-greenroom.conf"]),
    ],
    ids=["noop", "live-only", "persist-only", "both", "unknown-key"],
)
def test_sysctl(live, persisted, wanted):
    step = Sysctl("net.ipv4.ip_forward", 1)
    assert summaries(step, {"0.live": live, "1.file": file_fact(persisted)}) == wanted


def test_sysctl_zero_value_and_multiword():
    step = Sysctl("net.ipv4.ping_group_range", "0 2147483647")
    facts = {"0.live": FactResult(0, "0\t2147483647\n"),
             "1.file": file_fact("net.ipv4.ping_group_range = 0 2147483647\n")}
    assert step.plan(facts) == []
    zero = Sysctl("vm.swappiness", 0)
    assert summaries(zero, {"0.live": FactResult(0, "0\n"),
                            "1.file": file_fact("vm.swappiness = 0\n")}) == []


@pytest.mark.parametrize(
    ("loaded", "persisted", "wanted"),
    [
        (True, "overlay\n", []),
        (False, "overlay\n", ["load overlay"]),
        (True, None, ["create /etc/modules-load.d/greenroom.conf"]),
    ],
    ids=["noop", "load", "persist"],
)
def test_kernel_module(loaded, persisted, wanted):
    step = KernelModule("overlay")
    facts = {"0.loaded": FactResult(0 if loaded else 1, ""), "1.file": file_fact(persisted)}
    assert summaries(step, facts) == wanted


@pytest.mark.parametrize(
    ("dpkg", "present", "wanted"),
    [
        ("chrony ii \ncontainerd ii \n", True, []),
        ("chrony ii \ncontainerd un \n", True, ["install containerd"]),
        ("", True, ["install chrony containerd"]),
        ("chrony ii \ncontainerd rc \n", False, ["remove chrony"]),
        ("chrony:arm64 ii \ncontainerd ii \n", True, []),
    ],
    ids=["noop", "one-missing", "none-known", "remove", "multiarch-name"],
)
def test_packages(dpkg, present, wanted):
    step = Packages(["chrony", "containerd"], present=present)
    assert summaries(step, {"dpkg": FactResult(0, dpkg)}) == wanted


@pytest.mark.parametrize(
    ("enabled", "active", "want", "wanted"),
    [
        ("enabled", "active", (True, True), []),
        ("disabled", "inactive", (True, True), ["enable x", "start x"]),
        ("static", "active", (True, True), []),
        ("enabled", "active", (False, False), ["disable x", "stop x"]),
        ("enabled", "failed", (None, True), ["start x"]),
    ],
    ids=["noop", "enable-start", "static-unit", "disable-stop", "running-only"],
)
def test_service(enabled, active, want, wanted):
    step = Service("x", enabled=want[0], running=want[1])
    facts = {"enabled": FactResult(0, enabled + "\n"), "active": FactResult(0, active + "\n")}
    assert summaries(step, facts) == wanted


def test_command_guards():
    unless = Command("make swap go", "swapoff -a", unless="! grep -q / /proc/swaps")
    assert unless.plan({"guard": FactResult(0, "")}) == []
    assert summaries(unless, {"guard": FactResult(1, "")}) == ["run: swapoff -a"]
    only = Command("x", "y", only_if="test -e /z")
    assert only.plan({"guard": FactResult(1, "")}) == []
    with pytest.raises(ValueError):
        Command("x", "y")


def test_directory():
    step = Directory("/etc/containerd", mode="755")
    assert summaries(step, {"dir": FactResult(1, "")}) == ["create directory /etc/containerd"]
    assert step.plan({"dir": FactResult(0, "755 root root\n")}) == []
    assert summaries(step, {"dir": FactResult(0, "700 root root\n")}) == [
        "chmod 755 /etc/containerd (was 700)"]


def test_line_and_tokens_steps_plan_from_current_content():
    line = LineInFile("/etc/fstab", "#/swapfile none swap sw 0 0", match="/swapfile")
    (change,) = line.plan({"file": file_fact("proc /proc proc defaults 0 0\n"
                                             "/swapfile none swap sw 0 0\n")})
    assert "-/swapfile none swap sw 0 0" in change.diff
    tokens = Tokens("/boot/firmware/cmdline.txt", ["cgroup_memory=1"])
    assert tokens.plan({"file": file_fact("a cgroup_memory=1\n")}) == []


@pytest.mark.parametrize(
    "outputs",
    [["a\n", "b"], ["", ""], ["no newline", "x\n\n"], ["@@greenroom-fake 0\n", "z"]],
    ids=["plain", "empty", "trailing-newlines", "marker-lookalike"],
)
def test_batch_roundtrip_through_real_sh(outputs):
    commands = {f"k{i}": f"printf %s {shlex.quote(out)}" for i, out in enumerate(outputs)}
    commands["fails"] = "exit 3"
    marker = "@@greenroom-0123456789abcdef"
    done = subprocess.run(["sh", "-c", batch_script(commands, marker)],
                          capture_output=True, text=True, check=True)
    results = split_batch(done.stdout, list(commands), marker)
    assert [results[f"k{i}"].out for i in range(len(outputs))] == outputs
    assert results["fails"].rc == 3


def run_write(tmp_path: Path, content: str, stdin: str, validate: str | None = None):
    target = tmp_path / "target.conf"
    script = write_command(str(target), content, "600", "root", "root", validate)
    done = subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, text=True)
    return target, done


def test_write_is_atomic_and_keeps_backup(tmp_path, monkeypatch):
    from runbooks.core.steps import files

    monkeypatch.setattr(files, "BACKUP_DIR", str(tmp_path / "backups"))
    target, done = run_write(tmp_path, "new\n", "new\n")
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "new\n" and oct(target.stat().st_mode)[-3:] == "600"
    target.write_text("old\n")
    target, done = run_write(tmp_path, "newer\n", "newer\n")
    assert done.returncode == 0
    backups = list((tmp_path / "backups").rglob("target.conf.*"))
    assert [b.read_text() for b in backups] == ["old\n"]
    assert [p.name for p in tmp_path.iterdir() if ".greenroom." in p.name] == []


def test_write_refuses_truncated_content(tmp_path):
    target = tmp_path / "target.conf"
    target.write_text("old\n")
    target, done = run_write(tmp_path, "a long wanted content\n", "a long wan")
    assert done.returncode == 4 and "incomplete" in done.stderr
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if ".greenroom." in p.name] == []


def test_write_validation_failure_keeps_old_file(tmp_path):
    target = tmp_path / "target.conf"
    target.write_text("old\n")
    target, done = run_write(tmp_path, "bad\n", "bad\n", validate="grep -q good {}")
    assert done.returncode == 3 and "validation failed" in done.stderr
    assert target.read_text() == "old\n"


class LocalShell:
    """Runs gather's script with the local sh, as the remote host would."""

    def run(self, command, stdin=None):
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                              check=False)


def test_gather_reads_many_files_with_one_stat_and_one_grep(tmp_path):
    from runbooks.core.facts import file_command, gather, parse_file, sysctl_command

    contents = {
        "plain.conf": "a\nb\n",
        "no-newline.txt": "console=tty1 rootwait",
        "empty": "",
        "blank-lines": "\n\nx\n\n",
        "with space.conf": "k = v\n",
        "looks-like-grep": f"{tmp_path}/plain.conf:1:fake\n",
    }
    for name, text in contents.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "adir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "plain.conf")
    names = [*contents, "missing", "adir", "link"]
    commands = {n: file_command(str(tmp_path / n)) for n in names}
    commands["shell"] = "printf 'x y'"
    commands["sysctl"] = sysctl_command("vm.swappiness")
    results = gather(LocalShell(), commands)
    for name, text in contents.items():
        assert parse_file(results[name]).content == text, name
    assert parse_file(results["link"]).content == "a\nb\n"
    assert parse_file(results["missing"]).content is None
    assert parse_file(results["adir"]).content is None
    assert parse_file(results["plain.conf"]).mode == "644"
    assert results["shell"].out == "x y"
    assert results["sysctl"].out == open("/proc/sys/vm/swappiness").read()


def test_commands_that_could_disturb_the_script_get_a_subshell():
    script = batch_script({"a": "exit 3", "b": "echo ok", "c": "x=1; echo $x"}, "@@m")
    assert "( exit 3\n)" in script and "{ echo ok\n}" in script and "( x=1; echo $x\n)" in script
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    results = split_batch(done.stdout, ["a", "b", "c"], "@@m")
    assert [r.rc for r in results.values()] == [3, 0, 0]
    assert results["b"].out == "ok\n" and results["c"].out == "1\n"


def test_sysctl_key_to_proc_path():
    from runbooks.core.facts import sysctl_command

    assert sysctl_command("net.ipv4.conf.eth0/100.forwarding") == \
        "cat /proc/sys/net/ipv4/conf/eth0.100/forwarding"


@pytest.mark.parametrize("mode,chmod", [("600", False), ("644", False), ("640", False),
                                        ("755", True), ("2750", True)],
                         ids=["600", "644", "640", "755-exec", "2750-setgid"])
def test_write_sets_the_mode_through_the_umask_when_it_can(tmp_path, mode, chmod):
    target = tmp_path / "t"
    script = write_command(str(target), "x\n", mode, "root", "root", None)
    assert ('chmod ' in script) is chmod
    (tmp_path / ".t.greenroom.stale1").write_text("left by a cut connection")
    done = subprocess.run(["sh", "-c", script], input="x\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{target.stat().st_mode & 0o7777:o}" == mode.lstrip("0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_directories_are_read_by_the_batch_stat(tmp_path):
    from runbooks.core.facts import dir_command, file_command, gather

    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d").chmod(0o750)
    (tmp_path / "f").write_text("x\n")
    (tmp_path / "to-d").symlink_to(tmp_path / "d")
    names = ["d", "f", "to-d", "missing"]
    commands = {n: dir_command(str(tmp_path / n)) for n in names}
    commands["file"] = file_command(str(tmp_path / "f"))
    results = gather(LocalShell(), commands)
    assert [(n, results[n].rc) for n in names] == [("d", 0), ("f", 1), ("to-d", 0),
                                                    ("missing", 1)]
    assert results["d"].out.split()[0] == "750"
    step = Directory(str(tmp_path / "d"), mode="750", owner=results["d"].out.split()[1],
                     group=results["d"].out.split()[2])
    assert step.plan({"dir": results["d"]}) == []
    assert results["file"].ok  # the file of the same batch still read in full


@pytest.mark.parametrize("mode,owner,programs", [
    ("750", "root", ["mkdir"]),
    ("2775", "root", ["mkdir"]),
    ("755", "nobody", ["mkdir", "chown"]),
], ids=["root-one-process", "setgid-mode", "other-owner-chowns"])
def test_a_new_directory_costs_one_process_when_root_owns_it(tmp_path, mode, owner, programs):
    """`mkdir -m` sets the mode (and, unlike chmod after it, in the same process); chown
    runs only when the directory is not already owned as wanted."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("strace"):
        pytest.skip("needs root (chown) and strace")
    target = tmp_path / "a" / "b"
    [change] = Directory(str(target), mode=mode, owner=owner, group=owner if owner == "root"
                         else "nogroup").plan({"dir": FactResult(1, "")})
    trace = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "sh", "-c",
                    change.actions[0].command], check=True)
    started = [line.split('"')[1].rsplit("/", 1)[-1] for line in trace.read_text().splitlines()
               if "execve(" in line][1:]  # the first is sh itself
    assert started == programs
    st = target.stat()
    assert oct(st.st_mode & 0o7777)[2:] == mode.lstrip("0")
    import pwd
    assert pwd.getpwuid(st.st_uid).pw_name == owner
