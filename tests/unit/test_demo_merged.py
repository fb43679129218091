"""demo.check's merged named gets (runbooks/demo/merged.py): MetalLB's two reads of its
namespace (the install manifest's objects, the custom resources) are one kubectl; each
asker gets the items it named; a failed merged read leaves each asker to its own read."""

from __future__ import annotations

import json

import pytest

from runbooks.core.facts import FactResult
from runbooks.demo import merged

INSTALL = ("k3s kubectl get namespace/metallb-system "
           "customresourcedefinition.apiextensions.k8s.io/ipaddresspools.metallb.io "
           "deployment.apps/controller -n metallb-system --ignore-not-found -o json")
CRS = ("k3s kubectl get ipaddresspool.metallb.io/default bgppeer.metallb.io/edge "
       "-n metallb-system --ignore-not-found -o json")
DEMO = ("k3s kubectl get namespace/greenroom-demo service/hello -n greenroom-demo "
        "--ignore-not-found -o json")
ITEMS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}},
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "ipaddresspools.metallb.io"}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "controller", "namespace": "metallb-system"}},
    {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
     "metadata": {"name": "default", "namespace": "metallb-system"}},
    # same name, another kind: not the pool's
    {"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
     "metadata": {"name": "default", "namespace": "metallb-system"}},
]


def test_two_gets_of_one_namespace_are_one_kubectl():
    commands = {"0|0/objects metallb-system": INSTALL, "0|2/objects metallb-system": CRS,
                "0|3/objects greenroom-demo": DEMO, "clock": "date +%s"}
    asked, stands = merged.merge(commands)
    kubectls = set(asked.values()) - {"date +%s"}
    assert len(kubectls) == 2  # metallb-system's two in one, greenroom-demo's alone
    [one] = stands
    assert stands[one] == [INSTALL, CRS]
    assert asked["0|0/objects metallb-system"] == asked["0|2/objects metallb-system"] == one
    assert one.startswith("k3s kubectl get namespace/metallb-system ")
    assert "ipaddresspool.metallb.io/default bgppeer.metallb.io/edge" in one
    assert asked["0|3/objects greenroom-demo"] == DEMO


def test_each_asker_gets_the_items_it_named():
    commands = {"install": INSTALL, "crs": CRS}
    asked, stands = merged.merge(commands)
    read = FactResult(0, json.dumps({"kind": "List", "items": ITEMS}))
    facts = merged.split(commands, asked, stands, {k: read for k in asked}, _no_reread)
    kinds = {k: [i["kind"] for i in json.loads(f.out)["items"]] for k, f in facts.items()}
    assert kinds == {"install": ["Namespace", "CustomResourceDefinition", "Deployment"],
                     "crs": ["IPAddressPool"]}  # the peer `edge` is missing: not listed


@pytest.mark.parametrize("read", [
    pytest.param(FactResult(1, 'error: the server doesn\'t have a resource type "bgppeer"'),
                 id="kind-not-served"),
    pytest.param(FactResult(0, "garbled"), id="not-json"),
])
def test_a_failed_merged_read_leaves_each_asker_to_its_own(read):
    commands = {"install": INSTALL, "crs": CRS, "clock": "date +%s"}
    asked, stands = merged.merge(commands)
    again: list[dict] = []

    def reread(missing):
        again.append(dict(missing))
        return {k: FactResult(0, f"own {k}") for k in missing}

    facts = {k: read for k in asked}
    facts["clock"] = FactResult(0, "1\n")
    out = merged.split(commands, asked, stands, facts, reread)
    assert again == [{"install": INSTALL, "crs": CRS}]  # one more round trip for both
    assert out == {"install": FactResult(0, "own install"), "crs": FactResult(0, "own crs"),
                   "clock": FactResult(0, "1\n")}


@pytest.mark.parametrize("command", [
    pytest.param("k3s kubectl get namespace/metallb-system -n metallb-system "
                 "--ignore-not-found -o json", id="one-object-prints-itself"),
    pytest.param("k3s kubectl get a/b c/d -n ns -o json", id="not-ignore-not-found"),
    pytest.param("k3s kubectl get a/b c/d -n ns --ignore-not-found -o json | cat", id="shell"),
    pytest.param("k3s kubectl get a/'b c' d/e -n ns --ignore-not-found -o json", id="quoted"),
])
def test_only_plain_gets_of_several_objects_are_merged(command):
    commands = {"a": command, "b": CRS}
    assert merged.merge(commands) == (commands, {})


