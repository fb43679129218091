"""registry.up, registry.check and registry.trust on the virtual lab. Each test asks for the
state it needs through a fixture (a fresh gateway, the registry up, an image pushed), so any
one runs alone or in any order; in file order they share one reset and one converge.

The gateway (dell) is reset; registry.up must refuse to run before dell-gateway put the VLAN
address there, then (after dell-gateway) install Debian's docker-registry, listen on
192.168.10.2:5001, answer /v2/ to a board over the VLAN, accept a pushed image, keep it
across a restart, restart only when its config changed, and change nothing on a second run.
A board (rp1) is reset and gets Debian's containerd from the lab's apt proxy; registry.trust
writes config_path, the registry's hosts.toml and one mirror entry per upstream registry
(containerd then fetches the pushed image by an upstream name, docker.io/... and quay.io/...,
from the local registry), restarts containerd once, then changes nothing.

What is not real here: k3s, microk8s and Docker cannot run in the lab, so their files are
written for real (with --runtimes) and their restart is skipped with a note; the docker
registry runtime (registry:2) is only unit-tested (no Docker engine on this machine).
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tomllib

import pytest
import yaml

from runbooks.common import containerd
from runbooks.common import registry_trust as trust
from runbooks.dell_gateway.plan import RUNBOOK as GATEWAY_RUNBOOK
from runbooks.registry.converge import TRUST, UP

pytestmark = pytest.mark.lab
GATEWAY = "dell"
BOARD = "rp1"
EP = "192.168.10.2:5001"
URL = f"http://{EP}"
UPSTREAMS = ("docker.io", "ghcr.io", "quay.io", "registry.k8s.io")


def run(lab, runbook, host: str, **options):
    """Run `runbook` on `host`; (result, printed output)."""
    from runbooks.core.runner import run_runbook

    out = io.StringIO()
    inv = lab.inventory
    result = run_runbook(runbook, inv, [inv.hosts[host]], out=out, options=options)
    return result, out.getvalue()


def sh(lab, host: str, cmd: str, timeout: float = 120) -> str:
    done = lab.exec(host, cmd, timeout=timeout)
    assert done.returncode == 0, f"{host}: {cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def main_pid(lab, host: str, unit: str) -> str:
    return sh(lab, host, f"systemctl show -p MainPID --value {unit}").strip()


@pytest.fixture(scope="module")
def gateway(lab):
    """A freshly reset gateway."""
    lab.reset(GATEWAY)
    return lab


@pytest.fixture
def fresh(gateway):
    """The gateway as lab.up made it (reset only when a test before changed it)."""
    if gateway.exec(GATEWAY, "ip -4 -o addr show | grep -q ' 192.168.10.2/' || "
                             "dpkg-query -W docker-registry").returncode == 0:
        gateway.reset(GATEWAY)
    return gateway


@pytest.fixture
def registry_up(gateway):
    """dell-gateway and registry.up converged on the gateway (no-op runs when they are)."""
    for runbook in (GATEWAY_RUNBOOK, UP):
        result, out = run(gateway, runbook, GATEWAY)
        assert result.ok, out
    return gateway


@pytest.fixture
def pushed(registry_up):
    """The registry holds lab/hello:v1 (pushed from a board over the VLAN)."""
    script, _digest = push_script("lab/hello", "v1")
    sh(registry_up, "rp0", script)
    return registry_up


def test_up_refuses_before_dell_gateway(gateway, fresh):
    lab = gateway
    assert "192.168.10.2" not in sh(lab, GATEWAY, "ip -4 -o addr show")
    from runbooks.core.runner import run_runbook

    out = io.StringIO()
    checked = run_runbook(UP, lab.inventory, [lab.inventory.hosts[GATEWAY]], check=True,
                          out=out)
    assert checked.hosts[GATEWAY].status == "changed", out.getvalue()  # check mode: reported
    assert "run `inv dell-gateway` first" in out.getvalue()
    assert "+  addr: 192.168.10.2:5001" in out.getvalue()  # the config diff
    result, out = run(lab, UP, GATEWAY)
    host = result.hosts[GATEWAY]
    assert host.status == "failed", out
    assert "run `inv dell-gateway` first" in host.error
    assert lab.exec(GATEWAY, "dpkg-query -W docker-registry").returncode != 0  # nothing done


def test_up_converges_after_dell_gateway(gateway, fresh):
    lab = gateway
    result, out = run(lab, GATEWAY_RUNBOOK, GATEWAY)
    assert result.ok, out
    result, out = run(lab, UP, GATEWAY)
    assert result.ok, out
    assert result.hosts[GATEWAY].status == "changed"
    config = yaml.safe_load(sh(lab, GATEWAY, "cat /etc/docker/registry/config.yml"))
    assert config["http"]["addr"] == EP
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/docker-registry"
    assert sh(lab, GATEWAY, "systemctl is-enabled docker-registry; systemctl is-active "
                            "docker-registry").split() == ["enabled", "active"]
    assert "Restart=on-failure" in sh(lab, GATEWAY, "systemctl cat docker-registry")
    listening = sh(lab, GATEWAY, "ss -Hltn")
    assert f"{EP} " in listening and ":5000 " not in listening  # only the VLAN address


def test_second_up_changes_nothing_and_does_not_restart(gateway, registry_up):
    pid = main_pid(gateway, GATEWAY, "docker-registry")
    result, out = run(gateway, UP, GATEWAY)
    assert result.ok and result.changed == 0, out
    assert "Ensure http://192.168.10.2:5001/v2/ answers" in [
        s.name for s in result.hosts[GATEWAY].steps]  # the health check ran on a no-op run
    assert main_pid(gateway, GATEWAY, "docker-registry") == pid


def push_script(repo: str, tag: str) -> tuple[str, str]:
    """A shell script that pushes a one-layer OCI image with curl; and its manifest digest."""
    layer = b"greenroom lab layer\n"
    config = json.dumps({"architecture": "arm64", "os": "linux"}).encode()

    def desc(media: str, data: bytes) -> dict:
        return {"mediaType": media, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                "size": len(data)}

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", layer)]}).encode()
    lines = ["set -e"]
    for blob in (layer, config):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        lines += [
            f"printf %s {shlex.quote(blob.decode())} > /tmp/blob",
            f"loc=$(curl -fsS -X POST -D - -o /dev/null {URL}/v2/{repo}/blobs/uploads/ "
            "| tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')",
            'case "$loc" in http*) ;; *) loc="' + URL + '$loc";; esac',
            f'curl -fsS -X PUT -H "Content-Type: application/octet-stream" '
            f'--data-binary @/tmp/blob "$loc&digest={digest}"',
        ]
    lines.append(f"printf %s {shlex.quote(manifest.decode())} > /tmp/manifest")
    lines.append("curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "
                 f"--data-binary @/tmp/manifest {URL}/v2/{repo}/manifests/{tag}")
    return "\n".join(lines), "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_board_reaches_registry_over_vlan_and_pushes(gateway, registry_up):
    lab = gateway
    assert json.loads(sh(lab, "rp0", f"curl -fsS {URL}/v2/")) == {}
    script, digest = push_script("lab/hello", "v1")
    sh(lab, "rp0", script)
    catalog = json.loads(sh(lab, "rp0", f"curl -fsS {URL}/v2/_catalog"))
    assert "lab/hello" in catalog["repositories"]
    head = sh(lab, "rp0", "curl -fsSI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "
                          f"{URL}/v2/lab/hello/manifests/v1")
    assert digest in head
    # persistent storage: still there after the service restarts
    sh(lab, GATEWAY, "systemctl restart docker-registry")
    result, out = run(lab, UP, GATEWAY)  # healthy again, data kept
    assert result.ok, out
    assert "lab/hello" in sh(lab, GATEWAY, "ls -R /var/lib/docker-registry/docker/registry/v2/"
                                           "repositories")


def test_check_reports_catalog_and_fails_when_down(gateway, pushed, capsys):
    from invoke import Context, Exit

    from runbooks.registry.service_tasks import check

    inventory = str(gateway.inventory.path)
    check(Context(), inventory=inventory)
    out = capsys.readouterr().out
    assert f"registry {URL}: healthy" in out and "  lab/hello" in out
    sh(gateway, GATEWAY, "systemctl stop docker-registry")
    try:
        with pytest.raises(Exit) as stopped:
            check(Context(), inventory=inventory)
        assert stopped.value.code == 1
        assert "NOT healthy" in capsys.readouterr().out
    finally:
        result, out = run(gateway, UP, GATEWAY)  # starts it again
    assert result.ok, out


def test_config_change_restarts_once(gateway, registry_up):
    lab = gateway
    sh(lab, GATEWAY, "sed -i 's/interval: 10s/interval: 20s/' /etc/docker/registry/config.yml")
    pid = main_pid(lab, GATEWAY, "docker-registry")
    result, out = run(lab, UP, GATEWAY)
    assert result.ok, out
    changed = [s.name for s in result.hosts[GATEWAY].steps if s.status == "changed"]
    assert changed == ["Ensure /etc/docker/registry/config.yml",
                       "Ensure docker-registry runs its current config"], out
    assert main_pid(lab, GATEWAY, "docker-registry") != pid
    result, out = run(lab, UP, GATEWAY)
    assert result.ok and result.changed == 0, out


# -- registry.trust ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def board(gateway):
    """rp1, reset, with Debian's containerd installed (through the lab's apt proxy)."""
    lab = gateway
    lab.reset(BOARD)
    sh(lab, BOARD, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                   "--no-install-recommends containerd", timeout=600)
    return lab


def test_trust_configures_containerd_and_restarts_once(board, pushed):
    lab = board
    before = lab.exec(BOARD, f"cat {containerd.CONFIG}").stdout
    pid = main_pid(lab, BOARD, "containerd")
    result, out = run(lab, TRUST, BOARD)
    assert result.ok, out
    assert "handler: restart containerd" in out
    config = tomllib.loads(sh(lab, BOARD, f"cat {containerd.CONFIG}"))
    table = containerd.registry_table(config["version"])
    assert containerd._dig(config, (*table, "config_path")) == containerd.CERTS_DIR
    for key, value in tomllib.loads(before or "").items():  # the package's settings kept
        if key != "plugins":
            assert config[key] == value
    hosts = tomllib.loads(sh(lab, BOARD, f"cat {containerd.CERTS_DIR}/{EP}/hosts.toml"))
    assert hosts["server"] == URL
    assert hosts["host"][URL]["capabilities"] == ["pull", "resolve"]
    new_pid = main_pid(lab, BOARD, "containerd")
    assert new_pid != pid and new_pid != "0"
    assert sh(lab, BOARD, "systemctl is-active containerd").strip() == "active"
    # containerd's own client resolves through certs.d and fetches the image pushed above
    # ... and by upstream names, through the mirror entries (repository paths kept)
    for name in (EP, *UPSTREAMS):
        hosts = tomllib.loads(sh(lab, BOARD, f"cat {containerd.CERTS_DIR}/{name}/hosts.toml"))
        assert hosts["server"] == URL and URL in hosts["host"], name
    for ref in (f"{EP}/lab/hello:v1", "docker.io/lab/hello:v1", "quay.io/lab/hello:v1"):
        fetched = lab.exec(BOARD, f"ctr content fetch --hosts-dir {containerd.CERTS_DIR} "
                                  f"{ref}", timeout=60)
        assert fetched.returncode == 0, ref + ": " + fetched.stdout + fetched.stderr

    result, out = run(lab, TRUST, BOARD)
    assert result.ok and result.changed == 0, out
    assert "restart containerd" not in out
    assert main_pid(lab, BOARD, "containerd") == new_pid


def test_trust_other_runtimes_files_written_restart_skipped(board):
    lab = board
    sh(lab, BOARD, "mkdir -p /etc/docker && echo '{\"log-driver\": \"journald\"}' > "
                   f"{trust.DOCKER_DAEMON_JSON}")
    # the files start absent whatever the tests before left (tests/lab/test_k3s.py writes
    # registries.yaml through this same step); whether a runtime's unit is installed depends
    # on them too: an installed one is restarted, a missing one skipped, saying so
    sh(lab, BOARD, f"rm -rf {trust.K3S_REGISTRIES} {trust.MICROK8S_CERTS_DIR}")
    installed = {runtime: [u for u in trust.RESTART_UNITS[runtime]
                           if lab.exec(BOARD, f"systemctl cat {u}").returncode == 0]
                 for runtime in ("k3s", "microk8s", "docker")}
    result, out = run(lab, TRUST, BOARD, runtimes="k3s,microk8s,docker")
    assert result.ok, out
    for runtime, units in installed.items():
        assert f"handler: restart {runtime}" in out, out
        assert (f"restart of {runtime} skipped" in out) is (not units), (runtime, units, out)
    assert not installed["microk8s"] and not installed["docker"]  # never on a lab board
    daemon = json.loads(sh(lab, BOARD, f"cat {trust.DOCKER_DAEMON_JSON}"))
    assert daemon == {"log-driver": "journald", "insecure-registries": [EP],
                      "registry-mirrors": [URL]}  # Docker mirrors Docker Hub only
    registries = yaml.safe_load(sh(lab, BOARD, f"cat {trust.K3S_REGISTRIES}"))
    assert {name: m["endpoint"] for name, m in registries["mirrors"].items()} == {
        name: [URL] for name in (EP, *UPSTREAMS)}
    for name in (EP, *UPSTREAMS):
        micro = tomllib.loads(sh(lab, BOARD, f"cat {trust.MICROK8S_CERTS_DIR}/{name}/"
                                             "hosts.toml"))
        assert micro["server"] == URL, name
    result, out = run(lab, TRUST, BOARD, runtimes="k3s,microk8s,docker")
    assert result.ok and result.changed == 0, out


def test_trust_refuses_broken_daemon_json(board):
    lab = board
    sh(lab, BOARD, f"echo '{{broken' > {trust.DOCKER_DAEMON_JSON}")
    result, out = run(lab, TRUST, BOARD, runtimes="docker")
    host = result.hosts[BOARD]
    assert host.status == "failed"
    assert trust.DOCKER_DAEMON_JSON in host.error and "not valid JSON" in host.error
    assert sh(lab, BOARD, f"cat {trust.DOCKER_DAEMON_JSON}").strip() == "{broken"


def test_trust_images_mirrors_the_registries_of_a_users_list(board, pushed, tmp_path):
    """registry.trust --images FILE: a user's own list naming a registry none of
    files/registry's lists names (nvcr.io) gets its mirror entry, containerd then fetches
    by that name from the local registry; a second run, and a run without --images (k3s,
    pi-prep and registry.trust write the lists' entries only), change nothing and keep it."""
    lab = board
    listing = tmp_path / "mine.txt"
    listing.write_text("nvcr.io/lab/hello:v1\n")
    result, out = run(lab, TRUST, BOARD, runtimes="containerd", images=str(listing))
    assert result.ok and result.changed >= 1, out
    assert "mirror entries for: " in out and "nvcr.io" in out
    hosts = tomllib.loads(sh(lab, BOARD, f"cat {containerd.CERTS_DIR}/nvcr.io/hosts.toml"))
    assert hosts["server"] == URL and URL in hosts["host"]
    fetched = lab.exec(BOARD, f"ctr content fetch --hosts-dir {containerd.CERTS_DIR} "
                              "nvcr.io/lab/hello:v1", timeout=60)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    for options in ({"images": str(listing)}, {}):
        result, out = run(lab, TRUST, BOARD, runtimes="containerd", **options)
        assert result.ok and result.changed == 0, out
    assert sh(lab, BOARD, f"test -f {containerd.CERTS_DIR}/nvcr.io/hosts.toml && echo kept") \
        .strip() == "kept"
