"""registry.trust mergers (k3s, Docker) and registry.up/check planners: table-driven, pure.

Mergers: a fresh file, an already converged file (returned byte for byte), other settings
kept, and invalid existing content refused with a clear error. Planners: the steps' facts
-> changes, including the no-op case; the registry:2 container planner (no Docker engine on
this machine, so the docker runtime is tested only here).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from runbooks.common import containerd
from runbooks.common import registry_trust as trust
from runbooks.core.facts import FactResult
from runbooks.core.steps import StepFailed
from runbooks.registry import converge
from runbooks.registry.service_tasks import health_from, parse_catalog

EP = "192.168.10.2:5001"
URL = f"http://{EP}"
UPSTREAMS = ("docker.io", "ghcr.io", "quay.io", "registry.k8s.io")

# -- k3s registries.yaml ---------------------------------------------------------------------

WANTED_K3S = {"mirrors": {EP: {"endpoint": [URL]}},
              "configs": {EP: {"tls": {"insecure_skip_verify": True}}}}


@pytest.mark.parametrize("content", [None, "", "# nothing yet\n"],
                         ids=["missing", "empty", "comment-only"])
def test_k3s_fresh(content):
    assert yaml.safe_load(trust.merge_k3s_registries(content, EP)) == WANTED_K3S


def test_k3s_other_settings_kept_and_converged_unchanged():
    content = ("mirrors:\n  docker.io:\n    endpoint: ['https://mirror.local']\n"
               f"  '{EP}':\n    endpoint: ['http://backup:5000']\n"
               f"configs:\n  '{EP}':\n    auth: {{username: u, password: p}}\n")
    merged = trust.merge_k3s_registries(content, EP)
    data = yaml.safe_load(merged)
    assert data["mirrors"]["docker.io"] == {"endpoint": ["https://mirror.local"]}
    assert data["mirrors"][EP]["endpoint"] == [URL, "http://backup:5000"]
    assert data["configs"][EP] == {"auth": {"username": "u", "password": "p"},
                                   "tls": {"insecure_skip_verify": True}}
    assert trust.merge_k3s_registries(merged, EP) == merged
    converged = yaml.safe_dump(WANTED_K3S) + "# hand-written comment\n"
    assert trust.merge_k3s_registries(converged, EP) == converged


def test_k3s_one_mirror_per_upstream_and_converged_unchanged():
    content = "mirrors:\n  docker.io:\n    endpoint: ['https://mirror.local']\n"
    merged = trust.merge_k3s_registries(content, EP, UPSTREAMS)
    data = yaml.safe_load(merged)
    assert list(data["mirrors"]) == ["docker.io", EP, "ghcr.io", "quay.io", "registry.k8s.io"]
    assert data["mirrors"]["docker.io"]["endpoint"] == [URL, "https://mirror.local"]
    for name in UPSTREAMS[1:]:
        assert data["mirrors"][name] == {"endpoint": [URL]}
    assert list(data["configs"]) == [EP]  # plain HTTP: only the local registry's own entry
    assert trust.merge_k3s_registries(merged, EP, UPSTREAMS) == merged
    # the local registry's own entry alone is not converged once upstreams are asked for
    alone = trust.merge_k3s_registries(None, EP)
    assert trust.merge_k3s_registries(alone, EP, UPSTREAMS) != alone


@pytest.mark.parametrize("content, words", [
    pytest.param("mirrors: [\n", "not valid YAML", id="invalid-yaml"),
    pytest.param("- a\n- b\n", "expected a mapping", id="a-list"),
    pytest.param("mirrors: 3\n", "`mirrors:`", id="mirrors-not-mapping"),
    pytest.param(f"mirrors: {{'{EP}': {{endpoint: x}}}}\n", "not a list", id="endpoint-str"),
    pytest.param(f"configs: {{'{EP}': {{tls: yes}}}}\n", "tls", id="tls-not-mapping"),
])
def test_k3s_bad_file_refused(content, words):
    with pytest.raises(ValueError, match=words):
        trust.merge_k3s_registries(content, EP)


# -- Docker daemon.json ----------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    pytest.param(None, {"insecure-registries": [EP]}, id="missing"),
    pytest.param("", {"insecure-registries": [EP]}, id="empty"),
    pytest.param('{"log-driver": "journald", "insecure-registries": ["a:5000"]}',
                 {"log-driver": "journald", "insecure-registries": ["a:5000", EP]},
                 id="other-keys-and-registries-kept"),
])
def test_daemon_json_merged(content, expected):
    merged = trust.merge_daemon_json(content, EP)
    assert json.loads(merged) == expected
    assert trust.merge_daemon_json(merged, EP) == merged


@pytest.mark.parametrize("content, expected", [
    pytest.param(None, {"insecure-registries": [EP], "registry-mirrors": [URL]}, id="missing"),
    pytest.param('{"registry-mirrors": ["https://m.local"], "insecure-registries": ["' + EP
                 + '"]}', {"registry-mirrors": [URL, "https://m.local"],
                           "insecure-registries": [EP]}, id="other-mirror-kept-after-ours"),
])
def test_daemon_json_docker_hub_mirror(content, expected):
    merged = trust.merge_daemon_json(content, EP, docker_hub=True)
    assert json.loads(merged) == expected
    assert trust.merge_daemon_json(merged, EP, docker_hub=True) == merged


def test_daemon_json_converged_unchanged_byte_for_byte():
    content = '{ "insecure-registries" : ["' + EP + '"],\n "debug": true }'
    assert trust.merge_daemon_json(content, EP) == content


@pytest.mark.parametrize("content, words", [
    pytest.param("{", "not valid JSON", id="invalid-json"),
    pytest.param("[]", "expected an object", id="array"),
    pytest.param('{"insecure-registries": "x"}', "list of", id="registries-not-list"),
    pytest.param('{"registry-mirrors": "x"}', "registry-mirrors", id="mirrors-not-list"),
])
def test_daemon_json_bad_refused(content, words):
    with pytest.raises(ValueError, match=words):
        trust.merge_daemon_json(content, EP, docker_hub=True)


# -- registry.up steps -----------------------------------------------------------------------

def facts(**values):
    return {k: v if isinstance(v, FactResult) else FactResult(0, v) for k, v in values.items()}


IP_OUT = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
          "3: eth1.100    inet 192.168.10.2/25 scope global eth1.100\n")


@pytest.mark.parametrize("out, changes", [
    pytest.param(IP_OUT, [], id="present"),
    pytest.param(IP_OUT.replace("10.2/", "10.9/"), ["run `inv dell-gateway` first"],
                 id="missing-is-a-precondition"),
])
def test_vlan_address(out, changes):
    step = converge.VlanAddress("192.168.10.2", "dell")
    planned = step.plan(facts(addrs=out))
    assert [c.precondition for c in planned] == [True] * len(changes)
    for change, words in zip(planned, changes, strict=True):
        assert words in change.summary


STARTED = "Sun 2026-11-22 02:49:33.812116 UTC"
T0 = converge.parse_start_time(STARTED)


def restarted_facts(files, mtime_offset, started=STARTED, sums=None):
    import hashlib

    sums = sums or {p: hashlib.sha256(t.encode()).hexdigest() for p, t in files.items()}
    return facts(
        started=started,
        mtimes="".join(f"{T0 + mtime_offset:.9f} {p}\n" for p in files),
        sums="".join(f"{d}  {p}\n" for p, d in sums.items()))


@pytest.mark.parametrize("offset, started, sums, expect", [
    pytest.param(-5.0, STARTED, None, None, id="older-config-no-restart"),
    pytest.param(+0.5, STARTED, None, "changed after it started", id="newer-config-restart"),
    pytest.param(-5.0, STARTED, {"/c.yml": "0" * 64}, "will change", id="check-mode-content"),
    pytest.param(+9.0, "", None, None, id="never-started-service-step-starts-it"),
])
def test_registry_restarted(offset, started, sums, expect):
    files = {"/c.yml": "addr: 1\n"}
    step = converge.RegistryRestarted("docker-registry", files, URL)
    changes = step.plan(restarted_facts(files, offset, started, sums))
    if expect is None:
        assert changes == []
    else:
        assert len(changes) == 1 and expect in changes[0].summary
        assert "systemctl restart docker-registry" in changes[0].actions[0].command
        assert f"{URL}/v2/" in changes[0].actions[0].command


def test_parse_start_time():
    assert converge.parse_start_time("Thu 1970-01-01 00:00:01.500000 UTC") == 1.5
    assert converge.parse_start_time("") is None
    assert converge.parse_start_time("n/a") is None


def test_registry_healthy():
    step = converge.RegistryHealthy(URL, "journalctl -u docker-registry")
    assert step.plan(facts(health="")) == []
    down = {"health": FactResult(1, f"curl: (7) Failed to connect\n{converge.LOG_MARK}\nL1\n")}
    (change,) = step.plan(down)
    assert change.precondition and "Failed to connect" in change.summary and "L1" in change.diff


SPEC = converge.ContainerSpec(address="192.168.10.2", port=5001)
GOOD = {"Config": {"Image": "registry:2", "Env": ["REGISTRY_STORAGE_DELETE_ENABLED=true"]},
        "HostConfig": {"RestartPolicy": {"Name": "always"},
                       "PortBindings": {"5000/tcp": [{"HostIp": "192.168.10.2",
                                                      "HostPort": "5001"}]}},
        "Mounts": [{"Type": "volume", "Name": "greenroom-registry",
                    "Destination": "/var/lib/registry"}],
        "State": {"Running": True}}


def with_(path, value):
    import copy

    info = copy.deepcopy(GOOD)
    node = info
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return info


@pytest.mark.parametrize("inspect, expect", [
    pytest.param(None, "create", id="missing-created"),
    pytest.param(GOOD, None, id="as-wanted-no-op"),
    pytest.param(with_(("State", "Running"), False), "start", id="stopped-started"),
    pytest.param(with_(("HostConfig", "RestartPolicy", "Name"), "no"), "restart policy",
                 id="restart-policy"),
    pytest.param(with_(("HostConfig", "PortBindings"), {"5000/tcp": [
        {"HostIp": "", "HostPort": "5001"}]}), "published on *:5001", id="all-addresses"),
    pytest.param(with_(("Config", "Image"), "registry:2.7"), "image", id="other-image"),
    pytest.param(with_(("Mounts",), []), "volume", id="no-volume"),
])
def test_registry_container_planner(inspect, expect):
    step = converge.RegistryContainer(SPEC)
    found = (FactResult(1, "Error: No such container") if inspect is None
             else FactResult(0, json.dumps([inspect])))
    changes = step.plan({"docker": FactResult(0, "/usr/bin/docker"), "inspect": found})
    if expect is None:
        assert changes == []
        return
    assert len(changes) == 1 and expect in changes[0].summary
    command = changes[0].actions[0].command
    if expect not in ("start",):
        assert "docker run -d --name greenroom-registry --restart=always" in command
        assert "-p 192.168.10.2:5001:5000" in command
        assert "-v greenroom-registry:/var/lib/registry" in command
    if inspect is not None and expect != "start":
        assert command.startswith("docker rm -f greenroom-registry && ")


def test_registry_container_needs_docker():
    with pytest.raises(StepFailed, match="install Docker"):
        converge.RegistryContainer(SPEC).plan({"docker": FactResult(1, ""),
                                               "inspect": FactResult(1, "")})


def test_config_template_is_what_distribution_reads():
    from runbooks.core.templates import render

    data = yaml.safe_load(render("registry/config.yml.j2", address="192.168.10.2", port=5001,
                                 rootdirectory="/var/lib/docker-registry"))
    assert data["http"]["addr"] == "192.168.10.2:5001"
    assert data["storage"]["filesystem"]["rootdirectory"] == "/var/lib/docker-registry"
    assert data["storage"]["delete"]["enabled"] is True
    assert data["health"]["storagedriver"]["enabled"] is True
    assert "auth" not in data  # an anonymous registry, as in the demo


# -- registry.trust plan ---------------------------------------------------------------------

class FakeCtx:
    """A HostContext stand-in: gather answers from a table, logs are kept."""

    def __init__(self, found, roles=("pi",), options=None):
        from runbooks.core.inventory import load_inventory

        self.inventory = load_inventory("hosts/lab.yaml")
        self.host = SimpleNamespace(name="rp0", roles=roles)
        self.options = options or {}
        self.check = False
        self.found = found
        self.logs: list[str] = []

    def gather(self, commands):
        return {k: FactResult(0 if k in self.found else 1, "") for k in commands}

    def log(self, text):
        self.logs.append(text)


def certs(folder):
    """The local registry's hosts.toml and one per upstream registry, under `folder`."""
    return [f"{folder}/{name}/hosts.toml" for name in (EP, *UPSTREAMS)]


