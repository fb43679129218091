"""inv k3s on the virtual lab (hosts/lab.yaml: rp0 server, rp1 and lp0 agents).

Everything on greenroom's side runs for real: the fetch from the lab's release site (and the
refusal of a tampered one), the push of binary and images to the boards with the checksum
checked on each, config.yaml, registries.yaml, units and 0600 env files, the token handed
over without showing anywhere, the readiness wait (and its timeout, naming the node and its
log lines when an agent has a wrong token), the kubeconfig merged (read back with the real
kubectl), idempotence, restart only where config changed, and a reset that removes real
debris next to the gateway's NAT rules. Only the k3s binary is a double (runbooks/lab/doubles).
"""

from __future__ import annotations

import io
import json
import shutil
import threading
from pathlib import Path

import pytest
from invoke import Context, Exit

from runbooks.core.inventory import load_inventory
from runbooks.k3s.release import Lock, lock_path
from runbooks.k3s.tasks import check, converge, fetch, reset
from runbooks.lab import release
from tests.lab.conftest import LAB_INVENTORY
from tests.support.kubeconfig import kubectl_config, users_own_kubeconfig

pytestmark = pytest.mark.lab

NODES = ("rp0", "rp1", "lp0")
UNIT = {"rp0": "k3s", "rp1": "k3s-agent", "lp0": "k3s-agent"}


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    """Fresh boards, a private cache and kubeconfig, a copy of the lab inventory (its lock
    is written beside it)."""
    tmp = tmp_path_factory.mktemp("k3s")
    for name in NODES:
        lab.reset(name)
    inventory = tmp / "lab.yaml"
    inventory.write_text(with_k3s(LAB_INVENTORY.read_text()))
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    patch.setenv("KUBECONFIG", str(tmp / "kubeconfig"))
    users_own_kubeconfig(tmp / "kubeconfig")
    yield tmp, inventory
    patch.undo()
    for name in NODES:
        lab.reset(name)


CLUSTER = """\
# k3s on the boards; the binary is the double lab.up serves on loopback
cluster:
  version: v1.34.3+k3s1
  source: http://127.0.0.1:18231
  disable: [traefik, servicelb]

"""


def with_k3s(text: str) -> str:
    """The lab inventory with rp0 a k3s server and rp1, lp0 agents (unless it has them)."""
    if "\ncluster:" not in text:
        text = text.replace("\nlab:\n", "\n" + CLUSTER + "lab:\n", 1)
    for address, role in (("10.231.0.3", "k3s-server"), ("10.231.0.4", "k3s-agent"),
                          ("10.231.0.5", "k3s-agent")):
        text = text.replace(f"address: {address}\n    roles: [pi]\n",
                            f"address: {address}\n    roles: [pi, {role}]\n")
    return text


def sh(lab, host: str, command: str) -> str:
    done = lab.exec(host, command)
    assert done.returncode == 0, f"{host}: {command}: {done.stdout}{done.stderr}"
    return done.stdout


def main_pids(lab) -> dict[str, str]:
    return {n: sh(lab, n, f"systemctl show -p MainPID --value {UNIT[n]}").strip()
            for n in NODES}


def run(inventory: Path, report: Path, **options) -> dict:
    try:
        converge(Context(), inventory=str(inventory), report=str(report), parallel=10,
                 **options)
    except Exit:
        pass
    return json.loads(report.read_text())


def changed_steps(data: dict) -> dict[str, list[str]]:
    return {h: [s["name"] for s in r["steps"] if s["status"] == "changed"]
            for h, r in data["hosts"].items() if r["changed"]}


