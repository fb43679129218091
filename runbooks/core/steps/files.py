"""File steps: whole files, lines, tokens and directories, written atomically and validated.

Every write goes to a temporary file beside the target, is checked against the SHA-256 of
the wanted content (so a connection lost mid-transfer never activates half a file), is
validated with the step's validator, and only then renamed over the target. The replaced
file is kept under /var/backups/greenroom/ with a timestamp.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import secrets
import shlex
import time
from collections.abc import Callable, Mapping, Sequence

from runbooks.core.facts import FactResult, FileState, dir_command, file_command, parse_file
from runbooks.core.steps.base import Action, Change, Step, StepFailed

BACKUP_DIR = "/var/backups/greenroom"
SECRET_DIFF = "(content hidden: it holds secrets)"
# Kernel arguments that may stand several times with different values, each its own token.
REPEATABLE_KEYS = frozenset({"cgroup_enable", "console"})


def unified_diff(path: str, old: str | None, new: str | None) -> str:
    """A unified diff between the current and the wanted content of `path`."""
    before = (old or "").splitlines(keepends=True)
    after = (new or "").splitlines(keepends=True)
    for lines in (before, after):
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n\\ No newline at end of file\n"
    label_old = path if old is not None else "/dev/null"
    label_new = path if new is not None else "/dev/null"
    return "".join(difflib.unified_diff(before, after, label_old, label_new))


def write_command(
    path: str,
    content: str,
    mode: str,
    owner: str,
    group: str,
    validate: str | None,
) -> str:
    """The remote script that writes `content` (read from stdin) to `path` atomically.

    A converging fleet pays for every process this script starts on every host, so it
    starts few: the directories are made only when missing, stale temporary files removed
    only when there are any, the temporary file is created by the shell itself (its name
    random, `set -C` refusing one that exists) with the wanted mode through the umask when
    the mode allows it (no execute or special bits), and chown runs only when the file is
    not already owned as wanted. What remains: cat, sha256sum, sync, mv (and cp of the
    replaced file into the backups, the validator, chmod/chown when needed). In a batch,
    `staged_write` starts fewer."""
    script, _ = _write_script(path, content, mode, owner, group, validate, from_stdin=True)
    return (f'{script}sync "$tmp" 2>/dev/null || true\n'
            f'mv -f "$tmp" {shlex.quote(path)}\ntrap - EXIT\n')


def staged_write(
    path: str,
    content: str,
    mode: str,
    owner: str,
    group: str,
    validate: str | None,
) -> tuple[str, str]:
    """`write_command` for a batch (`Action.whole` and `Action.staged`): the script, and
    the temporary file it leaves behind, validated, for the batch to sync and rename over
    `path` (runbooks.core.apply: one `sync` for the staged writes next to each other).

    The batch's script is parsed whole by the shell before any of it runs, so the content
    travels in the script itself (`printf`, a shell builtin) and cannot arrive cut: no `cat`
    of stdin and no SHA-256 check, which are for stdin that a lost connection may end early.
    `content` must not hold a NUL byte (a shell string cannot)."""
    if "\0" in content:
        raise ValueError(f"{path}: content with a NUL byte travels on stdin only")
    script, tmp = _write_script(path, content, mode, owner, group, validate, from_stdin=False)
    return script + "trap - EXIT\n", tmp


def _write_script(
    path: str,
    content: str,
    mode: str,
    owner: str,
    group: str,
    validate: str | None,
    *,
    from_stdin: bool,
) -> tuple[str, str]:
    """Everything up to the sync and rename: the temporary file filled (from stdin, checked
    by its SHA-256, or from the script), its mode and owner set, validated, the replaced
    file backed up; and the temporary file's path."""
    directory, base = posixpath.split(path)
    q = shlex.quote
    validator = ""
    if validate:
        check = validate.replace("{}", '"$tmp"')
        validator = (
            f'if ! out=$({check} 2>&1); then printf "validation failed (%s):\\n%s\\n" '
            f"{q(validate)} \"$out\" >&2; exit 3; fi\n"
        )
    temp = f"{q(directory)}/.{q(base)}.greenroom."
    tmp = f"{directory}/.{base}.greenroom.{secrets.token_hex(6)}"
    bits = int(mode, 8)
    if bits & ~0o666:  # execute or special bits: the umask cannot give them
        create, set_mode = "umask 077\n", f'chmod {q(mode)} "$tmp"\n'
    else:
        create, set_mode = f"umask {0o666 & ~bits:03o}\n", ""
    if (owner, group) == ("root", "root"):
        # root writes as root: the file is already root's unless the directory says otherwise
        set_owner = f'[ -O "$tmp" ] && [ -G "$tmp" ] || chown {q(owner)}:{q(group)} "$tmp"\n'
    else:
        set_owner = f'chown {q(owner)}:{q(group)} "$tmp"\n'
    if from_stdin:
        digest = hashlib.sha256(content.encode()).hexdigest()
        fill = ('cat > "$tmp"\n'
                f'echo "{digest}  $tmp" | sha256sum -c - >/dev/null 2>&1 || '
                '{ echo "content arrived incomplete; nothing was changed" >&2; exit 4; }\n')
    else:
        # the comment names the write for readers of the script (the fault campaign's
        # harness, tests/support/faultcut.py): what it puts where, at no cost on the host
        digest = hashlib.sha256(content.encode()).hexdigest()
        fill = (f"# greenroom writes {q(path)} sha256 {digest}\n"
                f'printf %s {q(content)} > "$tmp"\n')
    return (
        "set -e\n"
        f"[ -d {q(directory)} ] || mkdir -p {q(directory)}\n"
        f'for f in {temp}*; do if [ -e "$f" ]; then rm -f -- "$f"; fi; done\n'
        f"tmp={q(tmp)}\n"
        f'{create}set -C; : > "$tmp"; set +C; umask 022\n'
        "trap 'rm -f \"$tmp\"' EXIT\n"
        f"{fill}"
        f"{set_mode}{set_owner}"
        f"{validator}"
        f"{backup_command(path)}\n"
    ), tmp