def _no_reread(missing):
    raise AssertionError(f"read again: {missing}")


RELOAD = ("systemctl show -p NeedDaemonReload greenroom-vlan-eth1.100.service | grep -qx "
          "NeedDaemonReload=yes")  # core's daemon_reloaded guard
UNITS = {"a": "systemctl is-active chrony", "b": "systemctl is-active isc-dhcp-server",
         "c": "systemctl is-active greenroom-vlan-eth1.100.service",
         "d": "systemctl is-active chrony",  # asked twice
         "e": "systemctl is-enabled chrony", "f": "systemctl is-enabled isc-dhcp-server",
         "r": RELOAD,
         "q": "systemctl is-active --quiet NetworkManager"}  # not a plain query: alone
SHOW = ("systemctl show -p Id,ActiveState,NeedDaemonReload chrony isc-dhcp-server "
        "greenroom-vlan-eth1.100.service")


def block(unit: str, state: str, reload: str = "no") -> str:
    """One unit's block as systemctl show prints it (properties in systemd's order)."""
    return f"Id={unit}\nNeedDaemonReload={reload}\nActiveState={state}\n"


def test_unit_queries_are_one_show_and_one_is_enabled():
    asked, stands = merged.merge(UNITS)
    assert stands == {SHOW: [UNITS["a"], UNITS["b"], UNITS["c"], RELOAD],
                      "systemctl is-enabled chrony isc-dhcp-server": [UNITS["e"], UNITS["f"]]}
    assert asked["q"] == UNITS["q"]
    assert len(set(asked.values())) == 3


@pytest.mark.parametrize(("vlan", "reload", "c", "r"), [
    ("reloading", "no", FactResult(0, "reloading\n"), FactResult(1, "")),
    ("failed", "yes", FactResult(3, "failed\n"), FactResult(0, "")),
    ("inactive", "no", FactResult(3, "inactive\n"), FactResult(1, "")),
], ids=["reloading-no-reload", "failed-needs-reload", "no-such-unit"])
def test_each_unit_gets_its_state_and_the_status_systemctl_gives_it_alone(vlan, reload, c, r):
    """The bad states of each merged read are handed to their askers (a NO-GO names them)."""
    asked, stands = merged.merge(UNITS)
    shown = "\n".join([block("chrony.service", "active"), block("isc-dhcp-server.service",
                                                                "failed"),
                       block("greenroom-vlan-eth1.100.service", vlan, reload)])
    facts = {k: FactResult(0, shown) if c_.startswith("systemctl show")
             else FactResult(1, "static\ndisabled\n") for k, c_ in asked.items()}
    facts["q"] = FactResult(0, "")
    out = merged.split(UNITS, asked, stands, facts, _no_reread)
    assert out == {"a": FactResult(0, "active\n"), "b": FactResult(3, "failed\n"),
                   "c": c, "d": FactResult(0, "active\n"),
                   "e": FactResult(0, "static\n"), "f": FactResult(1, "disabled\n"),
                   "r": r, "q": FactResult(0, "")}


@pytest.mark.parametrize("shown", [
    block("chrony.service", "active") + "\n" + block("ntp.service", "active"),  # an alias
    block("chrony.service", "active"),  # a block short
    "",  # no systemd
], ids=["alias", "short", "empty"])
def test_a_show_answer_not_one_block_per_unit_leaves_each_asker_to_its_own(shown):
    commands = {"a": "systemctl is-active chrony", "b": "systemctl is-active chronyd"}
    asked, stands = merged.merge(commands)
    again = []

    def reread(missing):
        again.append(dict(missing))
        return {k: FactResult(0, "active\n") for k in missing}

    merged.split(commands, asked, stands, {k: FactResult(0, shown) for k in asked}, reread)
    assert again and set(again[0]) <= {"a", "b"} and "b" in again[0]


