"""demo.check's shared cluster reads: a `kubectl get` that several parts run on the same host
(the speaker double's plan on every node, the audience path's, metallb's probe: each reads the
cluster's Services on its first server) runs once per demo.check, and its answer is handed to
every part that asks, including the host's own fact batch.

demo.check only reads, and all its parts read the cluster within the same second or two, so
one answer per command is what each of them would have got. Only plain `kubectl get`
commands (no shell syntax, no stdin) are shared; anything else runs as asked.

A listing (`kubectl get KINDS -A|-n NS -o json`) whose kinds a wider listing of the same
scope on the same host also reads is cut from that one (its items of those kinds) instead of
starting a kubectl of its own: from a read already made or under way, or from the cluster
read demo's probes make on the first server anyway (runbooks/common/cluster_reads.py). In
the lab every kubectl is a Python start of the k3s double; on a site, an API round trip.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from runbooks.common import cluster_reads
from runbooks.common.kubectl import ON_NODE
from runbooks.core.facts import FactResult
from runbooks.core.session import CommandResult


def read_pattern(on_node: Mapping[str, str]) -> re.Pattern[str]:
    """A plain `kubectl get`, by a plain kubectl or by the one each distribution runs on its
    nodes (`on_node`: common.kubectl.ON_NODE), with no shell syntax after it."""
    kubectls = sorted({*on_node.values(), "kubectl"}, key=len, reverse=True)
    return re.compile(rf"(?:{'|'.join(map(re.escape, kubectls))}) get [^;&|<>`$()\n\\]*")


READ = read_pattern(ON_NODE)


def shareable(command: str) -> bool:
    """A read-only `kubectl get` with nothing else in the command."""
    return READ.fullmatch(command.strip()) is not None


# a listing's resource names, as its items' `kind` (what a wider listing is cut to)
KINDS = {"services": "Service", "deployments": "Deployment", "daemonsets": "DaemonSet",
         "endpoints": "Endpoints", "secrets": "Secret", "nodes": "Node", "pods": "Pod",
         "namespaces": "Namespace", "ipaddresspools": "IPAddressPool", "bgppeers": "BGPPeer",
         "bgpadvertisements": "BGPAdvertisement", "l2advertisements": "L2Advertisement"}
# kinds without a namespace: a listing of them alone (no -n, no -A) lists them all
CLUSTER_SCOPED = frozenset({"nodes", "namespaces"})
# a named get's kind word, as the listing's resource name that lists it
NAMED_KINDS = {"deployment": "deployments", "deployments": "deployments",
               "daemonset": "daemonsets", "daemonsets": "daemonsets",
               "service": "services", "services": "services", "endpoints": "endpoints"}
_LISTING = re.compile(r"(?P<kubectl>.+?) get (?P<kinds>[a-z0-9]+(?:,[a-z0-9]+)*) "
                      r"(?:(?P<scope>-A|-n [a-z0-9-]+) )?-o json")
_NAMED = re.compile(r"(?P<kubectl>.+?) get (?P<kind>[a-z]+) (?P<name>[a-z0-9][a-z0-9.-]*) "
                    r"-n (?P<namespace>[a-z0-9-]+) -o json")
# read anyway by demo's probes on the cluster's first server
WIDE = tuple(cluster_reads.command(kubectl) for kubectl in ON_NODE.values())


def listing(command: str) -> tuple[str, frozenset[str], str] | None:
    """(kubectl, kinds, scope) of a plain JSON listing of known kinds, else None; scope is
    "-A", "-n NS", or "" for a listing of cluster-scoped kinds only."""
    found = _LISTING.fullmatch(command.strip())
    if found is None or not shareable(command):
        return None
    kinds = frozenset(found["kinds"].split(","))
    if not kinds <= KINDS.keys() or (not found["scope"] and not kinds <= CLUSTER_SCOPED):
        return None
    return found["kubectl"], kinds, found["scope"] or ""


def named(command: str) -> tuple[str, str, str, str] | None:
    """(kubectl, listing's resource name, namespace, name) of a plain JSON get of one named
    object (`kubectl get deployment controller -n metallb-system -o json`), else None."""
    found = _NAMED.fullmatch(command.strip())
    if found is None or not shareable(command) or found["kind"] not in NAMED_KINDS:
        return None
    return (found["kubectl"], NAMED_KINDS[found["kind"]], found["namespace"], found["name"])


# a reference's KIND[.GROUP] (`get KIND.GROUP/NAME ...`, runbooks/common/kubectl.py
# Manifests) -> (the listing's resource name, the apiVersion's group, namespaced)
REF_KINDS = {"namespace": ("namespaces", "", False), "node": ("nodes", "", False),
             "service": ("services", "", True), "endpoints": ("endpoints", "", True),
             "deployment.apps": ("deployments", "apps", True),
             "daemonset.apps": ("daemonsets", "apps", True)}
_REFS = re.compile(r"(?P<kubectl>.+?) get (?P<refs>[a-z0-9.-]+/[a-z0-9.-]+"
                   r"(?: [a-z0-9.-]+/[a-z0-9.-]+)*) -n (?P<namespace>[a-z0-9-]+) "
                   r"--ignore-not-found -o json")


def references(command: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """(kubectl, namespace, [(KIND[.GROUP], name)]) of a plain get of named objects that
    answers the ones it finds as a List (`--ignore-not-found -o json`: a Manifests step's
    read), when every kind is one REF_KINDS knows; else None."""
    found = _REFS.fullmatch(command.strip())
    if found is None or not shareable(command):
        return None
    refs = [tuple(ref.split("/", 1)) for ref in found["refs"].split()]
    if not all(kind in REF_KINDS for kind, _name in refs):
        return None
    return found["kubectl"], found["namespace"], refs  # type: ignore[return-value]


def _group(item: dict[str, Any]) -> str:
    version = str(item.get("apiVersion", ""))
    return version.rpartition("/")[0] if "/" in version else ""


def covers(wide: str, narrow: str) -> bool:
    """`wide` lists every object `narrow` reads, and more, with the same kubectl: every kind
    of a listing in the same scope (cluster-scoped kinds in any scope of all namespaces), or
    a named object's kind in its namespace or in all, or every named object's of a
    Manifests read (`references`) there."""
    w = listing(wide)
    if w is None:
        return False
    refs = references(narrow)
    if refs is not None:
        kinds = {REF_KINDS[kind][0] for kind, _name in refs[2]}
        spaced = {REF_KINDS[kind][2] for kind, _name in refs[2]}
        scope_ok = (w[2] == "-A" or (w[2] == f"-n {refs[1]}" and spaced == {True})
                    or (w[2] == "" and spaced == {False}))
        return w[0] == refs[0] and kinds <= w[1] and scope_ok
    one = named(narrow)
    if one is not None:
        return w[0] == one[0] and one[1] in w[1] and w[2] in ("-A", f"-n {one[2]}")
    n = listing(narrow)
    if n is None or w[0] != n[0] or not n[1] < w[1]:
        return False
    return w[2] == n[2] or (n[2] == "" and w[2] == "-A")


def cut(done: Any, narrow: str) -> CommandResult | None:
    """`narrow`'s answer from a wider listing's: its items of `narrow`'s kinds, or the one
    object it names (None when the wider read failed or is not a List, or the object is
    not in it: `narrow` is then read on its own, and answers as the cluster does)."""
    found, one, refs = listing(narrow), named(narrow), references(narrow)
    if (found is None and one is None and refs is None) or done.rc != 0:
        return None
    try:
        body = json.loads(done.stdout)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return None
    if refs is not None:  # the objects found, in the order named, as kubectl lists them
        hits = []
        for kind, name in refs[2]:
            plural, group, spaced = REF_KINDS[kind]
            hits += [i for i in body["items"] if isinstance(i, dict)
                     and i.get("kind") == KINDS[plural] and _group(i) == group
                     and isinstance(i.get("metadata"), dict)
                     and i["metadata"].get("name") == name
                     and (not spaced or i["metadata"].get("namespace", "default") == refs[1])]
        return CommandResult(0, json.dumps({"apiVersion": "v1", "kind": "List", "items": hits,
                                            "metadata": {}}, indent=4) + "\n", "")
    if one is not None:
        _kubectl, plural, namespace, name = one
        hit = [i for i in body["items"] if isinstance(i, dict)
               and i.get("kind") == KINDS[plural]
               and isinstance(i.get("metadata"), dict)
               and i["metadata"].get("name") == name
               and i["metadata"].get("namespace", "default") == namespace]
        if len(hit) != 1:
            return None
        return CommandResult(0, json.dumps(hit[0], indent=4) + "\n", "")
    assert found is not None
    kinds = {KINDS[k] for k in found[1]}
    items = [i for i in body["items"] if isinstance(i, dict) and i.get("kind") in kinds]
    return CommandResult(0, json.dumps({"apiVersion": "v1", "kind": "List", "items": items,
                                        "metadata": {}}, indent=4) + "\n", "")


class SharedReads:
    """A connector whose sessions run each shareable command once for the whole check."""

    def __init__(self, connector: Any) -> None:
        self._connector = connector
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], threading.Lock] = {}
        self._done: dict[tuple[str, str], Any] = {}
        self._started: set[tuple[str, str]] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    def session(self, host: Any) -> _Shared:
        return _Shared(self, host.name, self._connector.session(host))

    def _wider(self, host: str, command: str) -> str | None:
        """A read on `host` made, under way or made anyway that covers `command`."""
        if listing(command) is None and named(command) is None and references(command) is None:
            return None
        with self._lock:
            mine = [c for (name, c) in (*self._done, *self._started) if name == host]
        return next((w for w in (*mine, *WIDE) if covers(w, command)), None)

    def run(self, host: str, session: Any, command: str) -> Any:
        key = (host, command)
        with self._lock:
            if key in self._done:
                return self._done[key]
        wide = self._wider(host, command)
        if wide is not None:
            done = cut(self.run(host, session, wide), command)
            if done is not None:
                with self._lock:
                    self._done.setdefault(key, done)
                    return self._done[key]
        with self._lock:
            if key in self._done:
                return self._done[key]
            gate = self._pending.setdefault(key, threading.Lock())
        with gate:  # a second asker waits for the first one's answer
            with self._lock:
                if key in self._done:
                    return self._done[key]
            done = session.run(command)
            with self._lock:
                self._done[key] = done
            return done

    def start(self, host: Any, command: str) -> None:
        """Read `command` on `host` now, in the background, once (see `fact`)."""
        key = (host.name, command)
        wide = self._wider(host.name, command)
        with self._lock:
            if key in self._done or key in self._started:
                return
            self._started.add(key)
            if wide is not None:  # claimed now: a batch about to start leaves it out too
                self._started.add((host.name, wide))

        def read() -> None:
            try:
                self.run(host.name, self._connector.session(host), command)
            except Exception:  # noqa: BLE001 - `fact` reads it again and raises
                return

        threading.Thread(target=read, name=f"read {host.name}", daemon=True).start()

    def claimed(self, host: str, commands: Iterable[str] = ()) -> set[str]:
        """The commands on `host` already read or being read, and those of `commands` that
        one of them covers (`fact` answers all of them)."""
        with self._lock:
            mine = {c for (name, c) in (*self._done, *self._started) if name == host}
        return mine | {c for c in commands if any(covers(w, c) for w in mine)}

    def fact(self, host: Any, command: str) -> FactResult:
        """`command`'s answer on `host`: waits for a read under way, reads it if none."""
        done = self.run(host.name, self._connector.session(host), command)
        return FactResult(done.rc, done.stdout)

    def answered(self, host: str) -> dict[str, FactResult]:
        """The commands already answered on `host`, as facts (by command)."""
        with self._lock:
            return {command: FactResult(done.rc, done.stdout)
                    for (name, command), done in self._done.items() if name == host}


class _Shared:
    """One host's session: shareable commands through SharedReads, the rest as they are."""

    def __init__(self, reads: SharedReads, host: str, session: Any) -> None:
        self._reads, self._host, self._session = reads, host, session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, command: str, stdin: str | bytes | None = None) -> Any:
        if stdin is None and shareable(command):
            return self._reads.run(self._host, self._session, command)
        return self._session.run(command, stdin)
