"""pi-prep's `vars:` (hosts with role pi); what each key does: runbooks/pi_prep/settings.py."""

from __future__ import annotations

import re
from typing import Any

from runbooks.core.inventory_schema import Field, Table, register_vars

_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)
_OVERLAY = re.compile(r"[\w.,=-]+")


def _image(value: Any) -> str | None:
    if not value.strip() or " " in value:
        return (f"{value!r} is not an image reference; write one such as "
                "192.168.10.2:5001/pause:3.9")
    return None


def _hostname(value: Any) -> str | None:
    if isinstance(value, bool) or _HOSTNAME.fullmatch(value):
        return None
    return (f"{value!r} is not a host name; use letters, digits and dashes, or true for the "
            "inventory name")


def _overlays(value: Any) -> str | None:
    items = value if isinstance(value, list) else [value]
    if all(isinstance(i, str) and _OVERLAY.fullmatch(i) for i in items):
        return None
    return f"{value!r}: give overlay names such as [disable-wifi, disable-bt]"


def _config_value(value: Any) -> str | None:
    if re.fullmatch(r"[\w.,-]+", str(value)):
        return None
    return f"{value!r} is not a config.txt value (a number or a word)"


PI_PREP_VARS: dict[str, Field | Table] = {
    "sandbox_image": Field(str, "an image reference such as 192.168.10.2:5001/pause:3.9",
                           check=_image),
    "registry_hosts": Field(bool, "whether containerd pulls from the inventory's registry"),
    "rng_tools": Field(bool, "install rng-tools-debian"),
    "iptables_legacy": Field(bool, "switch iptables to the legacy backend"),
    "kubernetes": Table({
        "version": Field(str, 'a minor version as a quoted string, e.g. "1.28"',
                         required=True, pattern=r"1\.\d{1,3}"),
        "repo": Field(str, "the base URL (scheme and host) of the Kubernetes package "
                           "repository", required=True, pattern=r"https?://[^\s/]+/?"),
    }, what='{version: "1.28", repo: https://...}'),
    "overclock": Table(
        {"dtoverlay": Field((str, list), "overlay names", check=_overlays)},
        what="config.txt settings such as {arm_freq: 2000, over_voltage: 6}",
        extra=Field((int, float, str, bool), "a config.txt setting (key: lower-case word)",
                    check=_config_value),
        extra_keys=r"[a-z_0-9]+"),
    "hostname": Field((bool, str), "true, or a host name", check=_hostname),
}

register_vars("pi", PI_PREP_VARS)
