"""containerd's config for Kubernetes, merged into the existing config.toml.

containerd 1.x reads config version 2, containerd 2.x version 3 (and still version 2,
migrated at load time). The wanted settings, by layout:

- version 2: `[plugins."io.containerd.grpc.v1.cri"]` sandbox_image,
  `.containerd.runtimes.runc` runtime_type + `.options` SystemdCgroup = true,
  `.registry` config_path = "/etc/containerd/certs.d"
- version 3: `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]` (same keys),
  `[plugins."io.containerd.cri.v1.images"]` `.pinned_images` sandbox and `.registry` config_path

Every other setting of the file is kept (Debian's packaged config sets the CNI bin_dir, for
instance). A file that already has the wanted values is left byte for byte as it is; one that
needs a change is rewritten from its parsed data (its comments are lost; the engine keeps the
old file under /var/backups/greenroom/).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from typing import Any

from runbooks.core.facts import FactResult
from runbooks.core.steps.base import Change, Step, StepFailed
from runbooks.core.steps.files import Edit
from runbooks.pi_prep.facts import parse_containerd_version
from runbooks.pi_prep.toml_write import dumps

CONFIG = "/etc/containerd/config.toml"
CERTS_DIR = "/etc/containerd/certs.d"
HEADER = "# containerd config; Kubernetes settings kept by greenroom pi-prep\n"
_V2 = ("plugins", "io.containerd.grpc.v1.cri")
_V3_RUNTIME = ("plugins", "io.containerd.cri.v1.runtime")
_V3_IMAGES = ("plugins", "io.containerd.cri.v1.images")
_RUNC = ("containerd", "runtimes", "runc")


def config_version_for(major: int) -> int:
    """The config version containerd `major`.x writes: 2 for 1.x, 3 for 2.x and later."""
    return 2 if major < 2 else 3


def wanted_settings(version: int, sandbox_image: str | None) -> list[tuple[tuple[str, ...], Any]]:
    """(key path, value) pairs the config must hold, for config version 2 or 3."""
    sandbox_key: tuple[str, ...]
    if version == 2:
        runtime, images, sandbox_key = _V2, _V2, ("sandbox_image",)
    else:
        runtime, images, sandbox_key = _V3_RUNTIME, _V3_IMAGES, ("pinned_images", "sandbox")
    wanted: list[tuple[tuple[str, ...], Any]] = [
        (runtime + _RUNC + ("runtime_type",), "io.containerd.runc.v2"),
        (runtime + _RUNC + ("options", "SystemdCgroup"), True),
        (images + ("registry", "config_path"), CERTS_DIR),
    ]
    if sandbox_image:
        wanted.append((images + sandbox_key, sandbox_image))
    return wanted


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for depth, key in enumerate(path[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            where = ".".join(path[: depth + 1])
            raise ValueError(f"{where} is a {type(child).__name__}, expected a table")
        node = child
    node[path[-1]] = value


def config_version(data: dict[str, Any], major: int) -> int:
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


def merge_containerd_config(content: str | None, major: int,
                            sandbox_image: str | None = None) -> str:
    """config.toml with the Kubernetes settings for containerd `major`.x; ValueError when the
    file cannot be merged safely (invalid TOML, an old or too new layout, registry mirrors)."""
    text = content or ""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML ({exc}); fix it or move it away, then run again") \
            from exc
    version = config_version(data, major)
    if version == 3 and major < 2:
        raise ValueError(f"it is config version 3, which needs containerd 2.x, but containerd "
                         f"{major}.x is installed: write it as version 2 or upgrade containerd")
    if version == 2:
        registry = data.get(_V2[0], {}).get(_V2[1], {}).get("registry", {})
        if isinstance(registry, dict) and registry.get("mirrors"):
            raise ValueError(
                'plugins."io.containerd.grpc.v1.cri".registry.mirrors cannot be used with '
                f"config_path: move each mirror to {CERTS_DIR}/<registry>/hosts.toml, remove "
                "the mirrors table, then run again")
    merged = copy.deepcopy(data)
    merged["version"] = version
    for path, value in wanted_settings(version, sandbox_image):
        _set(merged, path, value)
    if merged == data:
        return text
    body = {"version": version, **{k: v for k, v in merged.items() if k != "version"}}
    return HEADER + dumps(body)


class ContainerdConfig(Step):
    """Ensure config.toml has the Kubernetes settings for the installed containerd.

    The containerd version is read when the step runs (after the packages step installed
    it); in check mode on a fresh board the version apt would install is used.
    """

    def __init__(self, sandbox_image: str | None, path: str = CONFIG) -> None:
        self.sandbox_image = sandbox_image
        self.path = path
        self.name = f"Ensure {path} has SystemdCgroup, config_path" + (
            " and sandbox image" if sandbox_image else "")
        self.notify = ("restart containerd",)

    def facts(self) -> Mapping[str, str]:
        return {
            "version": "containerd --version 2>/dev/null || "
                       "apt-cache policy containerd | sed -n 's/^ *Candidate: //p'",
            **self._edit(1).facts(),
        }

    def _edit(self, major: int) -> Edit:
        return Edit(self.path, lambda c: merge_containerd_config(c, major, self.sandbox_image),
                    name=self.name, notify=self.notify)

    def plan(self, facts: Mapping[str, FactResult]) -> list[Change]:
        version = parse_containerd_version(facts["version"].out)
        if version is None:
            raise StepFailed("cannot tell which containerd is installed (`containerd "
                             "--version` and `apt-cache policy containerd` said nothing); "
                             "install containerd, then run again")
        return self._edit(version[0]).plan(facts)


def registry_hosts_toml(endpoint: str) -> str:
    """certs.d/<endpoint>/hosts.toml: pull from the lab's plain-HTTP registry."""
    from runbooks.core.templates import render

    return render("pi_prep/hosts.toml.j2", endpoint=endpoint)