@pytest.mark.parametrize("found, roles, option, files, handlers", [
    pytest.param({"containerd"}, ("pi",), None,
                 [containerd.CONFIG, *certs(containerd.CERTS_DIR)],
                 ["restart containerd"], id="containerd"),
    pytest.param(set(), ("k3s-agent",), None, [trust.K3S_REGISTRIES], ["restart k3s"],
                 id="k3s-by-role"),
    pytest.param({"microk8s", "docker"}, ("microk8s",), None,
                 [*certs(trust.MICROK8S_CERTS_DIR), trust.DOCKER_DAEMON_JSON],
                 ["restart microk8s", "restart docker"], id="microk8s-and-docker"),
    pytest.param(set(), ("pi",), "docker", [trust.DOCKER_DAEMON_JSON], ["restart docker"],
                 id="named-with-option"),
    pytest.param(set(), ("pi",), None, [], [], id="nothing-found"),
])
def test_trust_plan(found, roles, option, files, handlers):
    ctx = FakeCtx(found, roles, {"runtimes": option} if option else None)
    plan = converge.trust_plan(ctx)
    assert [s.path for s in plan.steps] == files
    assert [h.name for h in plan.handlers] == handlers
    plan.check_notifications()
    if not files:
        assert any("no container runtime" in line for line in ctx.logs)