def test_fetch_refuses_a_tampered_release_then_pins_the_lab_one(site, capsys):
    tmp, inventory = site
    server = release.make_server("127.0.0.1:0", str(tmp / "tampered.log"), ("k3s-arm64",))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(Exit) as refused:
            fetch(Context(), inventory=str(inventory),
                  source=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert "k3s-arm64: downloaded sha256" in str(refused.value.message)
    assert not lock_path(inventory).exists()
    with pytest.raises(Exit):
        fetch(Context(), inventory=str(inventory), check=True)
    assert "MISSING  k3s-arm64" in capsys.readouterr().out
    fetch(Context(), inventory=str(inventory))
    pinned = Lock.read(lock_path(inventory)).versions
    assert {"k3s-arm64", "k3s-airgap-images-arm64.tar.zst"} <= set(next(iter(pinned.values())))


def test_converge_installs_a_ready_cluster_without_showing_the_token(lab, site, capsys):
    tmp, inventory = site
    data = run(inventory, tmp / "first.json")
    out = capsys.readouterr().out
    assert data["ok"] is True, out
    token = sh(lab, "rp0", "cat /var/lib/rancher/k3s/server/token").strip()
    secret = token.rpartition(":")[2]
    assert secret not in out and secret not in (tmp / "first.json").read_text()
    lock = Lock.read(lock_path(inventory))
    version = load_inventory(inventory).sections["cluster"].version
    for name in NODES:
        digest = sh(lab, name, "sha256sum /usr/local/bin/k3s").split()[0]
        assert digest == lock.digest(version, "k3s-arm64")
        assert sh(lab, name, "ls /var/lib/rancher/k3s/agent/images").split() == [
            "k3s-airgap-images-arm64.tar.zst"]
        assert sh(lab, name, "systemctl is-enabled " + UNIT[name]).strip() == "enabled"
        env = f"/etc/systemd/system/{UNIT[name]}.service.env"
        assert sh(lab, name, f"stat -c %a {env}").strip() == "600"
        registries = sh(lab, name, "cat /etc/rancher/k3s/registries.yaml")
        assert "http://192.168.10.2:5001" in registries
        # one mirror entry per upstream registry, as k3s renders it for its containerd
        hosts = sh(lab, name, "cat /var/lib/rancher/k3s/agent/etc/containerd/certs.d/"
                              "quay.io/hosts.toml")
        assert '[host."http://192.168.10.2:5001"]' in hosts
    # the agent's unit names its join token's file; the token is there (0600), not in the
    # unit's environment (where k3s and every process it starts would carry it)
    env = sh(lab, "rp1", "cat /etc/systemd/system/k3s-agent.service.env")
    assert "K3S_TOKEN_FILE=/etc/rancher/k3s/join-token\n" in env and secret not in env
    assert secret in sh(lab, "rp1", "cat /etc/rancher/k3s/join-token")
    assert sh(lab, "rp1", "stat -c %a /etc/rancher/k3s/join-token").strip() == "600"
    assert "K3S_TOKEN" not in sh(lab, "rp1", "cat /etc/rancher/k3s/config.yaml")
    assert secret not in sh(lab, "rp1", "ps -eo args")
    config = sh(lab, "rp0", "cat /etc/rancher/k3s/config.yaml")
    for line in ("node-ip: 192.168.10.3", "flannel-iface: eth0.100", "- traefik",
                 "- servicelb", "- 192.168.10.25"):
        assert line in config
    nodes = json.loads(sh(lab, "rp0", "k3s kubectl get nodes -o json"))
    ready = {n["metadata"]["name"]: n["status"]["conditions"][0]["status"]
             for n in nodes["items"]}
    assert ready == {"rp0": "True", "rp1": "True", "lp0": "True"}
    assert "kube-vip" in sh(lab, "rp0", "cat /var/lib/rancher/k3s/agent/pod-manifests/"
                                        "kube-vip.yaml")


def test_kubeconfig_is_merged_as_kubectl_reads_it(site):
    tmp, _ = site
    data = json.loads(kubectl_config(tmp / "kubeconfig", "view", "--raw", "-o", "json"))
    clusters = {c["name"]: c["cluster"]["server"] for c in data["clusters"]}
    assert clusters == {"work": "https://10.9.9.9:6443", "lab": "https://192.168.10.25:6443"}
    users = {u["name"]: u["user"] for u in data["users"]}
    assert users["work"] == {"token": "keep-me"} and data["current-context"] == "work"


def test_registry_trust_after_k3s_changes_nothing(lab, site):
    from runbooks.core.runner import run_runbook
    from runbooks.registry.converge import TRUST

    _, inventory = site
    inv = load_inventory(inventory)
    pids = main_pids(lab)
    out = io.StringIO()
    result = run_runbook(TRUST, inv, [inv.hosts[n] for n in NODES], out=out,
                         options={"runtimes": "k3s"})
    assert result.ok and result.changed == 0, out.getvalue()
    assert main_pids(lab) == pids


def test_second_run_changes_and_restarts_nothing(lab, site, capsys):
    tmp, inventory = site
    before = main_pids(lab)
    capsys.readouterr()
    data = run(inventory, tmp / "second.json")
    out = capsys.readouterr().out
    assert data["ok"] is True and changed_steps(data) == {}
    assert data["check"] is False and set(data["hosts"]) == {"dell", *NODES}
    # every host read at once, in one round: the phases did not run
    assert "k3s on lab: 4 host(s), nothing to change" in out, out
    assert "RECAP k3s\n" in out and "each Ready before the next" not in out
    assert main_pids(lab) == before


TRAEFIK = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik, namespace: kube-system}
spec:
  selector: {matchLabels: {app: traefik}}
  template:
    metadata: {labels: {app: traefik}}
    spec: {containers: [{name: traefik, image: rancher/mirrored-library-traefik:3.3.6}]}