def backup_command(path: str) -> str:
    """The shell line that keeps `path`, when there, under BACKUP_DIR with a timestamp
    (what every file step does before it replaces a file)."""
    q = shlex.quote
    directory, base = posixpath.split(path)
    backup_dir = q(BACKUP_DIR + directory)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return (f"if [ -e {q(path)} ]; then [ -d {backup_dir} ] || mkdir -p {backup_dir}; "
            f"cp -p {q(path)} {backup_dir}/{q(base)}.{stamp}; fi")


class Edit(Step):
    """Ensure a file's content is what `transform(current_content)` says.

    The base of every file step: `File` ignores the current content, `LineInFile` and
    `Tokens` edit it. `transform` gets None for a missing file and returns the wanted
    content, or None to leave a missing file absent.
    """

    def __init__(
        self,
        path: str,
        transform: Callable[[str | None], str | None],
        *,
        name: str | None = None,
        mode: str | None = None,
        owner: str = "root",
        group: str = "root",
        validate: str | None = None,
        secret: bool = False,
        notify: Sequence[str] = (),
        reboot: bool = False,
    ) -> None:
        if not posixpath.isabs(path):
            raise ValueError(f"file steps need an absolute path, got {path!r}")
        self.path = path
        self.transform = transform
        self.name = name or f"Ensure {path}"
        self.mode = mode
        self.owner = owner
        self.group = group
        self.validate = validate
        self.secret = secret
        self.notify = tuple(notify)
        self.reboot = reboot

    def facts(self) -> Mapping[str, str]:
        return {"file": file_command(self.path)}

    def scope(self) -> frozenset[str] | None:
        # a subclass reading more than its file (its own facts) cannot be batched blindly
        return frozenset({f"file:{self.path}"}) if type(self).facts is Edit.facts else None

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        state = parse_file(facts["file"])
        try:
            wanted = self.transform(state.content)
        except ValueError as exc:
            raise StepFailed(f"{self.path}: {exc}") from exc
        if wanted is None:
            return []
        mode = self.mode or state.mode or "644"
        changes: list[Change] = []
        if wanted != state.content:
            diff = SECRET_DIFF if self.secret else unified_diff(self.path, state.content, wanted)
            verb = "create" if state.content is None else "update"
            args = (self.path, wanted, mode, self.owner, self.group, self.validate)
            action = Action(write_command(*args), wanted)
            if "\0" not in wanted:  # a shell string cannot hold one: on stdin only
                script, tmp = staged_write(*args)
                action = Action(action.command, wanted, script, (tmp, self.path))
            changes.append(Change(f"{verb} {self.path}", (action,), diff, reboot=self.reboot))
        else:
            changes.extend(self._metadata_changes(state, mode))
        return changes

    def _metadata_changes(self, state: FileState, mode: str) -> list[Change]:
        q = shlex.quote
        changes = []
        if state.mode is not None and state.mode.lstrip("0") != mode.lstrip("0"):
            changes.append(Change(f"chmod {mode} {self.path} (was {state.mode})",
                                  (Action(f"chmod {q(mode)} {q(self.path)}"),)))
        if (state.owner, state.group) != (self.owner, self.group):
            changes.append(Change(
                f"chown {self.owner}:{self.group} {self.path} (was {state.owner}:{state.group})",
                (Action(f"chown {q(self.owner)}:{q(self.group)} {q(self.path)}"),)))
        return changes


