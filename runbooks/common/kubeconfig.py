"""Kubeconfig on the operator's machine: a cluster's admin kubeconfig renamed to the site and
merged into ~/.kube/config (a real YAML merge), or removed from it again.

    wanted = site_kubeconfig(k3s_yaml_text, name="lab", server="https://192.168.10.25:6443")
    text = merge_kubeconfig(current_text_or_None, wanted)      # pure; same text when merged
    write_kubeconfig(path, text)                               # atomic, mode 0600

A distribution's kubeconfig names its cluster, user and context `default` (k3s) or
`microk8s-cluster`/`admin`/`microk8s`: merging two of them by file concatenation
(`KUBECONFIG=a:b kubectl config view --flatten`) silently drops the second entry of the same
name. So every entry is renamed to the site's name first, its server set to the VIP or the
first server, and then only the entries of that name are replaced or added: every other
cluster, user, context and preference stays as it was, and the current context is set only
when the file had none.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = "~/.kube/config"
LISTS = ("clusters", "users", "contexts")


class KubeconfigError(ValueError):
    """A kubeconfig cannot be read or merged; the message says what to fix."""


def _load(text: str | None, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text or "") or {}
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"{what} is not valid YAML ({exc}); fix it or move it away, "
                              "then run again") from None
    if not isinstance(data, dict):
        raise KubeconfigError(f"{what} holds a {type(data).__name__}, expected a kubeconfig "
                              "mapping (apiVersion, clusters, users, contexts)")
    for key in LISTS:
        value = data.get(key)
        if value is not None and not (isinstance(value, list) and all(
                isinstance(item, dict) and "name" in item for item in value)):
            raise KubeconfigError(f"{what}: `{key}` must be a list of entries with a `name`")
    return data


def site_kubeconfig(text: str, name: str, server: str) -> dict[str, Any]:
    """The cluster's own kubeconfig (one cluster, user and context) with all three renamed
    to `name` and the cluster's server set to `server`."""
    data = _load(text, "the cluster's kubeconfig")
    entries = {key: data.get(key) or [] for key in LISTS}
    if any(len(items) != 1 for items in entries.values()):
        counts = ", ".join(f"{len(v)} {k}" for k, v in entries.items())
        raise KubeconfigError(f"the cluster's kubeconfig has {counts}; expected one of each")
    cluster = copy.deepcopy(entries["clusters"][0].get("cluster") or {})
    user = copy.deepcopy(entries["users"][0].get("user") or {})
    context = copy.deepcopy(entries["contexts"][0].get("context") or {})
    cluster["server"] = server
    context.update(cluster=name, user=name)
    return {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": context}],
            "current-context": name}


def merge_kubeconfig(current: str | None, site: dict[str, Any]) -> str:
    """`current` (None: no file yet) with the site's entries replaced or added; everything
    else kept. Returns `current` unchanged, byte for byte, when it already holds them."""
    data = _load(current, "the kubeconfig")
    wanted = copy.deepcopy(data)
    wanted.setdefault("apiVersion", "v1")
    wanted.setdefault("kind", "Config")
    for key in LISTS:
        items = list(wanted.get(key) or [])
        for entry in site.get(key) or []:
            same = [i for i, item in enumerate(items) if item.get("name") == entry["name"]]
            if same:
                items[same[0]] = copy.deepcopy(entry)
                for index in reversed(same[1:]):
                    del items[index]
            else:
                items.append(copy.deepcopy(entry))
        wanted[key] = items
    wanted.setdefault("preferences", {})
    if not wanted.get("current-context"):
        wanted["current-context"] = site.get("current-context", "")
    if current is not None and wanted == data:
        return current
    return yaml.safe_dump(wanted, default_flow_style=False, sort_keys=False)


def remove_site(current: str | None, name: str) -> str | None:
    """`current` without the cluster, user and context called `name` (None: no file);
    unchanged text when there is nothing of that name."""
    if current is None:
        return None
    data = _load(current, "the kubeconfig")
    wanted = copy.deepcopy(data)
    for key in LISTS:
        if wanted.get(key):
            wanted[key] = [item for item in wanted[key] if item.get("name") != name]
    if wanted.get("current-context") == name:
        wanted["current-context"] = ""
    if wanted == data:
        return current
    return yaml.safe_dump(wanted, default_flow_style=False, sort_keys=False)


def names_in(text: str | None) -> dict[str, list[str]]:
    """{clusters|users|contexts: [names]} of a kubeconfig (for messages and checks)."""
    data = _load(text, "the kubeconfig")
    return {key: [str(item["name"]) for item in data.get(key) or []] for key in LISTS}


def kubeconfig_path(path: str | None) -> Path:
    """The file to merge into: `path`, else $KUBECONFIG's first entry, else ~/.kube/config."""
    chosen = path or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] or DEFAULT_PATH
    return Path(os.path.expanduser(chosen))


def read_kubeconfig(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def write_kubeconfig(path: Path, text: str) -> None:
    """Write `text` to `path` atomically with mode 0600 (it holds credentials)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def forget_site(path_arg: str | None, site: str, check: bool) -> str | None:
    """Remove the site's cluster, user and context from the operator's kubeconfig (the
    `*.reset` tasks), or only say so in check mode. Returns what was (or would be) done, None
    when the site is not there; ValueError naming the file when it cannot be read."""
    path = kubeconfig_path(path_arg)
    current = read_kubeconfig(path)
    try:
        wanted = remove_site(current, site)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if wanted is current or wanted is None:
        return None
    if not check:
        write_kubeconfig(path, wanted)
    return f"{'would remove' if check else 'removed'} context {site} from {path}"
