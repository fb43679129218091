"""`inv k3s.reset`: remove k3s from the nodes and leave nothing behind (agents first).

What k3s-killall.sh and k3s-uninstall.sh remove, as steps that read first and act only on
what is there (so `--check` lists what would go, and a second reset changes nothing):
units stopped and disabled; k3s and container processes killed; the cluster's interfaces
(cni0, flannel.1, flannel-v6.1, kube-ipvs0, flannel-wg*); its network namespaces (cni-*);
its iptables rules (KUBE-*, CNI-*, flannel, in every table, v4 and v6, nft and legacy)
without touching anyone else's (the gateway's NAT, Docker's chains); nftables tables of
kube-proxy and flannel; its mounts (/run/k3s, /var/lib/kubelet, /var/lib/rancher/k3s); its
files and directories; the binary, units and env files, and greenroom's stamps of the release
files it removes. `--keep-images` keeps
/var/lib/rancher/k3s/agent/images so a re-install imports them at once.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping

from runbooks.common.artifacts import STAMP_DIR, stamp_path
from runbooks.common.kube_cluster import AGENT, SERVER
from runbooks.core.facts import Fact, FactResult
from runbooks.core.runner import Runbook
from runbooks.core.steps import Action, Change, Plan, Step
from runbooks.core.steps.system import unit_active, unit_enabled
from runbooks.k3s import config as cfg

INTERFACES = re.compile(r"^(cni0|flannel\.1|flannel-v6\.1|kube-ipvs0|flannel-wg(-v6)?|"
                        r"flannel\.\d+)$")
RULE = re.compile(r"KUBE-|CNI-|flannel", re.IGNORECASE)
NFT_TABLE = re.compile(r"kube-proxy|flannel|cni", re.IGNORECASE)
MOUNTS = ("/run/k3s", "/var/lib/kubelet", "/var/lib/rancher/k3s", "/run/netns/cni-")
DATA_DIR = "/var/lib/rancher/k3s"
PATHS = ("/etc/rancher/k3s", "/etc/rancher/node", "/var/lib/cni", "/etc/cni/net.d",
         "/run/flannel", "/run/k3s", "/var/lib/kubelet",
         f"{cfg.UNIT_DIR}/k3s.service", f"{cfg.UNIT_DIR}/k3s.service.env",
         f"{cfg.UNIT_DIR}/k3s-agent.service", f"{cfg.UNIT_DIR}/k3s-agent.service.env",
         cfg.BINARY)
# bracketed first letters: the pattern never matches the shell that carries it
PROCESSES = r"k3[s] (server|agent)|/var/lib/rancher/k3s/dat[a]/|[c]ontainerd-shim"
SAVERS = (("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore"),
          ("iptables-legacy-save", "iptables-legacy-restore"),
          ("ip6tables-legacy-save", "ip6tables-legacy-restore"))


def cluster_interfaces(ip_link: str) -> list[str]:
    """`ip -o link show` -> the names of the cluster's interfaces."""
    names = []
    for line in ip_link.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            name = parts[1].strip().split("@", 1)[0]
            if INTERFACES.match(name):
                names.append(name)
    return names


def cluster_netns(ip_netns: str) -> list[str]:
    """`ip netns list` -> cni-* namespaces."""
    return [line.split()[0] for line in ip_netns.splitlines()
            if line.split() and line.split()[0].startswith("cni-")]


def strip_cluster_rules(saved: str) -> str:
    """iptables-save output without the cluster's chains and rules (what k3s-killall does)."""
    return "".join(line for line in saved.splitlines(keepends=True) if not RULE.search(line))


def cluster_rule_count(saved: str) -> int:
    return sum(1 for line in saved.splitlines() if RULE.search(line))


def cluster_nft_tables(listing: str) -> list[str]:
    """`nft list tables` -> "family name" of kube-proxy/flannel/cni tables."""
    out = []
    for line in listing.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and NFT_TABLE.search(words[2]):
            out.append(f"{words[1]} {words[2]}")
    return out