"""


def health(inventory: Path) -> None:
    """inv k3s.check (raises Exit when unhealthy)."""
    check(Context(), inventory=str(inventory), host=None, check=False, parallel=10,
          report=None, accept_new_host_keys=False)


def test_check_reports_a_healthy_cluster_then_names_what_is_wrong(lab, site, capsys):
    _, inventory = site
    health(inventory)
    out = capsys.readouterr().out
    for line in ("ok   version v1.34.3+k3s1 (pinned v1.34.3+k3s1)", "ok   k3s-agent active",
                 "ok   node rp0 Ready", "ok   node rp1 Ready", "ok   node lp0 Ready",
                 "system pods running", "ok   traefik disabled", "ok   servicelb disabled",
                 "ok   images pulled through http://192.168.10.2:5001"):
        assert line in out, out
    assert "BAD " not in out
    # a component that should be disabled shows up, and an agent's unit is stopped
    done = lab.exec("rp0", "k3s kubectl apply -f -", stdin=TRAEFIK)
    assert done.returncode == 0, done.stdout + done.stderr
    sh(lab, "lp0", "systemctl stop k3s-agent")
    try:
        with pytest.raises(Exit) as failed:
            health(inventory)
        assert failed.value.code == 1
        out = capsys.readouterr().out
        bad = {line.split("BAD ", 1)[1].strip() for line in out.splitlines() if "BAD " in line}
        assert "k3s-agent inactive" in bad, out
        assert "traefik disabled but present: deployment.apps/traefik" in bad, out
        assert "ok   servicelb disabled" in out
    finally:
        sh(lab, "rp0", "k3s kubectl delete deployment traefik -n kube-system")
    healed = run(inventory, Path(str(inventory) + ".healed.json"))  # starts the agent again
    assert healed["ok"] is True and "lp0" in changed_steps(healed)
    health(inventory)


def test_boards_pull_the_release_from_the_gateway(lab, site):
    """With the site's registry up, the files go to the gateway once and a board that lacks
    one downloads it from there (checksum checked on the board); again: nothing changes."""
    from runbooks.core.runner import run_runbook
    from runbooks.dell_gateway.plan import RUNBOOK as GATEWAY_RUNBOOK
    from runbooks.registry.converge import UP

    tmp, inventory = site
    inv = load_inventory(inventory)
    for runbook in (GATEWAY_RUNBOOK, UP):  # no-ops when an earlier test converged them
        assert run_runbook(runbook, inv, [inv.hosts["dell"]]).ok
    sh(lab, "lp0", "rm /usr/local/bin/k3s")
    data = run(inventory, tmp / "gateway.json")
    assert data["ok"] is True
    changes = {h: [c for s in r["steps"] for c in s["changes"]]
               for h, r in data["hosts"].items()}
    pushed = [c for c in changes["dell"] if c.startswith("push ")]
    if changes["dell"]:  # the registry did not hold the release yet: pushed once, now
        assert len(pushed) >= 2, changes["dell"]   # the binary and the images (and a config)
        assert changes["dell"][-1].startswith("tag greenroom/k3s-release:v1.34.3-k3s1-arm64")
    else:  # the registry was up at an earlier converge (test_faults' registry case): pushed then
        assert "v1.34.3-k3s1-arm64" in sh(
            lab, "dell", "curl -fsS http://192.168.10.2:5001/v2/greenroom/k3s-release/tags/list")
    installed = [c for c in changes["lp0"] if c.startswith("install /usr/local/bin/k3s")]
    assert installed and "from the gateway's registry http://192.168.10.2:5001" in installed[0]
    lock = Lock.read(lock_path(inventory))
    digest = lock.digest("v1.34.3+k3s1", "k3s-arm64")
    assert sh(lab, "lp0", "sha256sum /usr/local/bin/k3s").split()[0] == digest
    assert digest in sh(lab, "dell", "journalctl -u docker-registry --no-pager -o cat | "
                                     "grep 'GET /v2/greenroom/k3s-release/blobs' || true")
    again = run(inventory, tmp / "gateway2.json")
    assert again["ok"] is True and changed_steps(again) == {}


STAMPS = "/var/lib/greenroom/artifacts"
BINARY_STAMP = f"{STAMPS}/%2Fusr%2Flocal%2Fbin%2Fk3s"
# other bytes of the same size in the binary, its mtime put back: only the ctime tells
TAMPER = ("cp -p /usr/local/bin/k3s /tmp/k3s.ref && printf X | dd of=/usr/local/bin/k3s bs=1 "
          "seek=200 count=1 conv=notrunc 2>/dev/null && touch -r /tmp/k3s.ref "
          "/usr/local/bin/k3s && rm /tmp/k3s.ref")


def test_a_config_change_or_tampered_binary_restarts_only_the_nodes_they_touch(lab, site):
    """rp0's config changes; lp0's binary is changed in place with its size and mtime put
    back (its stamp still names them: the ctime gives it away, the file is hashed and
    replaced); rp1 is untouched and keeps running."""
    tmp, inventory = site
    text = inventory.read_text()
    (tmp / "args").mkdir(exist_ok=True)
    changed = tmp / "args" / "lab.yaml"  # same file name: the files' headers stay the same
    args = "cluster:\n  server_args: {kube-apiserver-arg: [audit-log-maxage=3]}\n"
    changed.write_text(text.replace("cluster:\n", args, 1))
    shutil.copy(lock_path(inventory), lock_path(changed))
    digest = Lock.read(lock_path(inventory)).digest("v1.34.3+k3s1", "k3s-arm64")
    size = sh(lab, "lp0", "stat -c %s /usr/local/bin/k3s")
    assert sh(lab, "lp0", f"cat {BINARY_STAMP}").startswith(f"{digest} {size.strip()} ")
    sh(lab, "lp0", TAMPER)
    assert sh(lab, "lp0", "sha256sum /usr/local/bin/k3s").split()[0] != digest
    before = main_pids(lab)
    data = run(changed, tmp / "args.json")
    assert data["ok"] is True
    steps = changed_steps(data)
    assert set(steps) == {"rp0", "lp0"}
    assert [s for s in steps["lp0"] if not s.startswith("handler")] == [
        f"Ensure /usr/local/bin/k3s is k3s-arm64 v1.34.3+k3s1 (sha256 {digest[:12]})"]
    assert sh(lab, "lp0", "sha256sum /usr/local/bin/k3s").split()[0] == digest
    after = main_pids(lab)
    assert after["rp0"] != before["rp0"] and after["lp0"] != before["lp0"]
    assert after["rp1"] == before["rp1"]
    again = run(changed, tmp / "args2.json")
    assert again["ok"] is True and changed_steps(again) == {}


def test_an_agent_with_a_wrong_token_is_named_with_its_log_lines(lab, site, capsys):
    from runbooks.k3s.plan import NODES as NODES_RUNBOOK
    from runbooks.k3s.plan import READY
    from runbooks.k3s.run import run_phases

    tmp, inventory = site
    inv = load_inventory(inventory)
    token = sh(lab, "rp0", "cat /var/lib/rancher/k3s/server/token").strip()
    wrong = token.rpartition(":")[0] + ":wrong-password-42"
    options = {"lock": Lock.read(lock_path(inv.path)), "shared": {"token": wrong},
               "timeout": 5, "kubeconfig_path": None}
    sh(lab, "rp0", "true")
    phases = [(NODES_RUNBOOK, [inv.hosts["lp0"]], 0), (READY, [inv.hosts["rp0"]], 0)]
    result = run_phases(phases, inv, name="k3s", check=False, parallel=4, options=options)
    assert not result.ok
    error = result.hosts["rp0"].error or ""
    assert "not Ready after 5 s: lp0" in error
    assert "401 Unauthorized" in error and "wrong-password-42" not in error
    healed = run(inventory, tmp / "healed.json")
    assert healed["ok"] is True and set(changed_steps(healed)) <= {"lp0", "rp0"}


def test_reset_removes_debris_and_keeps_the_nat(lab, site, capsys):
    tmp, inventory = site
    debris = (
        "ip link add cni0 type bridge && ip link add flannel.1 type vxlan id 1 dstport 8472 "
        "dev eth0.100 && iptables -t nat -N KUBE-POSTROUTING && iptables -t nat -N CNI-abc && "
        "iptables -t nat -A POSTROUTING -j KUBE-POSTROUTING && iptables -N FLANNEL-FWD && "
        "iptables -A FORWARD -j FLANNEL-FWD && "
        "iptables -t nat -A POSTROUTING -s 192.168.10.0/25 -o eth0 -j MASQUERADE && "
        "nft add table inet greenroom && nft add chain inet greenroom postrouting "
        "'{ type nat hook postrouting priority 100; }' && "
        "nft add rule inet greenroom postrouting oifname eth0 masquerade && "
        "mkdir -p /etc/cni/net.d /var/lib/cni/networks /run/flannel && "
        "echo '{}' > /etc/cni/net.d/10-flannel.conflist && touch /run/flannel/subnet.env")
    sh(lab, "rp1", debris)
    state = "iptables-save | grep -v '^[#:]'; ip -o link show | cut -d' ' -f2"
    before = sh(lab, "rp1", state)
    assert "KUBE-POSTROUTING" in before and "cni0" in before
    check_report = tmp / "reset-check.json"
    reset(Context(), inventory=str(inventory), parallel=10, check=True, report=str(check_report))
    listed = capsys.readouterr().out
    assert "remove cni0, flannel.1" in listed and "KUBE-/CNI-/flannel line(s)" in listed
    assert sh(lab, "rp1", state) == before  # check mode changed nothing
    reset(Context(), inventory=str(inventory), parallel=10, keep_images=True,
          report=str(tmp / "r.json"))
    after = sh(lab, "rp1", "iptables-save; ip -o link show; nft list ruleset")
    for gone in ("KUBE-", "CNI-", "FLANNEL", "cni0", "flannel.1"):
        assert gone not in after
    assert "-A POSTROUTING -s 192.168.10.0/25 -o eth0 -j MASQUERADE" in after
    assert 'oifname "eth0" masquerade' in after
    for name in NODES:
        left = sh(lab, name, "ls -d /etc/rancher/k3s /var/lib/cni /etc/cni/net.d /run/flannel "
                             "/usr/local/bin/k3s /etc/systemd/system/k3s* 2>/dev/null; "
                             "find /var/lib/rancher/k3s -type f; true").split()
        assert left == ["/var/lib/rancher/k3s/agent/images/k3s-airgap-images-arm64.tar.zst"]
        assert lab.exec(name, "pgrep -f 'k3[s] (server|agent)'").returncode == 1
        # the kept images keep their stamp; the binary's went with it
        assert sh(lab, name, f"ls {STAMPS}").split() == [
            "%2Fvar%2Flib%2Francher%2Fk3s%2Fagent%2Fimages%2Fk3s-airgap-images-arm64.tar.zst"]
    contexts = kubectl_config(tmp / "kubeconfig", "get-contexts", "-o", "name").split()
    assert contexts == ["work"]
    reset(Context(), inventory=str(inventory), parallel=10, report=str(tmp / "r2.json"))
    again = json.loads((tmp / "r2.json").read_text())
    assert set(changed_steps(again)) == set(NODES)  # only the kept images went now
    for name in NODES:
        assert sh(lab, name, f"ls {STAMPS}").split() == []
    reset(Context(), inventory=str(inventory), parallel=10, report=str(tmp / "r3.json"))
    assert changed_steps(json.loads((tmp / "r3.json").read_text())) == {}
    assert run(inventory, tmp / "again.json")["ok"] is True  # a reset, then a working cluster


def journal(lab, host: str) -> list[tuple[float, str]]:
    """(unix time, message) of the node's k3s unit, oldest first."""
    out = sh(lab, host, f"journalctl -u {UNIT[host]} -o short-unix --no-pager -q")
    return [(float(line.split(" ", 1)[0]), line) for line in out.splitlines()
            if line[:1].isdigit()]