def test_a_short_unit_answer_leaves_each_asker_to_its_own():
    """is-enabled stops at a unit it cannot find: fewer lines than units."""
    commands = {"e": "systemctl is-enabled chrony", "f": "systemctl is-enabled nope"}
    asked, stands = merged.merge(commands)
    again = []

    def reread(missing):
        again.append(dict(missing))
        return {"e": FactResult(0, "enabled\n"), "f": FactResult(1, "")}

    out = merged.split(commands, asked, stands, {k: FactResult(1, "enabled\n") for k in asked},
                       reread)
    assert again == [commands]
    assert out == {"e": FactResult(0, "enabled\n"), "f": FactResult(1, "")}


def stand_in_systemctl(tmp_path):  # noqa: ANN001, ANN201
    """A directory with a stand-in `systemctl show -p ... UNITS` that logs each start to
    tmp_path/starts: every unit active (a dhcp one failed), its unit file enabled."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/starts\nshift 3\n'
                    'for u in "$@"; do case $u in *.*) id=$u;; *) id=$u.service;; esac; '
                    'case $u in *dhcp*) s=failed;; *) s=active;; esac; '
                    'printf "Id=%s\\nActiveState=%s\\nUnitFileState=enabled\\n'
                    'NeedDaemonReload=no\\n\\n" "$id" "$s"; done\n')
    stub.chmod(0o755)
    return bin_dir


def test_a_batch_of_unit_queries_starts_one_systemctl(tmp_path):
    """Through demo.check's own read: a stand-in systemctl on PATH counts its starts."""

    from runbooks.demo.check import _read

    bin_dir = stand_in_systemctl(tmp_path)


    units = ["chrony", "isc-dhcp-server", "docker-registry", "greenroom-nftables.service"]
    facts, _moment = _read(StubSession(bin_dir), {u: f"systemctl is-active {u}" for u in units})
    assert (tmp_path / "starts").read_text().splitlines() == [
        "show -p Id,ActiveState,NeedDaemonReload " + " ".join(units)]
    assert {u: (f.rc, f.out) for u, f in facts.items()} == {
        "chrony": (0, "active\n"), "isc-dhcp-server": (3, "failed\n"),
        "docker-registry": (0, "active\n"), "greenroom-nftables.service": (0, "active\n")}


def test_package_queries_of_a_batch_are_one_dpkg_query(tmp_path):
    """Every Packages step's dpkg_status fact in one dpkg-query (a stand-in on PATH counts
    its starts); each asker gets its own packages' lines, and exit 1 for a package dpkg does
    not know (here: bird2), as its own query would."""

    from runbooks.core.steps.system import dpkg_status
    from runbooks.demo.check import _read

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "dpkg-query"
    stub.write_text(f'#!/bin/sh\necho start >> {tmp_path}/starts\nshift 3\nrc=0\n'
                    'for p in "$@"; do case $p in bird2) rc=1;; chrony) echo "$p ii ";; '
                    '*) echo "$p:arm64 rc ";; esac; done\nexit $rc\n')
    stub.chmod(0o755)


    asked = {"chrony": dpkg_status(["chrony"]).command,
             "runtime": dpkg_status(["containerd", "containernetworking-plugins"]).command,
             "bird": dpkg_status(["bird2"]).command,
             "both": dpkg_status(["chrony", "bird2"]).command}
    facts, _moment = _read(StubSession(bin_dir), asked)
    assert len((tmp_path / "starts").read_text().splitlines()) == 1
    assert {k: (f.rc, f.out) for k, f in facts.items()} == {
        "chrony": (0, "chrony ii \n"),
        "runtime": (0, "containerd:arm64 rc \ncontainernetworking-plugins:arm64 rc \n"),
        "bird": (1, ""), "both": (1, "chrony ii \n")}
    assert dpkg_status(["chrony"]).parse(facts["chrony"]).installed("chrony")
    assert not dpkg_status(["containerd"]).parse(facts["runtime"]).installed("containerd")


class StubSession:
    """A host's session that runs a batch with POSIX sh here, `bin_dir`'s stand-ins first on
    PATH."""

    def __init__(self, bin_dir):
        self.bin_dir = bin_dir

    def run(self, script, stdin=None):
        import os
        import subprocess

        from runbooks.core.session import CommandResult

        env = dict(os.environ, PATH=f"{self.bin_dir}:{os.environ['PATH']}")
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                              check=False)
        return CommandResult(done.returncode, done.stdout, done.stderr)


