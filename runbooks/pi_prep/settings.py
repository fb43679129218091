"""pi-prep's settings for one host, read from the host's `vars:` in the inventory.

Keys (all optional) under `hosts.<name>.vars`:

  sandbox_image: "192.168.10.2:5001/pause:3.9"
      containerd's sandbox (pause) image. Default: `<registry>/pause:3.9` when the inventory
      has a `registry:` (its host's VLAN address and port), else containerd's own default.
  registry_hosts: true
      write /etc/containerd/certs.d/<registry>/hosts.toml so containerd pulls from the
      inventory's registry over plain HTTP (default true when there is a registry).
  rng_tools: true              install rng-tools-debian (default false)
  iptables_legacy: true        iptables/ip6tables alternatives set to legacy (default false)
  kubernetes: {version: "1.28", repo: "https://<the Kubernetes package host>"}
      the Kubernetes apt repository for that minor version; kubelet kubeadm kubectl
      installed and held. `repo` is the base URL the Kubernetes install docs give.
  overclock: {arm_freq: 2000, over_voltage: 6, gpu_mem: 16, dtoverlay: [disable-wifi, disable-bt]}
      config.txt settings (Raspberry Pi only), put under [all]; a reboot applies them.
  hostname: rp0 | true
      /etc/hostname and the 127.0.1.1 line of /etc/hosts; true means the inventory name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

KNOWN = ("sandbox_image", "registry_hosts", "rng_tools", "iptables_legacy", "kubernetes",
         "overclock", "hostname")
PAUSE = "pause:3.9"
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


class SettingsError(ValueError):
    """A host's vars are wrong; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class PiPrepSettings:
    sandbox_image: str | None = None
    registry: str | None = None  # host:port of the site's registry, for hosts.toml
    rng_tools: bool = False
    iptables_legacy: bool = False
    kubernetes: tuple[str, str] | None = None  # (repo base URL, minor)
    overclock: dict[str, str] = field(default_factory=dict)
    overlays: tuple[str, ...] = ()
    hostname: str | None = None


def registry_endpoint(inventory: Any) -> str | None:
    """host:port at which boards reach the inventory's registry (its host's VLAN address)."""
    registry = getattr(inventory, "registry", None)
    if registry is None:
        return None
    host = inventory.hosts.get(registry.host)
    address = registry.host
    if host is not None:
        vlan = getattr(host, "vlan", None)
        if vlan is not None and vlan.address is not None:
            address = str(vlan.address.ip)
        elif "gateway" in host.roles and inventory.network is not None:
            address = str(inventory.network.gateway)
        else:
            address = host.address
    return f"{address}:{registry.port}"


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{where} is {value!r}; use true or false")
    return value


def load_settings(inventory: Any, host: Any) -> PiPrepSettings:
    """The settings of `host`; SettingsError for a wrong value."""
    raw = dict(getattr(host, "vars", None) or {})
    where = f"{inventory.path}: hosts.{host.name}.vars"
    endpoint = registry_endpoint(inventory)
    sandbox = raw.get("sandbox_image", f"{endpoint}/{PAUSE}" if endpoint else None)
    if sandbox is not None and (not isinstance(sandbox, str) or not sandbox.strip()
                                or " " in sandbox):
        raise SettingsError(f"{where}.sandbox_image is {sandbox!r}; give an image reference "
                            f"such as {endpoint or 'registry:5000'}/{PAUSE}")
    registry_hosts = _bool(f"{where}.registry_hosts", raw.get("registry_hosts", True))
    kubernetes = None
    if raw.get("kubernetes") is not None:
        k8s = raw["kubernetes"]
        if not isinstance(k8s, dict) or set(k8s) - {"version", "repo"}:
            raise SettingsError(f"{where}.kubernetes must be a mapping with `version` (e.g. "
                                f"\"1.28\") and `repo` (the package repository's base URL)")
        version = str(k8s.get("version", ""))
        if not re.fullmatch(r"1\.\d{1,3}", version):
            raise SettingsError(f"{where}.kubernetes.version is {k8s.get('version')!r}; pin a "
                                "minor version as a quoted string, e.g. \"1.28\"")
        repo = k8s.get("repo")
        if not isinstance(repo, str) or not re.fullmatch(r"https?://[^\s/]+/?", repo):
            raise SettingsError(f"{where}.kubernetes.repo is {repo!r}; give the base URL "
                                "(scheme and host) of the Kubernetes package repository")
        kubernetes = (repo, version)
    overclock: dict[str, str] = {}
    overlays: tuple[str, ...] = ()
    if raw.get("overclock") is not None:
        oc = raw["overclock"]
        if not isinstance(oc, dict):
            raise SettingsError(f"{where}.overclock must be a mapping such as "
                                "{arm_freq: 2000, over_voltage: 6}")
        for key, value in oc.items():
            if key == "dtoverlay":
                items = value if isinstance(value, list) else [value]
                if not all(isinstance(i, str) and re.fullmatch(r"[\w.,=-]+", i) for i in items):
                    raise SettingsError(f"{where}.overclock.dtoverlay is {value!r}; give "
                                        "overlay names such as [disable-wifi, disable-bt]")
                overlays = tuple(items)
            elif not re.fullmatch(r"[a-z_0-9]+", str(key)) or isinstance(value, (dict, list)) \
                    or value is None or not re.fullmatch(r"[\w.,-]+", str(value)):
                raise SettingsError(f"{where}.overclock.{key} = {value!r} is not a config.txt "
                                    "setting (key: lower-case word, value: a number or word)")
            else:
                overclock[str(key)] = str(value).lower() if isinstance(value, bool) \
                    else str(value)
    hostname = raw.get("hostname")
    if hostname is True:
        hostname = host.name
    elif hostname is False:
        hostname = None
    if hostname is not None and (not isinstance(hostname, str)
                                 or not _HOSTNAME.fullmatch(hostname)):
        raise SettingsError(f"{where}.hostname is {hostname!r}; use a host name of letters, "
                            "digits and dashes, or true for the inventory name")
    return PiPrepSettings(
        sandbox_image=sandbox,
        registry=endpoint if registry_hosts else None,
        rng_tools=_bool(f"{where}.rng_tools", raw.get("rng_tools", False)),
        iptables_legacy=_bool(f"{where}.iptables_legacy", raw.get("iptables_legacy", False)),
        kubernetes=kubernetes,
        overclock=overclock,
        overlays=overlays,
        hostname=hostname,
    )