class File(Edit):
    """Ensure a file has exactly `content` (render templates with runbooks.core.templates)."""

    def __init__(self, path: str, content: str, **kwargs: object) -> None:
        kwargs.setdefault("mode", "644")
        super().__init__(path, lambda _current: content, **kwargs)  # type: ignore[arg-type]
        self.content = content


def ensure_line(content: str | None, line: str, match: str | None = None) -> str:
    """`content` with `line` present once: replaces the first line starting with `match`
    (or equal to `line`), drops later duplicates, appends when absent."""
    lines = (content or "").splitlines()
    key = match if match is not None else line
    out: list[str] = []
    placed = False
    for existing in lines:
        hit = existing == line or (match is not None and existing.startswith(key))
        if hit:
            if not placed:
                out.append(line)
                placed = True
            continue
        out.append(existing)
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"


class LineInFile(Edit):
    """Ensure `line` is in a file once; `match` (a line prefix) says which line it replaces."""

    def __init__(self, path: str, line: str, match: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("name", f"Ensure {line!r} in {path}")
        super().__init__(
            path, lambda current: ensure_line(current, line, match), **kwargs  # type: ignore
        )


def ensure_tokens(
    content: str | None, add: Sequence[str], remove: Sequence[str] = ()
) -> str:
    """A one-line file (like cmdline.txt) with `add` tokens present once each.

    Tokens are `key=value` or bare words. A present token with the same key but another
    value is replaced in place; other tokens keep their order; `remove` drops tokens by key
    or exact text; new tokens go at the end. Raises ValueError for a file of several lines.
    """
    text = (content or "").strip("\n")
    if "\n" in text:
        raise ValueError("expected a single line, found several; fix the file by hand first")
    tokens = text.split()

    def key(token: str) -> str:
        return token.split("=", 1)[0]

    drop = set(remove)
    tokens = [t for t in tokens if t not in drop and key(t) not in drop]
    for token in add:
        if "=" in token and key(token) in REPEATABLE_KEYS:
            if token not in tokens:
                tokens.append(token)
            continue
        same = [i for i, t in enumerate(tokens) if key(t) == key(token)]
        if not same:
            tokens.append(token)
            continue
        tokens[same[0]] = token
        for i in reversed(same[1:]):
            del tokens[i]
    return " ".join(tokens) + "\n"


class Tokens(Edit):
    """Ensure tokens in a one-line file such as /boot/firmware/cmdline.txt."""

    def __init__(
        self, path: str, add: Sequence[str], remove: Sequence[str] = (), **kwargs: object
    ) -> None:
        kwargs.setdefault("name", f"Ensure {' '.join(add)} in {path}")
        super().__init__(
            path, lambda current: ensure_tokens(current, add, remove), **kwargs  # type: ignore
        )


class Directory(Step):
    """Ensure a directory exists with a mode and owner."""

    def __init__(
        self, path: str, mode: str = "755", owner: str = "root", group: str = "root"
    ) -> None:
        self.path, self.mode, self.owner, self.group = path, mode, owner, group
        self.name = f"Ensure directory {path}"

    def facts(self) -> Mapping[str, str]:
        return {"dir": dir_command(self.path)}

    def scope(self) -> frozenset[str] | None:
        return frozenset({f"file:{self.path}"}) if type(self).facts is Directory.facts else None

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        q = shlex.quote
        p = q(self.path)
        fact = facts["dir"]
        if not fact.ok:
            # one process where three were: the mode from mkdir itself, and root's new
            # directory is root's already unless its parent says otherwise (as in write_command)
            chown = f"chown {q(self.owner)}:{q(self.group)} {p}"
            if (self.owner, self.group) == ("root", "root"):
                chown = f"{{ [ -O {p} ] && [ -G {p} ] || {chown}; }}"
            return [Change(f"create directory {self.path}", (Action(
                f"mkdir -p -m {q(self.mode)} {p} && {chown}"),))]
        mode, owner, group = (fact.out.split() + ["", "", ""])[:3]
        changes = []
        if mode.lstrip("0") != self.mode.lstrip("0"):
            changes.append(Change(f"chmod {self.mode} {self.path} (was {mode})",
                                  (Action(f"chmod {q(self.mode)} {p}"),)))
        if (owner, group) != (self.owner, self.group):
            changes.append(Change(f"chown {self.owner}:{self.group} {self.path}",
                                  (Action(f"chown {q(self.owner)}:{q(self.group)} {p}"),)))
        return changes