def test_trust_plan_unknown_runtime():
    with pytest.raises(StepFailed, match="unknown podman"):
        converge.trust_plan(FakeCtx(set(), options={"runtimes": "containerd,podman"}))


def test_hosts_toml_only_restarts_where_read_at_start():
    plan = converge.trust_plan(FakeCtx({"containerd"}))
    config, *hosts = plan.steps
    assert config.notify == ("restart containerd",)
    assert len(hosts) == 1 + len(UPSTREAMS)
    assert all(h.notify == () for h in hosts)  # containerd reads certs.d at every pull



# -- registry.trust --images: a user's own list ----------------------------------------------

USER_LIST = "nvcr.io/nvidia/k8s-device-plugin:v0.14.1\ndocker.io/library/nginx:1.25\n"


@pytest.mark.parametrize("found, roles, folder", [
    pytest.param({"containerd"}, ("pi",), containerd.CERTS_DIR, id="containerd"),
    pytest.param({"microk8s"}, ("microk8s",), trust.MICROK8S_CERTS_DIR, id="microk8s"),
])
def test_trust_images_adds_a_mirror_entry_per_upstream_of_the_users_list(
        tmp_path, found, roles, folder):
    listing = tmp_path / "mine.txt"
    listing.write_text(USER_LIST)
    ctx = FakeCtx(found, roles, {"images": str(listing)})
    paths = [s.path for s in converge.trust_plan(ctx).steps]
    assert [p for p in paths if p.startswith(folder)] == \
        [f"{folder}/{name}/hosts.toml" for name in (EP, *sorted({*UPSTREAMS, "nvcr.io"}))]
    assert any("mirror entries for: " in line and "nvcr.io" in line for line in ctx.logs)