def cluster_mounts(mounts: str) -> list[str]:
    """/proc/self/mounts -> mount points of the cluster, deepest first."""
    points = []
    for line in mounts.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].startswith(MOUNTS):
            points.append(words[1])
    return sorted(set(points), key=len, reverse=True)


def _lines(parse: Callable[[str], list[str]]) -> Callable[[FactResult], list[str]]:
    """A fact parser: `parse` of the output when the command succeeded, else nothing."""
    return lambda result: parse(result.out) if result.ok else []


def _words(text: str) -> list[str]:
    return text.split()


# What of the cluster a node still has, each a named fact (command + pure parser) ...
PROCESSES_RUNNING = Fact("k3s processes", f"pgrep -f {shlex.quote(PROCESSES)}",
                         _lines(lambda out: [f"pid {p}" for p in out.split()]))
MOUNTED = Fact("mounts", "cat /proc/self/mounts", _lines(cluster_mounts))
LINKS = Fact("links", "ip -o link show", _lines(cluster_interfaces))
NETNS = Fact("netns", "ip netns list", _lines(cluster_netns))
NFT_TABLES = Fact("nft tables", "command -v nft >/dev/null && nft list tables",
                  _lines(cluster_nft_tables))
# stat prints the paths that exist (symbolic links too, not followed) and nothing else
PRESENT = Fact("k3s paths", "stat -c %n -- " + " ".join(shlex.quote(p) for p in PATHS),
               lambda result: result.out.split())
KUBECTL = cfg.BINARY[:-3] + "kubectl"
KUBECTL_LINK = Fact("kubectl link", f"readlink {KUBECTL}",
                    lambda result: [KUBECTL] if result.ok and result.out.strip() == "k3s"
                    else [])
UNITS = ("k3s", "k3s-agent")


def data_fact(keep_images: bool) -> Fact[list[str]]:
    """What of the data dir would go (a few paths), nothing when it is clean."""
    return Fact(f"data dir{' (images kept)' if keep_images else ''}",
                data_leftovers(keep_images), _lines(_words))


def stamps_fact(keep_images: bool, folder: str = STAMP_DIR) -> Fact[list[str]]:
    """The node's stamps (runbooks.common.artifacts) of the files the reset removes: the
    binary's, and unless the images are kept those of the files under the data dir."""
    binary = shlex.quote(stamp_path(cfg.BINARY, folder))
    globs = [binary, binary + ".tmp.??????"]  # and a temp file a cut write left
    if not keep_images:
        globs.append(shlex.quote(stamp_path(DATA_DIR + "/", folder)) + "*")
    return Fact("stamps", f"ls -d -- {' '.join(globs)} 2>/dev/null",
                lambda result: [p for p in result.out.split() if p.startswith(folder + "/")])


def saved_rules(save: str) -> Fact[int]:
    """How many KUBE-/CNI-/flannel lines `save` (iptables-save, ...) prints; 0 without it."""
    return Fact(save, f"command -v {save} >/dev/null && {save}",
                lambda result: cluster_rule_count(result.out) if result.ok else 0)


