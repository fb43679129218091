"""containerd's configuration: the one merger of config.toml and the one hosts.toml writer.

Every runbook that touches containerd goes through here: pi-prep (Kubernetes settings and
the registry's `config_path`), registry.trust (`config_path` and `certs.d/<host:port>/
hosts.toml`), and the cluster runbooks next. So each file has one writer in code.

config.toml: containerd 1.x reads config version 2, containerd 2.x version 3 (and still 2).
The settings we own, by layout:

- version 2: `[plugins."io.containerd.grpc.v1.cri"]` sandbox_image,
  `.containerd.runtimes.runc` runtime_type + `.options` SystemdCgroup = true,
  `.registry` config_path listing /etc/containerd/certs.d
- version 3: `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]` (same keys),
  `[plugins."io.containerd.cri.v1.images"]` `.pinned_images` sandbox and `.registry`
  config_path

The file is edited with tomlkit, so the user's comments, order and every other key stay; a
`config_path` of the user's own is kept after ours (containerd splits it on ':'). A file that
already holds the wanted values is returned byte for byte. A file we cannot merge safely
(invalid TOML, config version 1, registry `mirrors`) raises ValueError saying what to do.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from typing import Any

from runbooks.common.facts import CONTAINERD_VERSION
from runbooks.core.facts import FactResult
from runbooks.core.steps import Change, Edit, Step, StepFailed

CONFIG = "/etc/containerd/config.toml"
CERTS_DIR = "/etc/containerd/certs.d"
HEADER = ("# containerd config: greenroom keeps its Kubernetes settings and registry "
          "config_path here; every other setting and comment is yours and is kept.\n")
# Host-side validation when the host can do it (the content is also parsed locally first).
TOML_CHECK = ("if python3 -c 'import tomllib' 2>/dev/null; then python3 -c 'import sys, "
              "tomllib; tomllib.load(open(sys.argv[1], \"rb\"))' {}; fi")
CAPABILITIES = ("pull", "resolve")
_V2 = ("plugins", "io.containerd.grpc.v1.cri")
_V3_RUNTIME = ("plugins", "io.containerd.cri.v1.runtime")
_V3_IMAGES = ("plugins", "io.containerd.cri.v1.images")
_RUNC = ("containerd", "runtimes", "runc")


def config_version_for(major: int) -> int:
    """The config version containerd `major`.x writes: 2 for 1.x, 3 for 2.x and later."""
    return 2 if major < 2 else 3


def config_version(data: Mapping[str, Any], major: int) -> int:
    """The config version of a parsed config.toml (2 or 3), or the one to write for
    containerd `major`.x when it has none yet; ValueError for a layout we cannot merge."""
    version = data.get("version")
    if version is None and "plugins" in data:
        raise ValueError(
            "it has no `version` line, so containerd reads it as config version 1 (a layout "
            "from before containerd 1.3): regenerate it with `containerd config default`, "
            "re-apply your own changes, then run again")
    if version is None:
        return config_version_for(major)
    if version not in (2, 3):
        raise ValueError(f"config version {version!r} is not supported; use 2 or 3")
    return int(version)


def registry_table(version: int) -> tuple[str, ...]:
    """The table that holds `config_path` in config version `version`."""
    return (*(_V2 if version == 2 else _V3_IMAGES), "registry")


def wanted_settings(version: int, *, kubernetes: bool, sandbox_image: str | None,
                    config_path: str) -> list[tuple[tuple[str, ...], Any]]:
    """(key path, value) pairs the config must hold, for config version 2 or 3."""
    wanted: list[tuple[tuple[str, ...], Any]] = [
        ((*registry_table(version), "config_path"), config_path)]
    if not kubernetes:
        return wanted
    runtime, images = (_V2, _V2) if version == 2 else (_V3_RUNTIME, _V3_IMAGES)
    sandbox_key = ("sandbox_image",) if version == 2 else ("pinned_images", "sandbox")
    wanted += [
        ((*runtime, *_RUNC, "runtime_type"), "io.containerd.runc.v2"),
        ((*runtime, *_RUNC, "options", "SystemdCgroup"), True),
    ]
    if sandbox_image:
        wanted.append(((*images, *sandbox_key), sandbox_image))
    return wanted


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _parse(text: str, what: str = "it") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{what} is not valid TOML ({exc}); fix it or move it away, then "
                         "run again") from None


def _set_plain(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for depth, key in enumerate(path[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise ValueError(f"{where} is a {type(child).__name__}, expected a table; fix it "
                             "by hand")
        node = child
    node[path[-1]] = value


def _set_toml(doc: Any, path: tuple[str, ...], value: Any) -> None:
    """Set `path` in a tomlkit document, creating the tables on the way (without headers of
    their own when they only hold tables)."""
    import tomlkit

    node = doc
    for key in path[:-1]:
        if key not in node:
            node[key] = tomlkit.table(is_super_table=True)
        node = node[key]
    node[path[-1]] = value


def _edit(text: str, header: str, changes: list[tuple[tuple[str, ...], Any]],
          wanted: dict[str, Any]) -> str:
    """`text` with `changes` applied by tomlkit (comments kept); checked to parse to
    `wanted`, else ValueError."""
    import tomlkit

    try:
        doc = tomlkit.parse(text)
        if not text.strip():
            doc = tomlkit.parse(header)
        for path, value in changes:
            _set_toml(doc, path, value)
        merged = tomlkit.dumps(doc)
    except Exception as exc:  # noqa: BLE001 - tomlkit raises many kinds for odd layouts
        raise ValueError(f"cannot merge into its layout ({type(exc).__name__}: {exc}); set "
                         "the values by hand, then run again") from None
    if _parse(merged, "the merged file") != wanted:
        raise ValueError("cannot merge into its layout (an inline table or dotted key holds "
                         "the settings); set them by hand, then run again")
    return merged


def merge_containerd_config(content: str | None, major: int, *, kubernetes: bool = True,
                            sandbox_image: str | None = None) -> str:
    """config.toml for containerd `major`.x whose registry config_path lists certs.d, plus
    (`kubernetes`) runc with SystemdCgroup and the sandbox image; ValueError when the file
    cannot be merged safely."""
    text = content or ""
    data = _parse(text)
    version = config_version(data, major)
    if version == 3 and major < 2:
        raise ValueError(f"it is config version 3, which needs containerd 2.x, but containerd "
                         f"{major}.x is installed: write it as version 2 or upgrade containerd")
    table = registry_table(version)
    if _dig(data, (*table, "mirrors")):
        raise ValueError(
            f"{'.'.join(table)}.mirrors cannot be used together with config_path: move each "
            f"mirror to {CERTS_DIR}/<registry>/hosts.toml, remove the mirrors table, then "
            "run again")
    current = _dig(data, (*table, "config_path"))
    if current is not None and not isinstance(current, str):
        raise ValueError(f"{'.'.join(table)}.config_path is {current!r}; expected a string")
    paths = [p for p in (current or "").split(":") if p]
    config_path = ":".join([CERTS_DIR, *paths]) if CERTS_DIR not in paths else current
    changes: list[tuple[tuple[str, ...], Any]] = []
    wanted = copy.deepcopy(data)
    if "version" not in data:
        changes.append((("version",), version))
        wanted["version"] = version
    for path, value in wanted_settings(version, kubernetes=kubernetes,
                                       sandbox_image=sandbox_image,
                                       config_path=str(config_path)):
        if _dig(data, path) != value:
            changes.append((path, value))
            _set_plain(wanted, path, value)
    if not changes:
        return text
    return _edit(text, HEADER, changes, wanted)


class ContainerdConfig(Step):
    """Ensure config.toml has what the installed containerd needs from us.

    `kubernetes`: also runc with SystemdCgroup (and `sandbox_image` when given); without it
    only the registry's config_path (registry.trust). The containerd version is read when the
    step runs (after a packages step installed it); on a board without containerd yet (check
    mode) the version apt would install decides the layout.
    """

    def __init__(self, *, kubernetes: bool, sandbox_image: str | None = None,
                 path: str = CONFIG) -> None:
        self.kubernetes, self.sandbox_image, self.path = kubernetes, sandbox_image, path
        if kubernetes:
            self.name = f"Ensure {path} has SystemdCgroup, config_path" + (
                " and sandbox image" if sandbox_image else "")
        else:
            self.name = f"Ensure {path} reads registry hosts from {CERTS_DIR}"
        self.notify = ("restart containerd",)

    def facts(self) -> Mapping[str, str]:
        return {"version": CONTAINERD_VERSION.command, **self._edit(1).facts()}

    def _edit(self, major: int) -> Edit:
        def merge(current: str | None) -> str:
            return merge_containerd_config(current, major, kubernetes=self.kubernetes,
                                           sandbox_image=self.sandbox_image)

        return Edit(self.path, merge, name=self.name, validate=TOML_CHECK, notify=self.notify)

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        version = CONTAINERD_VERSION.read(facts, "version")
        if version is None and not self.kubernetes:
            version = (1, 0)  # only config_path: a file without `version` gets version 2
        if version is None:
            raise StepFailed("cannot tell which containerd is installed (`containerd "
                             "--version` and `apt-cache policy containerd` said nothing); "
                             "install containerd, then run again")
        return self._edit(version[0]).plan(facts)


# -- certs.d/<host:port>/hosts.toml ----------------------------------------------------------

def hosts_toml(endpoint: str, upstream: str | None = None) -> str:
    """A fresh certs.d/<endpoint>/hosts.toml: pull and resolve over plain HTTP; with
    `upstream` (e.g. docker.io), certs.d/<upstream>/hosts.toml, the mirror entry that sends
    that registry's pulls to the local one (its `server` too: nodes pull only from the site's
    registry)."""
    from runbooks.core.templates import render

    return render("common/hosts.toml.j2", endpoint=endpoint, upstream=upstream)


def merge_hosts_toml(content: str | None, endpoint: str, upstream: str | None = None) -> str:
    """hosts.toml that sends pulls (of `endpoint`, or of `upstream` when given) to
    http://endpoint with pull and resolve; other hosts, keys and comments are kept, and a
    file that says so already is returned byte for byte."""
    url = f"http://{endpoint}"
    if content is None or not content.strip():
        return hosts_toml(endpoint, upstream)
    data = _parse(content)
    entry = _dig(data, ("host", url))
    if entry is not None and not isinstance(entry, dict):
        raise ValueError(f'host."{url}" is a {type(entry).__name__}, expected a table')
    have = list((entry or {}).get("capabilities") or [])
    changes: list[tuple[tuple[str, ...], Any]] = []
    wanted = copy.deepcopy(data)
    if data.get("server") != url:
        changes.append((("server",), url))
        wanted["server"] = url
    if not set(CAPABILITIES) <= set(have):
        value = have + [c for c in CAPABILITIES if c not in have]
        changes.append((("host", url, "capabilities"), value))
        _set_plain(wanted, ("host", url, "capabilities"), value)
    if not changes:
        return content
    return _edit(content, "", changes, wanted)


def hosts_toml_step(certs_dir: str, endpoint: str, notify: tuple[str, ...] = (),
                    upstream: str | None = None) -> Edit:
    """The step that writes `certs_dir`/<endpoint>/hosts.toml (containerd's or microk8s'),
    or `certs_dir`/<upstream>/hosts.toml, the mirror entry of `upstream`."""
    return Edit(f"{certs_dir}/{upstream or endpoint}/hosts.toml",
                lambda c: merge_hosts_toml(c, endpoint, upstream),
                validate=TOML_CHECK, notify=notify)


def registry_hosts(endpoint: str, upstreams: tuple[str, ...] | None = None) \
        -> dict[str, str]:
    """certs.d folder name -> fresh hosts.toml: the local registry's own entry, then one
    mirror entry per upstream registry (default: `common.registry.mirrored_upstreams()`)."""
    if upstreams is None:
        from runbooks.common.registry import mirrored_upstreams

        upstreams = mirrored_upstreams()
    files = {endpoint: hosts_toml(endpoint)}
    for name in upstreams:
        if name != endpoint:
            files[name] = hosts_toml(endpoint, name)
    return files


def registry_hosts_steps(certs_dir: str, endpoint: str, notify: tuple[str, ...] = (),
                         upstreams: tuple[str, ...] | None = None) -> list[Edit]:
    """The steps that write every hosts.toml of `registry_hosts` under `certs_dir`."""
    return [hosts_toml_step(certs_dir, endpoint, notify, None if name == endpoint else name)
            for name in registry_hosts(endpoint, upstreams)]