def test_trust_images_k3s_registries_name_the_users_registries(tmp_path):
    listing = tmp_path / "mine.yaml"
    listing.write_text("images:\n  - ref: nvcr.io/nvidia/k8s-device-plugin:v0.14.1\n"
                       "  - gcr.io/distroless/static:nonroot\n")
    (step,) = converge.trust_plan(FakeCtx(set(), ("k3s-agent",), {"images": str(listing)})).steps
    mirrors = yaml.safe_load(step.transform(None))["mirrors"]
    assert sorted(mirrors) == sorted({EP, *UPSTREAMS, "nvcr.io", "gcr.io"})
    assert all(m["endpoint"] == [URL] for m in mirrors.values())


@pytest.mark.parametrize("text, words", [
    pytest.param("docker.io/foo/bar:1\nquay.io/foo/bar:1\n",
                 ["docker.io/foo/bar:1", "quay.io/foo/bar:1", "foo/bar:1"], id="one-local-name"),
    pytest.param("nvcr.io/Bad:1\n", ["nvcr.io/Bad:1", "lower-case"], id="bad-reference"),
    pytest.param(None, ["cannot read image list"], id="missing-file"),
])
def test_trust_images_bad_list_refused_before_any_step(tmp_path, text, words):
    listing = tmp_path / "mine.txt"
    if text is not None:
        listing.write_text(text)
    with pytest.raises(StepFailed) as caught:
        converge.trust_plan(FakeCtx({"containerd"}, options={"images": str(listing)}))
    assert str(listing) in str(caught.value) and "--images" in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_trust_without_images_writes_the_lists_entries_only():
    paths = [s.path for s in converge.trust_plan(FakeCtx({"containerd"})).steps]
    assert paths[1:] == certs(containerd.CERTS_DIR)


# -- registry.check --------------------------------------------------------------------------

@pytest.mark.parametrize("v2, catalog, healthy, repos", [
    pytest.param((0, "{}"), (0, '{"repositories":["pause","coredns/coredns"]}'), True,
                 ("pause", "coredns/coredns"), id="healthy"),
    pytest.param((0, "{}"), (0, '{"repositories":[]}'), True, (), id="empty-catalog"),
    pytest.param((7, "curl: (7) Failed to connect"), (7, ""), False, (), id="down"),
    pytest.param((0, "{}"), (0, "<html>"), False, (), id="catalog-not-json"),
])
def test_health_from(v2, catalog, healthy, repos):
    health = health_from(URL, v2, catalog)
    assert health.healthy is healthy
    assert health.repositories == repos
    assert ("healthy" if healthy else "NOT healthy") in health.text()


def test_parse_catalog_rejects_other_json():
    with pytest.raises(ValueError, match="repositories"):
        parse_catalog('{"errors": []}')


def test_task_help_names_every_runtime_trust_knows():
    from runbooks.registry.service_tasks import RUNTIME_NAMES

    assert tuple(RUNTIME_NAMES) == tuple(trust.RUNTIMES)
