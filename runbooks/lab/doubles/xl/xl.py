#!/usr/bin/env python3
"""greenroom lab DOUBLE of Xen's edges: `xl`, the hypervisor's boot and `update-grub`.

The virtual lab has no hypervisor and its guests no boot disk, so these stand in for them
(never installed on a real site). Everything else of a dom0 runs for real in the guest.

- ``update-grub``: sources /etc/default/grub and /etc/default/grub.d/*.cfg the way
  grub-mkconfig does, writes /boot/grub/grub.cfg with the default entry and, when a
  hypervisor is installed (/boot/xen-*), the Xen entry with GRUB_CMDLINE_XEN_DEFAULT and
  GRUB_CMDLINE_XEN; each call is logged to /var/log/update-grub.calls.
- ``boot`` (run at every guest boot by greenroom-double-xen-boot.service): "boots" what
  grub.cfg's default entry says: the Xen entry -> /run/greenroom-double/xen (its command line).
- ``xl info``: fails as on a host not running Xen, else prints xl's fields with that
  command line. ``xl list``: Domain-0 plus the created domains. ``xl create CFG``: the
  domain's vif joins the bridge of its ``vif = ['bridge=...']`` or xl.conf's
  vif.default.bridge (what Xen's vif-bridge script does): the lab provides the link
  ``vif<domid>.0`` (domids from 1).
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time

STATE = "/run/greenroom-double"
BOOTED = f"{STATE}/xen"
DOMAINS = f"{STATE}/domains.json"
GRUB_CFG = "/boot/grub/grub.cfg"
XEN_ENTRY = "{distributor} GNU/Linux, with Xen hypervisor"
SHIM = 'gettext() { printf "%s" "$1"; }; grub_warn() { echo "Warning: $*" >&2; }\n'


def sourced() -> dict[str, str]:
    """The GRUB variables after sourcing the config as grub-mkconfig does."""
    script = SHIM + (
        "[ -f /etc/default/grub ] && . /etc/default/grub\n"
        "for f in /etc/default/grub.d/*.cfg; do [ -e \"$f\" ] && . \"$f\"; done\n"
        "for v in GRUB_DEFAULT GRUB_DISTRIBUTOR GRUB_CMDLINE_LINUX GRUB_CMDLINE_LINUX_DEFAULT "
        "GRUB_CMDLINE_XEN_DEFAULT GRUB_CMDLINE_XEN XEN_OVERRIDE_GRUB_DEFAULT; do "
        "eval \"printf '%s=%s\\0' $v \\\"\\${$v}\\\"\"; done\n")
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode:
        raise SystemExit(f"update-grub (double): sourcing the config failed ({done.returncode})")
    pairs = [item.split("=", 1) for item in done.stdout.split("\0") if "=" in item]
    return {key: value for key, value in pairs}


def update_grub() -> int:
    values = sourced()
    distributor = values.get("GRUB_DISTRIBUTOR") or "Debian"
    linux = f"{distributor} GNU/Linux"
    entries = [linux]
    hypervisors = sorted(p for p in glob.glob("/boot/xen-*")
                         if p.endswith((".gz", ".efi")) or "." not in os.path.basename(p))
    xen_args = " ".join(w for w in (values.get("GRUB_CMDLINE_XEN_DEFAULT", ""),
                                    values.get("GRUB_CMDLINE_XEN", "")) if w)
    if hypervisors:
        entries.append(XEN_ENTRY.format(distributor=distributor))
    default = values.get("GRUB_DEFAULT", "0") or "0"
    if default.isdigit():
        default = entries[int(default)] if int(default) < len(entries) else entries[0]
    os.makedirs(os.path.dirname(GRUB_CFG), exist_ok=True)
    lines = ["# written by the greenroom lab DOUBLE of update-grub", f'set default="{default}"']
    for entry in entries:
        lines.append(f"menuentry '{entry}' {{")
        if "Xen" in entry:
            lines.append(f"\tmultiboot2 {hypervisors[-1]} placeholder {xen_args}".rstrip())
        lines.append("}")
    with open(GRUB_CFG + ".new", "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(GRUB_CFG + ".new", GRUB_CFG)
    with open("/var/log/update-grub.calls", "a") as log:
        log.write(json.dumps({"time": time.time(), "default": default, "xen": xen_args,
                              "override": values.get("XEN_OVERRIDE_GRUB_DEFAULT", "")}) + "\n")
    print("Generating grub configuration file ... (greenroom lab double)", file=sys.stderr)
    print(f"Found default entry: {default}", file=sys.stderr)
    return 0


def boot() -> int:
    """At boot: run Xen when grub.cfg's default entry is the Xen one."""
    os.makedirs(STATE, exist_ok=True)
    for path in (BOOTED, DOMAINS):
        if os.path.exists(path):
            os.unlink(path)
    try:
        text = open(GRUB_CFG).read()
    except OSError:
        return 0
    match = re.search(r'^set default="(.*)"$', text, re.M)
    default = match.group(1) if match else ""
    xen = re.search(rf"^menuentry '{re.escape(default)}' {{\n\tmultiboot2 (\S+) placeholder"
                    r"(.*)$", text, re.M)
    if xen and "Xen" in default and os.path.exists(xen.group(1)):
        with open(BOOTED, "w") as out:
            out.write(json.dumps({"hypervisor": xen.group(1),
                                  "cmdline": ("placeholder " + xen.group(2).strip()).strip()}))
    return 0


