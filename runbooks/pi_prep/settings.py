"""pi-prep's settings for one host, read from the host's `vars:` in the inventory.

Keys (all optional) under `hosts.<name>.vars`:

  sandbox_image: "192.168.10.2:5001/pause:3.9"
      containerd's sandbox (pause) image. Default: `<registry>/pause:3.9` when the inventory
      has a `registry:` (its host's VLAN address and port), else containerd's own default.
  registry_hosts: true
      write /etc/containerd/certs.d/<registry>/hosts.toml so containerd pulls from the
      inventory's registry over plain HTTP, and one certs.d/<upstream>/hosts.toml mirror
      entry per upstream registry of the image lists (default true when there is a registry).
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

from dataclasses import dataclass, field
from typing import Any

from runbooks.common.registry import registry_endpoint

PAUSE = "pause:3.9"


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


def load_settings(inventory: Any, host: Any) -> PiPrepSettings:
    """The settings of `host`, from vars the inventory already validated against
    runbooks/common/schema/pi_prep.py (a misspelt key or a wrong type never gets here)."""
    raw = dict(getattr(host, "vars", None) or {})
    found = registry_endpoint(inventory)
    endpoint = str(found) if found else None
    kubernetes = None
    if raw.get("kubernetes"):
        kubernetes = (str(raw["kubernetes"]["repo"]), str(raw["kubernetes"]["version"]))
    overclock: dict[str, str] = {}
    overlays: tuple[str, ...] = ()
    for key, value in (raw.get("overclock") or {}).items():
        if key == "dtoverlay":
            overlays = tuple(value if isinstance(value, list) else [value])
        else:
            overclock[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    hostname = raw.get("hostname")
    if hostname is True:
        hostname = host.name
    elif hostname is False:
        hostname = None
    return PiPrepSettings(
        sandbox_image=raw.get("sandbox_image", f"{endpoint}/{PAUSE}" if endpoint else None),
        registry=endpoint if raw.get("registry_hosts", True) else None,
        rng_tools=bool(raw.get("rng_tools", False)),
        iptables_legacy=bool(raw.get("iptables_legacy", False)),
        kubernetes=kubernetes,
        overclock=overclock,
        overlays=overlays,
        hostname=hostname,
    )
