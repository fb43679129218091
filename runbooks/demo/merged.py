"""Reads a host's batch asks as several processes, made by one: named cluster reads of one
namespace in one kubectl, and units' states in one systemctl.

MetalLB's plan reads its objects with one `kubectl get KIND/NAME ... -n NS --ignore-not-found
-o json` per step and namespace (runbooks/common/kubectl.py, `Manifests`): the install
manifest's objects and the custom resources are two steps, so two kubectl processes (on a
Pi 0.3-0.5 s each; in the lab a Python start of the k3s double each) read the same
namespace. demo.check only reads: `merge` asks them as ONE get of every object they name,
and `split` gives each asker the items it named, as a List, as kubectl prints a get of
several objects. Only gets of two or more plain KIND/NAME references are merged (a get of
one object prints the object itself, or nothing); when the merged read fails (the API down,
a kind not served yet: kubectl then refuses the whole call) each asker is read on its own,
so it fails or answers exactly as it would have.

Likewise every `systemctl is-active UNIT` and every reload guard of core's daemon_reloaded
(`systemctl show -p NeedDaemonReload UNIT | grep -qx NeedDaemonReload=yes`) of the batch
is one `systemctl show -p Id,ActiveState,NeedDaemonReload U1 U2 ...`, which prints one
block per unit, in order: each is-active asker gets its unit's ActiveState (what is-active
prints) and the exit status is-active gives that state (0 for active and reloading, else
3), each guard exit 0 when NeedDaemonReload=yes, else 1. Every `systemctl is-enabled UNIT`
is one `systemctl is-enabled U1 U2 ...` (one state per line; 0 for the enabled states, else
1; not from `show`: a SysV service's is-enabled asks systemd-sysv-install, where show says
"generated"). The engine's unit facts read the state (runbooks/core/steps/system.py). A plain
`systemctl show -p PROPS UNITS` of the batch (pi-prep's swap units) joins that one show too:
its units and properties are added, and it gets its units' blocks with its properties only,
in systemd's order, as its own show prints them. When
an answer has not one line or block per unit (is-enabled stops at a unit it cannot find), or
a block names another unit (an alias), each asker is read on its own. A gateway's plans ask
about a dozen of these: each a process, and systemd's work to answer it.

And every dpkg_status fact of the batch (a dpkg-query of its packages, one per Packages step:
each loads dpkg's whole status database) is one dpkg-query of all their packages; each
asker gets its packages' lines, and exit 1 when one of them has none, as dpkg-query
exits for a package it does not know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from runbooks.core.facts import FactResult
from runbooks.core.steps.system import dpkg_status

_GET = re.compile(r"(?P<kubectl>[a-z0-9 ./-]*kubectl) get (?P<refs>[a-z0-9.-]+/[a-z0-9.-]+"
                  r"(?: [a-z0-9.-]+/[a-z0-9.-]+)+) -n (?P<namespace>[a-z0-9-]+) "
                  r"--ignore-not-found -o json")

Reread = Callable[[Mapping[str, str]], dict[str, FactResult]]

_UNIT = re.compile(r"systemctl (?P<verb>is-active|is-enabled) (?P<unit>[A-Za-z0-9@._:-]+)")
# core's daemon_reloaded guard (runbooks/core/steps/system.py): exit 0 when systemd must
# read the unit's file again
_RELOAD = re.compile(r"systemctl show -p NeedDaemonReload (?P<unit>[A-Za-z0-9@._:-]+) "
                     r"\| grep -qx NeedDaemonReload=yes")
# is-active states and reload guards of a batch: one `systemctl show` of these properties
SHOWN = "Id,ActiveState,NeedDaemonReload"
# a plain `systemctl show -p PROPS UNITS` (pi-prep's swap units: UnitFileState): its units
# and properties join the batch's one show
_SHOW = re.compile(r"systemctl show -p (?P<props>[A-Za-z]+(?:,[A-Za-z]+)*) "
                   r"(?P<units>[A-Za-z0-9@._:-]+(?: [A-Za-z0-9@._:-]+)*)")
# the states each verb exits 0 for (systemd: systemctl-is-active.c, systemctl-is-enabled.c)
_ZERO = {"is-active": frozenset({"active", "reloading"}),
         "is-enabled": frozenset({"enabled", "enabled-runtime", "static", "alias", "indirect",
                                  "generated", "transient"})}
_NONZERO = {"is-active": 3, "is-enabled": 1}


# core's dpkg_status fact (runbooks/core/steps/system.py) of plain package names
_DPKG_HEAD = dpkg_status(["@"]).command[:-1]
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9.+-]*")


def packages_of(command: str) -> list[str] | None:
    """The packages of a `dpkg_status` fact's command (plain names only), else None."""
    text = command.strip()
    if not text.startswith(_DPKG_HEAD):
        return None
    names = text[len(_DPKG_HEAD):].split()
    if not names or not all(_PACKAGE.fullmatch(n) for n in names):
        return None
    return names