def _booted() -> dict[str, str] | None:
    try:
        return dict(json.load(open(BOOTED)))
    except (OSError, ValueError):
        return None


def _domains() -> list[dict[str, object]]:
    try:
        return list(json.load(open(DOMAINS)))
    except (OSError, ValueError):
        return []


def _xl_conf(key: str) -> str | None:
    try:
        text = open("/etc/xen/xl.conf").read()
    except OSError:
        return None
    found = re.findall(rf'^\s*{re.escape(key)}\s*=\s*"?([^"\n]*)"?\s*$', text, re.M)
    return found[-1] if found else None


def xl(args: list[str]) -> int:
    booted = _booted()
    if booted is None:
        sys.stderr.write("xencall: error: Could not obtain handle on privileged command "
                         "interface: No such file or directory\n"
                         "libxl: error: libxl.c:102:libxl_ctx_alloc: cannot open libxc "
                         "handle: No such file or directory\ncannot init xl context\n")
        return 1
    command = args[0] if args else "help"
    if command == "info":
        fields = {"host": os.uname().nodename, "release": os.uname().release,
                  "machine": "x86_64", "nr_cpus": str(os.cpu_count() or 1),
                  "xen_major": "4", "xen_minor": "17", "xen_version": "4.17 (lab double)",
                  "xen_commandline": booted["cmdline"], "xend_config_format": "4"}
        for key, value in fields.items():
            print(f"{key:<23}: {value}")
        return 0
    if command == "list":
        print(f"{'Name':<40}{'ID':>5}{'Mem':>6} VCPUs\tState\tTime(s)")
        print(f"{'Domain-0':<40}{0:>5}{1024:>6}     1\tr-----\t0.0")
        for dom in _domains():
            print(f"{dom['name']!s:<40}{dom['id']!s:>5}{512:>6}     1\t-b----\t0.0")
        return 0
    if command == "create" and len(args) >= 2:
        return create(args[-1])
    sys.stderr.write(f"xl (lab double): {' '.join(args)} is not modelled\n")
    return 2


def create(path: str) -> int:
    text = open(path).read()
    name = re.search(r'^\s*name\s*=\s*"([^"]+)"', text, re.M)
    vif = re.search(r"^\s*vif\s*=\s*\[(.*)\]", text, re.M)
    bridge = None
    if vif:
        found = re.search(r"bridge=([A-Za-z0-9_.-]+)", vif.group(1))
        bridge = found.group(1) if found else None
    bridge = bridge or _xl_conf("vif.default.bridge") or "xenbr0"
    domains = _domains()
    domid = max([int(str(d["id"])) for d in domains], default=0) + 1
    link = f"vif{domid}.0"
    done = subprocess.run(["ip", "link", "set", link, "master", bridge, "up"],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        sys.stderr.write(f"libxl: error: vif-bridge: {link} -> {bridge}: {done.stderr}")
        return 1
    domains.append({"id": domid, "name": name.group(1) if name else f"domu{domid}",
                    "vif": link, "bridge": bridge})
    with open(DOMAINS, "w") as out:
        json.dump(domains, out)
    print(f"Parsing config from {path}")
    return 0


def main() -> int:
    role, args = sys.argv[1], sys.argv[2:]
    if role == "update-grub":
        return update_grub()
    if role == "boot":
        return boot()
    return xl(args)


if __name__ == "__main__":
    sys.exit(main())