class Removed(Step):
    """A reset step: one named fact lists what is there, one change removes it."""

    verify = True

    def __init__(self, name: str, fact: Fact[list[str]],
                 remove: Callable[[list[str]], str]) -> None:
        self.name, self.fact, self.remove = name, fact, remove

    def facts(self) -> Mapping[str, str]:
        return {self.fact.name: self.fact.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        items = self.fact.read(facts)
        if not items:
            return []
        return [Change(f"remove {', '.join(items)}", (Action(self.remove(items)),))]


class UnitsStopped(Step):
    """k3s's units stopped and disabled (core's unit facts, read in the same round trip)."""

    name = "Ensure k3s units stopped and disabled"

    def facts(self) -> Mapping[str, str]:
        out = {}
        for unit in UNITS:
            for fact in (unit_enabled(unit), unit_active(unit)):
                out[fact.name] = fact.command
        return out

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        running = [u for u in UNITS
                   if unit_enabled(u).read(facts) in ("enabled", "enabled-runtime")
                   or unit_active(u).read(facts) in ("active", "activating", "reloading")]
        if not running:
            return []
        return [Change(f"stop and disable {', '.join(running)}",
                       (Action("systemctl disable --now " + " ".join(running) + " || true"),))]


class IptablesRules(Step):
    """The cluster's iptables rules gone from every table; everyone else's kept."""

    def __init__(self, save: str, restore: str) -> None:
        self.save, self.restore = save, restore
        self.fact = saved_rules(save)
        self.name = f"Ensure no KUBE-/CNI-/flannel rules ({save})"

    def facts(self) -> Mapping[str, str]:
        return {self.fact.name: self.fact.command}

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        count = self.fact.read(facts)
        if not count:
            return []
        command = (f"{self.save} | grep -v -E 'KUBE-|CNI-' | grep -iv flannel | "
                   f"{self.restore}")
        return [Change(f"remove {count} KUBE-/CNI-/flannel line(s) from {self.save}",
                       (Action(command),))]


def data_leftovers(keep_images: bool) -> str:
    """The command listing what of the data dir would go (a few paths)."""
    if not keep_images:
        return f"[ -e {DATA_DIR} ] && echo {DATA_DIR}"
    keep = f"{DATA_DIR}/agent/images"
    return (f"[ -e {DATA_DIR} ] && find {DATA_DIR} -mindepth 1 -not -path {DATA_DIR}/agent "
            f"-not -path {keep} -not -path '{keep}/*' -prune -print | head -5")


def remove_data(keep_images: bool) -> str:
    if not keep_images:
        return f"rm -rf {DATA_DIR}"
    keep = f"{DATA_DIR}/agent/images"
    return (f"find {DATA_DIR} -mindepth 1 -not -path {DATA_DIR}/agent -not -path {keep} "
            f"-not -path '{keep}/*' -prune -exec rm -rf {{}} +")


def reset_plan(keep_images: bool) -> Plan:
    q = shlex.quote
    plan = Plan()
    plan.add(UnitsStopped())
    plan.add(Removed("Ensure no k3s or container processes", PROCESSES_RUNNING,
                     lambda _pids: f"pkill -9 -f {q(PROCESSES)}; sleep 0.2; true"))
    plan.add(Removed("Ensure no cluster mounts", MOUNTED,
                     lambda points: "; ".join(f"umount {q(p)} || umount -l {q(p)}"
                                              for p in points)))
    plan.add(Removed("Ensure no cluster interfaces", LINKS,
                     lambda names: "; ".join(f"ip link delete {q(n)}" for n in names)))
    plan.add(Removed("Ensure no cni-* network namespaces", NETNS,
                     lambda names: "; ".join(f"ip netns delete {q(n)}" for n in names)))
    for save, restore in SAVERS:
        plan.add(IptablesRules(save, restore))
    plan.add(Removed("Ensure no kube-proxy/flannel nftables tables", NFT_TABLES,
                     lambda tables: "; ".join(f"nft delete table {t}" for t in tables)))
    plan.add(Removed(f"Ensure {DATA_DIR} is gone" + (" (images kept)" if keep_images else ""),
                     data_fact(keep_images), lambda _items: remove_data(keep_images)))
    plan.add(Removed("Ensure k3s's files, units and binary are gone", PRESENT,
                     lambda items: "rm -rf " + " ".join(q(i) for i in items)
                     + "; systemctl daemon-reload || true"))
    plan.add(Removed("Ensure the stamps of the removed release files are gone",
                     stamps_fact(keep_images),
                     lambda items: "rm -f " + " ".join(q(i) for i in items)))
    plan.add(Removed("Ensure the kubectl link to k3s is gone", KUBECTL_LINK,
                     lambda _items: f"rm -f {KUBECTL}"))
    return plan


def _plan(ctx: object) -> Plan:
    options = getattr(ctx, "options", {})
    return reset_plan(bool(options.get("keep_images")))


RESET = Runbook("k3s.reset", (SERVER, AGENT), _plan)
UNINSTALL = Runbook("k3s.uninstall", (SERVER, AGENT), lambda _ctx: reset_plan(True))
