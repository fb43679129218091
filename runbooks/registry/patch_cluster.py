"""Rewrite a Cluster API manifest so its nodes pull everything from the site's local registry.

What seed 000 does by hand to its `cluster.yaml`, for the inventory's registry and VIP:

- KubeadmControlPlane (and KubeadmControlPlaneTemplate): containerd's config and its
  `certs.d/<registry>/hosts.toml` files, `imageRepository` for kubeadm, etcd and CoreDNS,
  kubelet's `pod-infra-container-image` (Kubernetes before 1.27), a `systemctl restart
  containerd` before kubeadm runs, and the kube-vip static pod pulled from the local
  registry with the VIP (the seed's `ctr run ... manifest pod` command, or a kube-vip
  manifest under `files:`);
- KubeadmConfigTemplate (and KubeadmConfig): containerd's files and the kubelet argument;
- ConfigMaps (the add-ons a ClusterResourceSet applies, such as flannel): every `image:`;
- the infrastructure cluster's `controlPlaneEndpoint.host`: the VIP.

containerd's config is written for the node image's containerd: `config_path` and a
`hosts.toml` per registry for 1.5 and later (version 2, or version 3 for 2.x), the seed's
`registry.mirrors` form only for older ones. Every upstream registry the images come from
gets an entry that sends its pulls to the local registry, so images keep their upstream
names and still come from the site.

The manifest is split into its documents; a document that needs no change is kept byte for
byte, a changed one is re-emitted by ruamel.yaml's round-trip mode (comments, key order and
quoting kept). Patching a patched file changes nothing. Documents of kinds this does not
know are kept as they are and named in the report.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

from .images import ImageListError, ImageSpec, parse_ref

CERTS_DIR = "/etc/containerd/certs.d"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
KUBE_VIP_MANIFEST = "/etc/kubernetes/manifests/kube-vip.yaml"
KUBE_VIP_REPO = "ghcr.io/kube-vip/kube-vip"
RESTART_CONTAINERD = "systemctl restart containerd"
CP_GROUP = "controlplane.cluster.x-k8s.io"
BOOTSTRAP_GROUP = "bootstrap.cluster.x-k8s.io"
INFRA_GROUP = "infrastructure.cluster.x-k8s.io"
# Kinds that need nothing from us (named as such in the report).
PASSIVE_KINDS = {"Cluster", "MachineDeployment", "MachineSet", "MachineHealthCheck",
                 "ClusterResourceSet", "ClusterClass", "Secret", "Namespace"}
# kubeadm's default pause image per Kubernetes minor (kubeadm's constants.PauseVersion).
KUBEADM_PAUSE = {21: "3.4.1", 22: "3.5", 23: "3.6", 24: "3.7", 25: "3.8", 26: "3.9",
                 27: "3.9", 28: "3.9", 29: "3.9", 30: "3.9", 31: "3.10", 32: "3.10",
                 33: "3.10", 34: "3.10"}
_IMAGE_LINE = re.compile(r"""^(?P<lead>\s*(?:-\s+)?image:\s*)(?P<q>["']?)"""
                         r"""(?P<ref>[^\s"'#]+)(?P=q)""")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


class PatchError(ValueError):
    """The manifest or the settings cannot be used; the message says what and where."""


@dataclass
class Settings:
    """What to patch the manifest for."""

    endpoint: str                          # the local registry, HOST:PORT (plain HTTP)
    vip: str | None                        # the control plane's VIP (kube-vip's address)
    containerd: str | None = None          # node image's containerd version, e.g. 1.7
    pause: str | None = None               # pause tag (default: kubeadm's for the version)
    images: list[ImageSpec] = field(default_factory=list)   # the site's image list


@dataclass
class Report:
    """What a patch did, per document."""

    changed: list[str] = field(default_factory=list)      # "doc 3 KubeadmControlPlane x: ..."
    unchanged: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    containerd_form: str = ""


# -- documents ---------------------------------------------------------------------------

def split_documents(text: str) -> list[str]:
    """The text cut before every `---` line; joining the pieces gives the text back."""
    chunks: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if re.match(r"^---(\s|$)", line) and current:
            chunks.append("".join(current))
            current = []
        current.append(line)
    if current:
        chunks.append("".join(current))
    return chunks


def _is_blank(chunk: str) -> bool:
    return all(not ln.strip() or ln.lstrip().startswith("#") or ln.strip() == "---"
               for ln in chunk.splitlines())


def _yaml(chunk: str) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096                                   # never re-wrap long commands
    key = re.search(r"^( *)[^\s#-][^\n]*:\s*\n\1( *)- ", chunk, re.M)
    if key and key.group(2):                            # "- " indented under its key
        yaml.indent(mapping=2, sequence=len(key.group(2)) + 2, offset=len(key.group(2)))
    else:
        yaml.indent(mapping=2, sequence=2, offset=0)
    return yaml


def _dump(yaml: Any, data: Any, chunk: str) -> str:
    out = io.StringIO()
    yaml.explicit_start = chunk.lstrip().startswith("---")
    yaml.dump(data, out)
    return out.getvalue()


# -- small helpers on ruamel's maps ------------------------------------------------------

def _map(parent: Any, key: str) -> Any:
    """parent[key] as a block-style mapping, created when missing."""
    from ruamel.yaml.comments import CommentedMap

    child = parent.get(key)
    if child is None:
        child = parent[key] = CommentedMap()
    if not isinstance(child, dict):
        raise PatchError(f"{key} is a {type(child).__name__}, expected a mapping")
    if hasattr(child, "fa"):
        child.fa.set_block_style()
    return child


def _seq(parent: Any, key: str) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    child = parent.get(key)
    if child is None:
        child = parent[key] = CommentedSeq()
    if not isinstance(child, list):
        raise PatchError(f"{key} is a {type(child).__name__}, expected a list")
    if hasattr(child, "fa"):
        child.fa.set_block_style()
    return child


def _set(parent: Any, key: str, value: Any, what: str, changes: list[str]) -> None:
    if parent.get(key) != value:
        parent[key] = value
        changes.append(what)


def _literal(text: str) -> Any:
    from ruamel.yaml.scalarstring import LiteralScalarString

    return LiteralScalarString(text)


def _version(text: Any) -> tuple[int, int] | None:
    m = _VERSION.match(str(text or ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


# -- the patcher -------------------------------------------------------------------------

class Patcher:
    """Patches documents for one set of settings."""

    def __init__(self, settings: Settings, report: Report):
        self.s, self.report = settings, report
        self.by_source = {str(spec.source): spec for spec in settings.images}

    def warn(self, text: str) -> None:
        if text not in self.report.warnings:
            self.report.warnings.append(text)

    # image names ------------------------------------------------------------------------
    def local(self, ref_text: str, where: str | None) -> str:
        """The local registry's name for an upstream image reference (a warning naming
        `where` when the site's image list lacks it; None: no warning)."""
        if ref_text.startswith(self.s.endpoint + "/"):
            return ref_text
        try:
            ref = parse_ref(ref_text)
        except ImageListError:
            return ref_text                             # a template variable, not a ref
        spec = self.by_source.get(str(ref))
        if spec is None and where is not None:
            self.warn(
                f"{where}: {ref} is not in the site's image list (add it to "
                "files/registry/images.yaml or the runbook's images.d file, or the nodes "
                "cannot pull it)")
        if spec is None:
            name = f"{ref.repo}:{ref.tag}" if ref.tag else f"{ref.repo}@{ref.digest}"
        else:
            name = spec.target
        return f"{self.s.endpoint}/{name}"

    def rewrite_images(self, text: str, where: str) -> str:
        """Every `image:` line of an embedded manifest, pointed at the local registry."""
        out = []
        for line in text.splitlines(keepends=True):
            m = _IMAGE_LINE.match(line)
            if m and "$" not in m.group("ref"):
                new = self.local(m.group("ref"), where)
                line = line[:m.start("ref")] + new + line[m.end("ref"):]
            out.append(line)
        return "".join(out)

    # containerd -------------------------------------------------------------------------
    def containerd_form(self, k8s: tuple[int, int] | None) -> tuple[str, int]:
        """('hosts' or 'mirrors', config version) for the node image's containerd."""
        version = _version(self.s.containerd)
        if self.s.containerd and version is None:
            raise PatchError(f"--containerd {self.s.containerd!r}: expected a version like 1.7")
        if version is None:                             # not given: judge by Kubernetes
            if k8s is not None and k8s < (1, 24):
                self.report.containerd_form = (
                    f"registry.mirrors (Kubernetes {k8s[0]}.{k8s[1]} node images have "
                    "containerd 1.x, which all read it; pass --containerd 1.5 or later for "
                    "hosts.toml)")
                return "mirrors", 2
            self.report.containerd_form = ("hosts.toml config_path, config version 2 (read by "
                                           "containerd 1.5 and later, 2.x included)")
            return "hosts", 2
        if version < (1, 5):
            self.report.containerd_form = f"registry.mirrors (containerd {self.s.containerd})"
            return "mirrors", 2
        config = 2 if version[0] < 2 else 3
        self.report.containerd_form = (f"hosts.toml config_path, config version {config} "
                                       f"(containerd {self.s.containerd})")
        return "hosts", config

    def registries(self) -> list[str]:
        """Upstream registries the nodes pull through the local one (each gets an entry)."""
        hosts = {spec.source.host for spec in self.s.images}
        return sorted(hosts - {self.s.endpoint})

    def containerd_files(self, form: str, config: int, sandbox: str) -> list[tuple[str, str]]:
        """(path, content) of the files containerd needs on the node."""
        ep = self.s.endpoint
        if form == "mirrors":
            lines = ["# Written by greenroom registry.patch-cluster: pulls go to the site's "
                     "registry.", "version = 2", "", '[plugins."io.containerd.grpc.v1.cri"]',
                     f'  sandbox_image = "{sandbox}"',
                     '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
                     '    runtime_type = "io.containerd.runc.v2"',
                     '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
                     "      SystemdCgroup = true",
                     '  [plugins."io.containerd.grpc.v1.cri".registry.mirrors]']
            for name in [ep, *self.registries()]:
                lines += [f'    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{name}"]',
                          f'      endpoint = ["http://{ep}"]']
            lines += ['  [plugins."io.containerd.grpc.v1.cri".registry.configs]',
                      f'    [plugins."io.containerd.grpc.v1.cri".registry.configs."{ep}".tls]',
                      "      insecure_skip_verify = true"]
            return [(CONTAINERD_CONFIG, "\n".join(lines) + "\n")]
        from runbooks.common.containerd import hosts_toml, merge_containerd_config

        body = merge_containerd_config(None, 1 if config == 2 else 2, sandbox_image=sandbox)
        body = "# Written by greenroom registry.patch-cluster: pulls go to the site's " \
               "registry.\n" + body.split("\n", 1)[1]
        files = [(CONTAINERD_CONFIG, body)]
        for name in [ep, *self.registries()]:
            what = ("the site's local image registry" if name == ep
                    else f"pulls of {name} images, served by the site's registry {ep}")
            text = hosts_toml(ep)
            text = (f"# {name}: {what} (plain HTTP), written by greenroom "
                    "registry.patch-cluster.\n" + text.split("\n", 1)[1])
            files.append((f"{CERTS_DIR}/{name}/hosts.toml", text))
        return files

    def put_files(self, spec: Any, files: list[tuple[str, str]], changes: list[str]) -> None:
        from ruamel.yaml.comments import CommentedMap

        entries = _seq(spec, "files")
        for path, content in files:
            entry = next((e for e in entries if isinstance(e, dict) and e.get("path") == path),
                         None)
            if entry is None:
                entry = CommentedMap([("path", path), ("owner", "root:root"),
                                      ("permissions", "0644"), ("content", _literal(content))])
                entries.append(entry)
                changes.append(f"files {path} added")
            elif str(entry.get("content")) != content:
                entry["content"] = _literal(content)
                changes.append(f"files {path} rewritten")

    # kubeadm ----------------------------------------------------------------------------
    def pause_image(self, k8s: tuple[int, int] | None) -> str:
        tag = self.s.pause
        if not tag:
            minor = k8s[1] if k8s and k8s[0] == 1 else None
            if minor is None or minor < min(KUBEADM_PAUSE):
                tag = KUBEADM_PAUSE[min(KUBEADM_PAUSE)]
            else:
                tag = KUBEADM_PAUSE.get(minor, KUBEADM_PAUSE[max(KUBEADM_PAUSE)])
        return self.local(f"registry.k8s.io/pause:{tag}", "the sandbox (pause) image")

    def kubelet_arg(self, registration: Any, value: str, what: str,
                    changes: list[str]) -> None:
        """pod-infra-container-image in kubeletExtraArgs (a mapping, or v1beta2's list)."""
        from ruamel.yaml.comments import CommentedMap

        name = "pod-infra-container-image"
        args = registration.get("kubeletExtraArgs")
        if isinstance(args, list):
            item = next((a for a in args if isinstance(a, dict) and a.get("name") == name),
                        None)
            if item is None:
                args.append(CommentedMap([("name", name), ("value", value)]))
                changes.append(f"{what} {name}")
            elif item.get("value") != value:
                item["value"] = value
                changes.append(f"{what} {name}")
            return
        _set(_map(registration, "kubeletExtraArgs"), name, value, f"{what} {name}", changes)

    def node_config(self, spec: Any, k8s: tuple[int, int] | None, registrations: tuple[str, ...],
                    changes: list[str]) -> None:
        """containerd files and the kubelet's sandbox image in one kubeadm config spec."""
        form, config = self.containerd_form(k8s)
        sandbox = self.pause_image(k8s)
        self.put_files(spec, self.containerd_files(form, config, sandbox), changes)
        if k8s is None or k8s < (1, 27):
            for key in registrations:
                registration = _map(_map(spec, key), "nodeRegistration")
                self.kubelet_arg(registration, sandbox, f"{key}.nodeRegistration", changes)
        commands = _seq(spec, "preKubeadmCommands")
        if RESTART_CONTAINERD not in commands:
            commands.insert(0, RESTART_CONTAINERD)
            changes.append(f"preKubeadmCommands: {RESTART_CONTAINERD} first")

    def control_plane(self, spec: Any, k8s: tuple[int, int] | None, changes: list[str]) -> None:
        """kubeadm's image repositories and kube-vip, on top of the node config."""
        ep = self.s.endpoint
        self.node_config(spec, k8s, ("initConfiguration", "joinConfiguration"), changes)
        cluster = _map(spec, "clusterConfiguration")
        _set(cluster, "imageRepository", ep, "clusterConfiguration.imageRepository", changes)
        etcd = _map(cluster, "etcd")
        if etcd.get("external") is None:
            _set(_map(etcd, "local"), "imageRepository", ep,
                 "clusterConfiguration.etcd.local.imageRepository", changes)
        _set(_map(cluster, "dns"), "imageRepository", self.coredns_repository(),
             "clusterConfiguration.dns.imageRepository", changes)
        self.kube_vip(spec, changes)

    def coredns_repository(self) -> str:
        """kubeadm pulls `<dns.imageRepository>/coredns:<tag>` from a custom repository."""
        local = self.local("registry.k8s.io/coredns/coredns:v1.8.0", "CoreDNS")
        repo = local.rsplit(":", 1)[0]
        return repo.rsplit("/", 1)[0]

    def kube_vip(self, spec: Any, changes: list[str]) -> None:
        """The kube-vip static pod: the seed's command, or a manifest under files:."""
        vip = self.s.vip
        found = False
        for entry in spec.get("files") or []:
            path = str(entry.get("path", "")) if isinstance(entry, dict) else ""
            if path.endswith("kube-vip.yaml") and isinstance(entry.get("content"), str):
                found = True
                content = self.rewrite_images(entry["content"], f"files {path}")
                if vip:
                    content = re.sub(r"(-\s+name:\s*(?:vip_)?address\s*\n\s+value:\s*)"
                                     r"[\"']?[^\s\"']+[\"']?", rf"\g<1>{vip}", content)
                if content != entry["content"]:
                    entry["content"] = _literal(content)
                    changes.append(f"files {path}: kube-vip from the local registry"
                                   + (f", address {vip}" if vip else ""))
        commands = _seq(spec, "preKubeadmCommands")
        for i, command in enumerate(list(commands)):
            if isinstance(command, str) and "kube-vip" in command and "manifest pod" in command:
                found = True
                new = self.kube_vip_command(command)
                if new != command:
                    commands[i] = new
                    changes.append("preKubeadmCommands: kube-vip from the local registry"
                                   + (f", address {vip}" if vip else ""))
        if not found:
            if not vip:
                self.warn("no kube-vip in the control plane and no network.vip in the "
                          "inventory: none added")
                return
            tag = next((s.source.tag for s in self.s.images
                        if f"{s.source.host}/{s.source.repo}" == KUBE_VIP_REPO and s.source.tag),
                       None)
            if tag is None:
                raise PatchError(f"the control plane has no kube-vip and the image list has no "
                                 f"{KUBE_VIP_REPO}: add it to files/registry/images.yaml")
            commands.append(self.kube_vip_command(
                f"mkdir -p /etc/kubernetes/manifests && ctr images pull {KUBE_VIP_REPO}:{tag} "
                f"&& ctr run --rm --net-host {KUBE_VIP_REPO}:{tag} vip /kube-vip manifest pod "
                "--arp --interface $(ip -4 -j route list default | jq -r .[0].dev) --address "
                f"{vip} --controlplane --leaderElection > {KUBE_VIP_MANIFEST}"))
            changes.append(f"preKubeadmCommands: kube-vip static pod for {vip} added")

    def kube_vip_command(self, command: str) -> str:
        """The seed's edit: pull over plain HTTP from the local registry, the VIP, and the
        generated manifest's image pointed at the local registry."""
        def image(m: re.Match) -> str:
            return self.local(m.group(0), "kube-vip")

        out = re.sub(rf"(?<![\w./-]){re.escape(KUBE_VIP_REPO)}:[\w.-]+", image, command)
        if self.s.vip:
            out = re.sub(r"--address[ =]\S+", f"--address {self.s.vip}", out)
        out = re.sub(r"ctr (images|i) pull (?!--plain-http)", r"ctr \1 pull --plain-http=true ",
                     out)
        local_repo = self.local(f"{KUBE_VIP_REPO}:v0", None).rsplit(":", 1)[0]
        sed = (f"sed -i 's#{KUBE_VIP_REPO}:#{local_repo}:#' {KUBE_VIP_MANIFEST}")
        if sed not in out:
            m = re.search(r">\s*(\S*kube-vip\.yaml)", out)
            target = m.group(1) if m else KUBE_VIP_MANIFEST
            out += f" && sed -i 's#{KUBE_VIP_REPO}:#{local_repo}:#' {target}"
        return out

    # documents --------------------------------------------------------------------------
    def document(self, data: Any, changes: list[str]) -> str:
        """Patch one parsed document; returns 'patched', 'passive' or 'unknown'."""
        kind = str(data.get("kind", ""))
        group = str(data.get("apiVersion", "")).split("/")[0]
        spec = data.get("spec")
        if kind == "KubeadmControlPlane" and group == CP_GROUP and isinstance(spec, dict):
            self.control_plane(_map(spec, "kubeadmConfigSpec"), _version(spec.get("version")),
                               changes)
        elif kind == "KubeadmControlPlaneTemplate" and group == CP_GROUP:
            inner = _map(_map(_map(_map(data, "spec"), "template"), "spec"), "kubeadmConfigSpec")
            self.control_plane(inner, None, changes)
        elif kind == "KubeadmConfigTemplate" and group == BOOTSTRAP_GROUP:
            inner = _map(_map(_map(data, "spec"), "template"), "spec")
            self.node_config(inner, self.k8s, ("joinConfiguration",), changes)
        elif kind == "KubeadmConfig" and group == BOOTSTRAP_GROUP:
            self.node_config(_map(data, "spec"), self.k8s, ("joinConfiguration",), changes)
        elif kind == "ConfigMap" and group == "v1":
            for key, value in (data.get("data") or {}).items():
                if isinstance(value, str) and "image:" in value:
                    name = (data.get("metadata") or {}).get("name", "?")
                    new = self.rewrite_images(value, f"ConfigMap {name} {key}")
                    if new != value:
                        data["data"][key] = _literal(new) if "\n" in new else new
                        changes.append(f"data.{key}: images from the local registry")
        elif group == INFRA_GROUP and kind.endswith("Cluster"):
            endpoint = (spec or {}).get("controlPlaneEndpoint") if isinstance(spec, dict) \
                else None
            if isinstance(endpoint, dict) and self.s.vip:
                _set(endpoint, "host", self.s.vip, f"controlPlaneEndpoint.host {self.s.vip}",
                     changes)
            return "patched" if changes else "passive"
        elif kind in PASSIVE_KINDS or group == INFRA_GROUP:
            return "passive"
        else:
            return "unknown"
        return "patched" if changes else "passive"

    k8s: tuple[int, int] | None = None


def _describe(index: int, data: Any) -> str:
    if not isinstance(data, dict):
        return f"document {index}"
    name = (data.get("metadata") or {}).get("name", "") if isinstance(data.get("metadata"),
                                                                      dict) else ""
    return f"document {index} {data.get('kind', '(no kind)')} {name}".rstrip()


def patch_manifest(text: str, settings: Settings) -> tuple[str, Report]:
    """The patched manifest and what was done; PatchError on YAML that does not parse."""
    from ruamel.yaml.error import YAMLError

    report = Report()
    patcher = Patcher(settings, report)
    chunks = split_documents(text)
    parsed: list[tuple[str, Any, Any]] = []
    line = 1
    for chunk in chunks:
        if _is_blank(chunk):
            parsed.append((chunk, None, None))
        else:
            yaml = _yaml(chunk)
            try:
                parsed.append((chunk, yaml, yaml.load(chunk)))
            except YAMLError as exc:
                raise PatchError(f"line {line + _mark_line(exc)}: not valid YAML "
                                 f"({getattr(exc, 'problem', None) or exc})") from None
        line += chunk.count("\n")
    for _, _, data in parsed:                            # the workers' Kubernetes version
        if isinstance(data, dict) and data.get("kind") == "KubeadmControlPlane":
            patcher.k8s = _version((data.get("spec") or {}).get("version"))
    out = []
    index = 0
    for chunk, yaml, data in parsed:
        if yaml is None:
            out.append(chunk)
            continue
        index += 1
        what = _describe(index, data)
        changes: list[str] = []
        verdict = patcher.document(data, changes) if isinstance(data, dict) else "unknown"
        if verdict == "unknown":
            report.unknown.append(f"{what}: not a kind patch-cluster knows; left as it is")
        if changes:
            report.changed.append(f"{what}: {'; '.join(changes)}")
            out.append(_dump(yaml, data, chunk))
        else:
            if verdict != "unknown":
                report.unchanged.append(what)
            out.append(chunk)
    return "".join(out), report


def _mark_line(exc: Exception) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return int(getattr(mark, "line", 0))


# -- the task's work: settings from the inventory, the file in and out ----------------------

def settings_for(inventory: str | None, to: str | None, vip: str | None,
                 containerd: str | None, pause: str | None, images: list[ImageSpec]) -> Settings:
    """The registry (--to, else the inventory's) and the VIP (--vip, else network.vip)."""
    from .targets import check_hostport, inventory_registry, required_inventory

    path = required_inventory(inventory)
    endpoint = check_hostport(to, "--to") if to else inventory_registry(path)
    if vip is None:
        from runbooks.core.inventory import InventoryError, load_inventory

        try:
            network_vip = load_inventory(path).network.vip
        except InventoryError as exc:
            raise PatchError(f"{exc}\n(or pass --to and --vip)") from None
        vip = str(network_vip) if network_vip else None
    return Settings(endpoint, vip, containerd, pause, images)


def patch_file(path: str, settings: Settings, out: str | None = None,
               check: bool = False) -> tuple[str, str, Report, bool]:
    """(old text, new text, report, written): patch `path` into `out` (default: in place,
    atomically, only when something changed); `check` writes nothing."""
    import os
    import tempfile
    from pathlib import Path

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PatchError(f"cannot read {path}: {exc.strerror}") from None
    try:
        new, report = patch_manifest(text, settings)
    except PatchError as exc:
        raise PatchError(f"{path}: {exc}") from None
    dest = Path(out) if out else source
    if check or out == "-":
        return text, new, report, False
    try:
        if dest.read_text(encoding="utf-8") == new:
            return text, new, report, False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(new)
    os.chmod(tmp, source.stat().st_mode & 0o777)
    os.replace(tmp, dest)
    return text, new, report, True
