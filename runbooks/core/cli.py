"""The options every task shares, in one place: `runbook_task` and the `task` decorator.

Every runbook task (`runbook_task`) takes --inventory/-i, --host/-H, --check, --parallel,
--report and --accept-new-host-keys, plus options of its own; other tasks name the shared
options they take with `@task(shared=("inventory", ...))` and get the same help text.
Defaults come only from invoke.yaml (greenroom.inventory, greenroom.parallel). Bad input (an
invalid inventory, an unknown host, a bad option value, the lab not running: every
`UsageError`) is reported in one line, before any connection is opened, with exit status 2.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Argument, Context, Exit, Task

from runbooks.core.errors import UsageError

if TYPE_CHECKING:
    from runbooks.core.runner import Runbook

COMMON_HELP = {
    "inventory": "Inventory file describing the site (default: greenroom.inventory in "
                 "invoke.yaml).",
    "host": "Hosts to act on: host names or role names, comma separated (default: every "
            "host with the runbook's roles).",
    "check": "Show what would change, with a diff for every file, and change nothing.",
    "parallel": "How many hosts to converge at once (default: greenroom.parallel in "
                "invoke.yaml).",
    "report": "Also write the run's result as JSON to this file.",
    "accept_new_host_keys": "Trust host keys seen for the first time and record them in "
                            "~/.ssh/known_hosts (a changed key is always refused).",
}


PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "invoke.yaml"


def settings(c: Context) -> Mapping[str, Any]:
    """greenroom's section of the Invoke configuration: what `inv` loaded from invoke.yaml,
    else (a task called from Python with a bare Context) that same file, read here."""
    try:
        found = c.config.get("greenroom")
    except AttributeError:
        found = None
    return dict(found) if found else _project_settings()


@lru_cache(maxsize=1)
def _project_settings() -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(PROJECT_CONFIG.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return dict(data.get("greenroom") or {}) if isinstance(data, dict) else {}


def default(c: Context, key: str) -> Any:
    """greenroom.<key> from invoke.yaml, the only place defaults live; UsageError if unset."""
    value = settings(c).get(key)
    if value is None:
        raise UsageError(f"no default for --{key.replace('_', '-')}: set greenroom.{key} in "
                         f"invoke.yaml (next to tasks.py), or pass --{key.replace('_', '-')}")
    return value


def inventory_path(c: Context, path: str | None) -> str:
    """The inventory a task uses: --inventory, else greenroom.inventory from invoke.yaml."""
    return str(path or default(c, "inventory"))


def parallel_of(c: Context, parallel: int | None) -> int:
    """How many hosts at once: --parallel, else greenroom.parallel from invoke.yaml."""
    value = parallel or default(c, "parallel")
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise UsageError(f"--parallel {value!r}: give a whole number of hosts, at least 1")
    return count


def parallel_or_exit(c: Context, parallel: int | None) -> int:
    """`parallel_of` for a task body: a bad value ends the task in one line, exit 2."""
    with usage_errors_exit():
        return parallel_of(c, parallel)


def usage_errors_exit() -> Any:
    """A context manager turning any UsageError into a one-line message and exit 2."""
    @contextlib.contextmanager
    def guard() -> Any:
        try:
            yield
        except UsageError as exc:
            from runbooks.core import secrets

            raise Exit(secrets.mask(str(exc)), code=2) from None

    return guard()


def load_inventory_or_exit(c: Context, path: str | None) -> Any:
    """Load and validate the inventory, or exit 2 with every problem it has."""
    from runbooks.core.inventory import load_inventory

    with usage_errors_exit():
        return load_inventory(inventory_path(c, path))


def execute(c: Context, runbook: Runbook, inventory: str | None, host: str | None,
            check: bool, parallel: int | None, report: str | None,
            accept_new_host_keys: bool, options: Mapping[str, Any]) -> Any:
    """Validate everything, run the runbook, print the recap, exit non-zero on failure."""
    from runbooks.core.runner import run_runbook, select_hosts, write_report

    with usage_errors_exit():
        with collector_paused():  # the start-up's objects
            inv = load_inventory_or_exit(c, inventory)
            count = parallel_of(c, parallel)
            hosts = select_hosts(inv, runbook, host)
        if not hosts:
            raise UsageError(f"{inv.path}: no host has role {', '.join(runbook.roles)}; "
                             f"nothing for {runbook.name} to do")
        result = run_runbook(runbook, inv, hosts, check=check, parallel=count,
                             options=options, accept_new_host_keys=accept_new_host_keys)
        spare_the_collector()  # the run's (SSH's modules among them), before the exit's
    if report:
        write_report(result, report)
    if not result.ok:
        raise Exit(code=1)
    return result


def spare_the_collector() -> None:
    """What the process made so far (modules, classes, the inventory; after the run, SSH's
    modules and the results) lives until it ends: move it out of the garbage collector's
    sight (`gc.freeze`), so neither the collections during the run nor the last one at
    exit walk it again. A no-op process spends tens of ms of CPU less (bench/README.md,
    session 7). Frozen objects are still freed when their last reference goes; only a
    reference cycle among them waits for the process's end."""
    import gc

    gc.freeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection while the block runs; what it made is then frozen
    (`gc.freeze`) and collection resumes as it was.

    For a command's start-up (imports, the inventory, planning: tens of thousands of objects
    that live until the process ends): the collector would walk each of them a few times
    while they are made, and again in every later full collection and at exit, ~60 ms of
    CPU per demo.check (bench/README.md, issue 15, session 9). Cyclic garbage made inside
    the block is kept until the process ends, so keep it to bounded stretches of work."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def resolve(runbook: Runbook | str) -> Runbook:
    """A Runbook, given itself or as "package.module:NAME" (imported only when run, so
    that listing tasks or running another one never pays for this runbook's imports)."""
    if isinstance(runbook, str):
        module, _, attribute = runbook.partition(":")
        return getattr(import_module(module), attribute)  # type: ignore[no-any-return]
    return runbook