def unit_of(command: str) -> tuple[str, str] | None:
    """(verb, unit) of a plain `systemctl is-active|is-enabled UNIT` or of core's reload
    guard (verb "reload"), else None."""
    found = _UNIT.fullmatch(command.strip())
    if found:
        return found["verb"], found["unit"]
    reload = _RELOAD.fullmatch(command.strip())
    return ("reload", reload["unit"]) if reload else None


def show_of(command: str) -> tuple[list[str], list[str]] | None:
    """(properties, units) of a plain `systemctl show -p PROPS UNITS`, else None."""
    found = _SHOW.fullmatch(command.strip())
    return (found["props"].split(","), found["units"].split()) if found else None


def refs_of(command: str) -> tuple[str, str, list[str]] | None:
    """(kubectl, namespace, KIND[.GROUP]/NAME references) of a mergeable get, else None."""
    found = _GET.fullmatch(command.strip())
    if found is None:
        return None
    return found["kubectl"], found["namespace"], found["refs"].split()


def _refs(command: str) -> list[str]:
    found = refs_of(command)
    return found[2] if found is not None else []


def _matches(item: object, ref: str) -> bool:
    if not isinstance(item, dict):
        return False
    resource, _, name = ref.partition("/")
    kind, _, group = resource.partition(".")
    version = str(item.get("apiVersion", ""))
    return (str(item.get("kind", "")).lower() == kind
            and (version.rpartition("/")[0] if "/" in version else "") == group
            and (item.get("metadata") or {}).get("name") == name)


