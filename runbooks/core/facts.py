"""Facts: read remote state, many commands in one round trip, parsed by pure functions.

A fact is a shell command whose output and exit status describe some part of a host's
state. `gather` runs any number of them as one remote script, separating their outputs with
a marker no output can contain by chance, so a converged host costs one round trip.
Facts never change anything and run in check mode too.

A converged host's cost is mostly the processes that script starts on the host, so:
file facts (`file_command`), and every `cat` of one plain path, are not run one by one but
answered together by one `stat` and one `grep` over every file of the batch; commands run in
the script's own shell unless they could disturb it (`exit`, `cd`, assignments, ...), which
then get a subshell. A batch of file facts only (a converged plan of files, as most are) is
one program instead: `perl` (Essential on Debian, Raspberry Pi OS, Ubuntu) sent without
`sh -c`, printing exactly what `stat` and `grep` print (`files_reader`); a host where it
does not run falls back to the script.
"""

from __future__ import annotations

import re
import secrets as _random
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast

T = TypeVar("T")

FILE_FACT = "@greenroom-file:"
DIR_FACT = "@greenroom-dir:"
FILE_STAT_SEPARATOR = "@@greenroom-content"
# Commands that could change the batch script's own shell run in a subshell.
_NEEDS_SUBSHELL = re.compile(
    r"\b(exit|cd|set|trap|exec|export|unset|shift|return|readonly|local)\b|"
    r"(^|[;&|({]\s*)[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class FactResult:
    """The raw result of one fact command."""

    rc: int
    out: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A named fact: one shell command and the pure function that parses its result.

    Define a fact once (beside the code that knows its subject) and use it everywhere: a
    step lists `fact.command` among its facts and reads `fact.parse(result)`. `gather`
    runs a command once per batch however many steps ask for it.
    """

    name: str
    command: str
    parse: Callable[[FactResult], T]

    def read(self, facts: Mapping[str, FactResult], key: str | None = None) -> T:
        """Parse this fact's result from `facts` (stored under `key`, default its name)."""
        return self.parse(facts[key or self.name])


class Runs(Protocol):
    def run(self, command: str, stdin: str | bytes | None = None) -> object: ...


def batch_script(commands: Mapping[str, str], marker: str,
                 own: frozenset[str] = frozenset()) -> str:
    """One POSIX sh script that runs every command and frames each output with `marker`.
    Commands under the keys in `own` (the engine's own, known not to disturb the script's
    shell) never get a subshell."""
    parts = ["exec 2>/dev/null </dev/null"]
    for key, command in commands.items():
        if key not in own and _NEEDS_SUBSHELL.search(command):
            parts.append(f"( {command}\n)")
        else:
            parts.append(f"{{ {command}\n}}")
        parts.append(f'printf "\\n{marker} %s\\n" "$?"')
    return "\n".join(parts) + "\n"


def split_batch(output: str, keys: list[str], marker: str) -> dict[str, FactResult]:
    """Cut a batch script's output back into one FactResult per key: each ends at the next
    "\\n<marker> <status>\\n". (Searched as text: a regular expression of the batch's random
    marker was compiled anew for every host, 0.35 ms of CPU each.)"""
    tag = "\n" + marker + " "
    results: dict[str, FactResult] = {}
    position = 0
    for key in keys:
        start = output.find(tag, position)
        while start >= 0:
            end = output.find("\n", start + len(tag))
            status = output[start + len(tag):end] if end >= 0 else ""
            if status.isascii() and status.isdigit():
                break
            start = output.find(tag, start + 1)
        if start < 0:
            raise ValueError(f"fact output ended early: no result for {key!r}")
        results[key] = FactResult(int(status), output[position:start])
        position = end + 1
    return results


def gather(session: Runs, commands: Mapping[str, str]) -> dict[str, FactResult]:
    """Run all `commands` on the host in one round trip; returns their results by key.

    A batch of file facts only goes as one program (`files_reader`) when the session can
    send one (`run_program`: no `sh -c` around it); its output must parse, else the script
    runs as usual (and the session sends no more programs to that host)."""
    if not commands:
        return {}
    script, parse, program = _prepare(commands)
    send = getattr(session, "run_program", None)
    if program is not None and send is not None:
        found = send(program, lambda done: _parsed(parse, done))
        if found is not None:
            return cast("dict[str, FactResult]", found)
    result = session.run(script)
    return parse(getattr(result, "stdout", ""))


def _parsed(parse: Callable[[str], dict[str, FactResult]],
            done: object) -> dict[str, FactResult] | None:
    """The program's results, or None when it did not run as written (no perl on the
    host, a login shell that reads the line otherwise): its output is then no batch."""
    if getattr(done, "rc", 1) != 0:
        return None
    try:
        return parse(getattr(done, "stdout", ""))
    except ValueError:
        return None


def prepare(
    commands: Mapping[str, str],
) -> tuple[str, Callable[[str], dict[str, FactResult]]]:
    """The batch script for `commands` and the function that parses its output: `gather`
    in two halves, so a caller can run the script inside a larger one (the converger sends
    it in the same round trip as the changes it verifies)."""
    script, parse, _ = _prepare(commands)
    return script, parse


def _prepare(
    commands: Mapping[str, str],
) -> tuple[str, Callable[[str], dict[str, FactResult]], str | None]:
    """`prepare`, and the one program that answers the batch instead of the script when
    every command is a file, directory or plain `cat` read (else None); both print the same."""
    files = {key: c[len(FILE_FACT):] for key, c in commands.items() if c.startswith(FILE_FACT)}
    dirs = {key: c[len(DIR_FACT):] for key, c in commands.items() if c.startswith(DIR_FACT)}
    # `cat PATH` of one plain path (sysctl_command, /proc/swaps, /etc/os-release, a lease
    # file): read by the batch's grep, not a process of its own
    reads = {key: m.group(1) for key, c in commands.items() if (m := _CAT_READ.fullmatch(c))}
    # the same command asked by several steps runs once; its result goes to every key
    first: dict[str, str] = {}
    shell: dict[str, str] = {}
    for key, command in commands.items():
        if (key not in files and key not in dirs and key not in reads
                and first.setdefault(command, key) == key):
            shell[key] = command
    paths = list(dict.fromkeys([*files.values(), *reads.values()]))
    stat_paths = list(dict.fromkeys([*paths, *dirs.values()]))
    if stat_paths:
        shell[_STAT] = stat_command(stat_paths)
    if paths:
        shell[_GREP] = grep_command(paths)
    marker = "@@greenroom-" + _random.token_hex(8)

    def parse(output: str) -> dict[str, FactResult]:
        results = split_batch(output, list(shell), marker)
        stat_out = results.pop(_STAT).out if stat_paths else ""
        if paths:
            states = files_from(paths, stat_out, results.pop(_GREP).out)
            results.update({key: states[path] for key, path in files.items()})
            for key, path in reads.items():
                content = parse_file(states[path]).content
                results[key] = FactResult(1, "") if content is None else FactResult(0, content)
        if dirs:
            found = dirs_from(stat_out)
            results.update({key: found.get(path, FactResult(1, "")) for key, path in dirs.items()})
        for key, command in commands.items():
            if key not in results:
                results[key] = results[first[command]]
        return results

    script = batch_script(shell, marker, own=frozenset({_STAT, _GREP}))
    program = None
    if set(shell) <= {_STAT, _GREP} and all(map(_SAFE_WORD.fullmatch, stat_paths)):
        program = files_reader(marker, paths, stat_paths)
    return script, parse, program


# -- files ----------------------------------------------------------------------------------

_STAT = "\0stat"
_GREP = "\0grep"
# `cat` of one absolute path of plain characters (no shell syntax, no glob): answered from
# the batch's stat and grep as `cat` answers it (the content, exit 1 and nothing when it is
# no regular file or missing; the file's own last line kept without a newline it lacks,
# by its size; a pseudo-file of /proc or /sys, whose size says 0, ends as grep ends it,
# with a newline, as theirs do; so does a file that is not UTF-8 and lacks its last newline,
# as a file fact's content)
_CAT_READ = re.compile(r"cat (/[A-Za-z0-9_./+,:@%=-]+)")


def read_by_files(command: str) -> bool:
    """The batch answers `command` from its one stat and one grep (a file or directory fact,
    a plain `cat`), not with a process of its own: split a batch in several, such commands
    belong together."""
    return command.startswith((FILE_FACT, DIR_FACT)) or _CAT_READ.fullmatch(command) is not None


def file_command(path: str) -> str:
    """The fact for a file's mode, owner, group and content (parse it with `parse_file`).

    Answered by `gather` together with every other file of the batch; a file that does not
    exist, or is not a regular file, gives rc 1."""
    return FILE_FACT + path


def dir_command(path: str) -> str:
    """The fact for a directory: rc 0 and "MODE OWNER GROUP" when `path` is a directory
    (symbolic links followed), else rc 1. Answered by the batch's one `stat`."""
    return DIR_FACT + path


def dirs_from(stat_out: str) -> dict[str, FactResult]:
    """`dir_command` results, by path, for the directories in a batch's stat output."""
    found = {}
    for line in stat_out.splitlines():
        head, sep, path = line.partition("|")
        fields = head.split()
        if sep and len(fields) >= 5 and fields[4] == "directory":
            found[path] = FactResult(0, " ".join(fields[1:4]) + "\n")
    return found


# In the C locale: `stat`'s %F is translated ("reguläre Datei" where the host's session
# has a German LANG or LANGUAGE), and every file would read as missing; it also spares both
# tools loading the host's locale (about 0.5 ms of CPU per host).
def stat_command(paths: list[str]) -> str:
    return "LC_ALL=C stat -L -c '%s %a %U %G %F|%n' -- " + " ".join(shlex.quote(p) for p in paths)


def grep_command(paths: list[str]) -> str:
    # -H -n: every line prefixed with its file and number, so one process reads every file
    return "LC_ALL=C grep -a -s -H -n '' -- " + " ".join(shlex.quote(p) for p in paths)


# The files reader: one perl program that prints, byte for byte, what the batch's `stat`
# (every path) and `grep` (the first K paths, the files to read) print, each part ended by
# the batch's marker line, so `files_from` and `dirs_from` parse either. Only files that
# stat as regular are read (grep would block on a fifo); bytes are copied as they are (-C0:
# no PERL_UNICODE layers; -T: no PERL5OPT; no `use locale`); each owner and group is looked
# up once. One line with no quote, backslash or `!`, and every other word of the command
# line a plain word: POSIX login shells and fish pass it to perl unchanged without `sh -c`
# around it; csh, which runs no `LC_ALL=C perl`, fails it, and the batch script runs.
_READER = (
    '($m,$k,@p)=@ARGV;$n=$/;$r=0;'
    'for$q(@p){if(@s=stat$q){'
    '$t=-f _?($s[7]?"regular file":"regular empty file"):-d _?"directory":-p _?"fifo":'
    '-S _?"socket":-c _?"character special file":-b _?"block special file":"weird file";'
    '$f{$q}=-f _;print join(" ",$s[7],sprintf("%o",$s[2]&07777),'
    '$u{$s[4]}//=(getpwuid$s[4])[0]//"UNKNOWN",$g{$s[5]}//=(getgrgid$s[5])[0]//"UNKNOWN",'
    '$t),"|$q$n"}'
    'else{$r=1}}'
    'print"$n$m $r$n";'
    'for$q(@p[0..$k-1]){$i=0;if($f{$q}and open F,"<",$q){'
    'while(defined($l=<F>)){$i++;$l.=$n if substr($l,-1)ne$n;print"$q:$i:$l"}close F}}'
    'print"$n$m 0$n"if$k'
)
# words every shell leaves as they are (an absolute path of these characters)
_SAFE_WORD = re.compile(r"/[A-Za-z0-9_./+,:@%=-]*")


def files_reader(marker: str, paths: list[str], stat_paths: list[str]) -> str:
    """The command line of the files reader for a batch (see `_READER`): `stat_paths`
    stated, the first `len(paths)` of them (`paths`) read. Every path must be a plain word
    (`_SAFE_WORD`); in the C locale, which spares perl loading the host's."""
    assert stat_paths[:len(paths)] == paths
    return (f"LC_ALL=C perl -T -C0 -e '{_READER}' {marker} {len(paths)} "
            + " ".join(stat_paths))


def files_from(paths: list[str], stat_out: str, grep_out: str) -> dict[str, FactResult]:
    """Per-path results in `file_command`'s format from one stat and one grep output."""
    meta: dict[str, tuple[int, str]] = {}
    for line in stat_out.splitlines():
        head, sep, path = line.partition("|")
        fields = head.split()
        if sep and len(fields) >= 5 and " ".join(fields[4:]).startswith("regular"):
            meta[path] = (int(fields[0]), " ".join(fields[1:4]))
    lines: dict[str, list[str]] = {p: [] for p in paths}
    current = 0
    for line in grep_out.split("\n")[:-1] if grep_out.endswith("\n") else grep_out.split("\n"):
        current = _owner_of(line, paths, lines, current)
        if current < 0:
            current = 0
            continue
        path = paths[current]
        prefix = f"{path}:{len(lines[path]) + 1}:"
        lines[path].append(line[len(prefix):])
    results = {}
    for path in paths:
        if path not in meta:
            results[path] = FactResult(1, "")
            continue
        size, head = meta[path]
        content = "".join(line + "\n" for line in lines[path])
        if len(content.encode()) == size + 1:  # grep ends every line; the file did not
            content = content[:-1]
        results[path] = FactResult(0, f"{head}\n{FILE_STAT_SEPARATOR}\n{content}")
    return results


def _owner_of(line: str, paths: list[str], lines: dict[str, list[str]], current: int) -> int:
    """Index of the file a grep output line belongs to: the current one if it continues its
    numbering, else the next file whose first line this is; -1 when none fits."""
    for index in range(current, len(paths)):
        path = paths[index]
        expected = len(lines[path]) + 1 if index == current else 1
        if line.startswith(f"{path}:{expected}:"):
            return index
    return -1


@dataclass(frozen=True)
class FileState:
    """What `file_command` found: None content means the file does not exist."""

    content: str | None
    mode: str | None = None
    owner: str | None = None
    group: str | None = None


def parse_file(result: FactResult) -> FileState:
    if not result.ok:
        return FileState(None)
    head, _, content = result.out.partition(f"\n{FILE_STAT_SEPARATOR}\n")
    fields = head.split()
    if len(fields) != 3:
        return FileState(None)
    return FileState(content, fields[0], fields[1], fields[2])


# -- kernel settings -------------------------------------------------------------------------

def sysctl_command(key: str) -> str:
    """Read a sysctl's live value from /proc/sys with `cat`. (Not the shell's `read`: it
    reads byte by byte, and /proc's integer handlers answer EOF to any read past offset 0,
    so `60` would come back as `6`.)"""
    # sysctl keys use "." between levels and "/" for a dot inside a name (eth0/100)
    path = "/proc/sys/" + key.replace(".", "\0").replace("/", ".").replace("\0", "/")
    return f"cat {shlex.quote(path)}"