SWAP = "systemctl show -p Id,UnitFileState,ActiveState dphys-swapfile.service zramswap.service"


def full_block(unit: str, state: str, file_state: str) -> str:
    """A unit's block of the merged show (systemd's order: Id, then the Unit interface's)."""
    return (f"Id={unit}\nNeedDaemonReload=no\nActiveState={state}\n"
            f"UnitFileState={file_state}\n")


def test_a_plain_show_joins_the_batchs_one_show():
    commands = {"swap": SWAP, "k3s": "systemctl is-active k3s-agent", "reload": RELOAD}
    asked, stands = merged.merge(commands)
    one = ("systemctl show -p Id,ActiveState,NeedDaemonReload,UnitFileState "
           "dphys-swapfile.service zramswap.service k3s-agent greenroom-vlan-eth1.100.service")
    assert set(asked.values()) == {one} and stands == {one: [SWAP, commands["k3s"], RELOAD]}


@pytest.mark.parametrize(("zram", "providers"), [
    (("inactive", ""), []),
    (("active", "enabled"), ["service zramswap (enabled and running)"]),
], ids=["swap-off-go", "zram-on-no-go"])
def test_the_plain_show_gets_its_blocks_as_its_own_show_prints_them(zram, providers):
    """What pi-prep's swap rule reads from its share of the merged show: a zram unit that
    is enabled and running is a NO-GO named by the rule, as from its own show."""
    from runbooks.pi_prep.swap import parse_units, swap_providers

    commands = {"units": SWAP, "k3s": "systemctl is-active k3s-agent"}
    asked, stands = merged.merge(commands)
    shown = "\n".join([full_block("dphys-swapfile.service", "inactive", ""),
                       full_block("zramswap.service", *zram),
                       full_block("k3s-agent.service", "active", "enabled")])
    out = merged.split(commands, asked, stands, {k: FactResult(0, shown) for k in asked},
                       _no_reread)
    alone = (f"Id=dphys-swapfile.service\nActiveState=inactive\nUnitFileState=\n\n"
             f"Id=zramswap.service\nActiveState={zram[0]}\nUnitFileState={zram[1]}\n")
    assert out == {"units": FactResult(0, alone), "k3s": FactResult(0, "active\n")}
    assert parse_units(out["units"].out)["zramswap"] == (zram[1] or "none", zram[0])
    facts = {"swaps": FactResult(0, "Filename Type Size Used Priority\n"),
             "fstab": FactResult(1, ""), "packages": FactResult(1, ""), "units": out["units"]}
    assert swap_providers(facts) == providers


def test_a_plain_show_whose_block_names_another_unit_is_read_on_its_own():
    commands = {"units": SWAP, "k3s": "systemctl is-active k3s-agent"}
    asked, stands = merged.merge(commands)
    shown = "\n".join([full_block("dphys-swapfile.service", "inactive", ""),
                       full_block("systemd-zram-setup@zram0.service", "active", "static"),
                       full_block("k3s-agent.service", "active", "enabled")])
    again = []

    def reread(missing):
        again.append(dict(missing))
        return {k: FactResult(0, "") for k in missing}

    merged.split(commands, asked, stands, {k: FactResult(0, shown) for k in asked}, reread)
    assert again == [{"units": SWAP}]


def test_a_batch_with_a_plain_show_and_unit_queries_starts_one_systemctl(tmp_path):
    from runbooks.demo.check import _read

    bin_dir = stand_in_systemctl(tmp_path)
    commands = {"units": SWAP, "k3s": "systemctl is-active k3s-agent",
                "chrony": "systemctl is-active chrony"}
    facts, _moment = _read(StubSession(bin_dir), commands)
    assert len((tmp_path / "starts").read_text().splitlines()) == 1
    assert facts["k3s"] == FactResult(0, "active\n")
    assert facts["units"].out.startswith(
        "Id=dphys-swapfile.service\nActiveState=active\nUnitFileState=enabled\n\n")