def runbook_task(
    runbook: Runbook | str,
    doc: str,
    *,
    name: str | None = None,
    extra: Mapping[str, tuple[Any, str]] | None = None,
    default: bool = False,
) -> Task:
    """An Invoke task running `runbook` (a Runbook or "module:NAME"; then give `name`);
    `extra` maps option name -> (default, help)."""
    extra = dict(extra or {})
    if name is None:
        if isinstance(runbook, str):
            raise ValueError(f"runbook_task({runbook!r}) needs name=")
        name = runbook.name

    def body(c: Context, **kwargs: Any) -> Any:
        common = {k: kwargs.pop(k) for k in COMMON_HELP}
        return execute(c, resolve(runbook), options=kwargs, **common)

    params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    defaults = {"inventory": None, "host": None, "check": False, "parallel": 0,
                "report": None, "accept_new_host_keys": False}
    defaults.update({k: v[0] for k, v in extra.items()})
    for key, value in defaults.items():
        params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=value))
    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    body.__doc__ = doc
    body.__name__ = name.replace("-", "_")
    help_text = dict(COMMON_HELP)
    help_text.update({k: v[1] for k, v in extra.items()})
    return GreenroomTask(body, name=name, help=help_text, default=default,
                         positional=[])


class WholeNumber(Argument):
    """An option whose value must be a whole number: a bad one ends the command with one
    line and exit 2 (Invoke itself would print a traceback)."""

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast)
        except ValueError:
            option = (self.name or "value").replace("_", "-")
            raise Exit(f"--{option} {value!r}: give a whole number, like "
                       f"{self.default or 1}", code=2) from None


class GreenroomTask(Task):
    """An Invoke task whose only short flags are the conventional -i and -H (unless it asks
    for Invoke's automatic ones), and whose whole-number options are checked."""

    SHORT = {"inventory": "i", "host": "H"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_shortflags", False)
        super().__init__(*args, **kwargs)

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        short = self.SHORT.get(name)
        if short and short not in opts["names"] and short not in taken_names:
            opts["names"] = [*opts["names"], short]
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments = super().get_arguments(ignore_unknown_help)
        for argument in arguments:
            if argument.kind is int:
                argument.__class__ = WholeNumber
        return arguments


def task(*args: Any, shared: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """The one decorator for greenroom's tasks: `invoke.task` with the short flags -i and
    -H, whole-number options checked, and help for each option named in `shared` (the
    options every runbook task shares: inventory, host, check, parallel, report,
    accept_new_host_keys) taken from COMMON_HELP, so their wording is the same everywhere."""
    from invoke import task as invoke_task

    unknown = [name for name in shared if name not in COMMON_HELP]
    if unknown:
        raise ValueError(f"task(shared=...): unknown {unknown}; known: {list(COMMON_HELP)}")
    kwargs["help"] = {**{name: COMMON_HELP[name] for name in shared}, **kwargs.get("help", {})}
    kwargs.setdefault("klass", GreenroomTask)
    return invoke_task(*args, **kwargs)