def restarted(lab, host: str) -> tuple[float, float]:
    """When the node's k3s last stopped, and when it was up again after that."""
    lines = journal(lab, host)
    stop = max(t for t, line in lines if "Shutting down k3s" in line)
    up = min(t for t, line in lines if t >= stop and (
        "k3s is up and running" in line or "joined the cluster" in line))
    return stop, up


def test_a_new_version_rolls_out_servers_first_one_node_at_a_time(lab, site, capsys):
    tmp, inventory = site
    (tmp / "v2").mkdir(exist_ok=True)
    newer = tmp / "v2" / "lab.yaml"
    newer.write_text(inventory.read_text().replace("version: v1.34.3+k3s1",
                                                   "version: v1.34.4+k3s1", 1))
    shutil.copy(lock_path(inventory), lock_path(newer))
    fetch(Context(), inventory=str(newer))  # as an operator does: pin and cache it first
    assert Lock.read(lock_path(newer)).digest("v1.34.4+k3s1", "k3s-arm64")
    before = main_pids(lab)
    order = "rp0 -> rp1 -> lp0"
    checked = run(newer, tmp / "v2-check.json", check=True)
    assert checked["ok"] is True
    assert f"each Ready before the next: {order}" in capsys.readouterr().out
    assert main_pids(lab) == before  # --check restarted nothing
    assert "v1.34.3+k3s1" in sh(lab, "lp0", "k3s --version")
    data = run(newer, tmp / "v2.json")
    out = capsys.readouterr().out
    assert data["ok"] is True, out
    assert f"each Ready before the next: {order}" in out
    for name in NODES:
        assert "v1.34.4+k3s1" in sh(lab, name, "k3s --version")
    nodes = json.loads(sh(lab, "rp0", "k3s kubectl get nodes -o json"))["items"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.34.4+k3s1"}
    times = {name: restarted(lab, name) for name in NODES}
    assert times["rp0"][1] <= times["rp1"][0] and times["rp1"][1] <= times["lp0"][0], times
    again = run(newer, tmp / "v2-again.json")
    assert again["ok"] is True and changed_steps(again) == {}


def test_three_servers_run_embedded_etcd_behind_the_vip(lab, site):
    """rp0, rp1 and lp0 all servers: cluster-init on the first, `server:` on the others,
    kube-vip on each, every node a Ready control-plane/etcd member."""
    tmp, inventory = site
    (tmp / "ha").mkdir(exist_ok=True)
    ha = tmp / "ha" / "lab.yaml"
    ha.write_text(inventory.read_text().replace("k3s-agent]", "k3s-server]"))
    shutil.copy(lock_path(inventory), lock_path(ha))
    reset(Context(), inventory=str(inventory), parallel=10, keep_images=True,
          report=str(tmp / "ha-reset.json"))
    data = run(ha, tmp / "ha.json")
    assert data["ok"] is True
    configs = {n: sh(lab, n, "cat /etc/rancher/k3s/config.yaml") for n in NODES}
    assert "cluster-init: true" in configs["rp0"] and "\nserver:" not in configs["rp0"]
    for name in ("rp1", "lp0"):
        assert "server: https://192.168.10.3:6443" in configs[name]
        assert "cluster-init" not in configs[name]
        assert "K3S_TOKEN_FILE=" in sh(lab, name, "cat /etc/systemd/system/k3s.service.env")
        assert sh(lab, name, "stat -c %a /etc/rancher/k3s/join-token").strip() == "600"
    for name in NODES:
        assert sh(lab, name, "systemctl is-active k3s").strip() == "active"
        assert "192.168.10.25" in sh(lab, name, "cat /var/lib/rancher/k3s/agent/"
                                                "pod-manifests/kube-vip.yaml")
    nodes = json.loads(sh(lab, "rp0", "k3s kubectl get nodes -o json"))["items"]
    roles = {n["metadata"]["name"]: {k.rsplit("/", 1)[1] for k in n["metadata"]["labels"]
                                     if k.startswith("node-role.kubernetes.io/")}
             for n in nodes}
    assert {n: {"control-plane", "etcd"} <= r for n, r in roles.items()} == {
        "rp0": True, "rp1": True, "lp0": True}, roles
    again = run(ha, tmp / "ha-again.json")
    assert again["ok"] is True and changed_steps(again) == {}
    reset(Context(), inventory=str(ha), parallel=10, report=str(tmp / "ha-gone.json"))
    assert json.loads((tmp / "ha-gone.json").read_text())["ok"] is True