def merge(commands: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(`commands` with every mergeable get of the same kubectl and namespace replaced by
    one get of all their references, and every unit state query of one verb by one query
    of all the units; {merged command: the commands it stands for})."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for command in dict.fromkeys(commands.values()):
        found = refs_of(command)
        if found is not None:
            groups.setdefault(("get", found[0], found[1]), []).append(command)
        elif (unit := unit_of(command)) is not None:
            verb = "show" if unit[0] in ("is-active", "reload") else unit[0]
            groups.setdefault(("systemctl", verb), []).append(command)
        elif show_of(command) is not None:
            groups.setdefault(("systemctl", "show"), []).append(command)
        elif packages_of(command) is not None:
            groups.setdefault(("dpkg",), []).append(command)
    replaced: dict[str, str] = {}
    stands: dict[str, list[str]] = {}
    for group, asked in groups.items():
        if len(asked) < 2:
            continue
        if group[0] == "get":
            refs = list(dict.fromkeys(r for c in asked for r in _refs(c)))
            one = f"{group[1]} get {' '.join(refs)} -n {group[2]} --ignore-not-found -o json"
        elif group[0] == "dpkg":
            one = dpkg_status([p for c in asked for p in packages_of(c) or ()]).command
        elif group[1] == "show":
            one = _one_show(asked)
        else:
            units = list(dict.fromkeys(u[1] for c in asked if (u := unit_of(c))))
            one = f"systemctl {group[1]} {' '.join(units)}"
        stands[one] = asked
        replaced.update({c: one for c in asked})
    out = {key: replaced.get(command, command) for key, command in commands.items()}
    return out, stands


def _one_show(asked: list[str]) -> str:
    """The one `systemctl show` of every unit the is-active queries, reload guards and plain
    shows of `asked` name, with every property they read (Id first: it tells the blocks)."""
    props = SHOWN.split(",") if any(unit_of(c) for c in asked) else ["Id"]
    units: list[str] = []
    for command in asked:
        unit, shown = unit_of(command), show_of(command)
        if unit is not None:
            units.append(unit[1])
        elif shown is not None:
            props += shown[0]
            units += shown[1]
    return (f"systemctl show -p {','.join(dict.fromkeys(props))} "
            f"{' '.join(dict.fromkeys(units))}")


def _blocks(out: str) -> list[list[tuple[str, str]]]:
    """`systemctl show`'s answer: one block of (property, value) per unit, in its order."""
    return [[(k, v) for k, _, v in (line.partition("=") for line in block.splitlines()
                                    if "=" in line)]
            for block in out.strip().split("\n\n")]


def _show_answer(command: str, merged_command: str, result: FactResult) -> FactResult | None:
    """A plain show's answer from the merged show's: each of its units' blocks with only
    its properties (in systemd's order, as its own show prints them), blank lines between;
    None when the answer is not one block per unit, or a block names another unit (an
    alias: systemctl names the unit it stands for)."""
    mine, every = show_of(command), show_of(merged_command)
    if mine is None or every is None or not result.ok:
        return None
    blocks = _blocks(result.out)
    if len(blocks) != len(every[1]):
        return None
    out = []
    for unit in mine[1]:
        block = blocks[every[1].index(unit)]
        if dict(block).get("Id") not in (unit, f"{unit}.service"):
            return None
        out.append("".join(f"{k}={v}\n" for k, v in block if k in mine[0]))
    return FactResult(0, "\n".join(out))


def _unit_answer(command: str, merged_command: str, result: FactResult) -> FactResult | None:
    """`command`'s answer from the merged query's: its unit's line and that state's exit
    status; None when the answer has not one line per unit."""
    verb, unit = unit_of(command) or ("", "")
    if (shown := show_of(merged_command)) is not None:
        return _shown_answer(verb, unit, shown[1], result)
    units = merged_command.split()[2:]
    lines = result.out.splitlines()
    if len(lines) != len(units) or unit not in units:
        return None
    state = lines[units.index(unit)].strip()
    if not state or " " in state:
        return None
    return FactResult(0 if state in _ZERO[verb] else _NONZERO[verb], state + "\n")


def _packages_answer(packages: list[str], result: FactResult) -> FactResult:
    """A dpkg_status fact's answer from the merged dpkg-query's: the lines of its packages,
    exit 1 when one of them has none (dpkg-query's status for a pattern it found no
    package for), else 0. Each package's line is the same whoever else is asked with it."""
    lines = [ln for ln in result.out.splitlines() if ln.split()
             and ln.split()[0].split(":")[0] in packages]
    found = {ln.split()[0].split(":")[0] for ln in lines}
    return FactResult(0 if found >= set(packages) else 1,
                      "".join(ln + "\n" for ln in lines))


def _shown_answer(verb: str, unit: str, units: list[str],
                  result: FactResult) -> FactResult | None:
    """`systemctl is-active UNIT`'s or the reload guard's answer from `systemctl show -p
    SHOWN UNITS`: one block per unit, in order, blank lines between (is-active prints the
    ActiveState); None when the answer is not that, or names another unit (an alias)."""
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in result.out.strip().split("\n\n")]
    if not result.ok or len(blocks) != len(units) or unit not in units:
        return None
    block = blocks[units.index(unit)]
    if block.get("Id") not in (unit, f"{unit}.service"):
        return None
    if verb == "reload":
        flag = block.get("NeedDaemonReload")
        return None if flag not in ("yes", "no") else FactResult(0 if flag == "yes" else 1, "")
    state = block.get("ActiveState", "")
    if not state or " " in state:
        return None
    return FactResult(0 if state in _ZERO["is-active"] else _NONZERO["is-active"], state + "\n")


def split(commands: Mapping[str, str], merged: Mapping[str, str],
          stands: Mapping[str, list[str]], facts: Mapping[str, FactResult],
          reread: Reread) -> dict[str, FactResult]:
    """The facts of `commands` (by key) from those read for `merged` (by key): a merged
    read's items handed to each asker; a failed one's askers read again on their own
    (`reread`, one round trip for all of them)."""
    answers: dict[str, FactResult] = {}
    again: dict[str, str] = {}
    for key, command in commands.items():
        one = merged[key]
        if one not in stands:
            answers[key] = facts[key]
            continue
        result = facts[key]
        mine = packages_of(command)
        if mine is not None:
            answers[key] = _packages_answer(mine, result)
            continue
        if unit_of(command) is not None or show_of(command) is not None:
            answer = (_unit_answer(command, one, result) if unit_of(command) is not None
                      else _show_answer(command, one, result))
            if answer is None:
                again[key] = command
            else:
                answers[key] = answer
            continue
        body = None
        if result.ok:
            try:
                body = json.loads(result.out)
            except ValueError:
                body = None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            again[key] = command
            continue
        mine = [i for i in items if any(_matches(i, r) for r in _refs(command))]
        answers[key] = FactResult(0, json.dumps({"apiVersion": "v1", "kind": "List",
                                                 "items": mine, "metadata": {}}, indent=4)
                                  + "\n")
    if again:
        answers.update(reread(again))
    return answers
