"""The boot partition's files for the inventory's board: SSH on, login user and key, host
name, static VLAN address, cgroup arguments in cmdline.txt.

Two flavours, chosen from what the image holds:
- `cloud-init` (Ubuntu, and any image whose boot partition carries cloud-init's NoCloud
  seed): `user-data`, `network-config` (netplan v2), a fresh `meta-data` instance-id.
- `raspios` (Raspberry Pi OS bookworm and later without cloud-init): `ssh`, a `firstrun.sh`
  run once by `systemd.run=` (as Raspberry Pi Imager does) that sets the host name, the
  user and key, and installs a NetworkManager keyfile for the VLAN address.
`boot_files(...)` is pure: it gets the current boot files it needs and returns what to write.
"""

from __future__ import annotations

import re
import shlex
import uuid
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import yaml

from runbooks.core.templates import managed_from, render
from runbooks.pi_prep.cmdline import CGROUP_ARGS, merge_cmdline_txt

CLOUD_INIT_SEED = ("user-data", "meta-data", "network-config")
FIRSTRUN_ARGS = ("systemd.run=/boot/firmware/firstrun.sh", "systemd.run_success_action=reboot",
                 "systemd.unit=kernel-command-line.target")
_KEY = re.compile(r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-[\w@.-]+) [A-Za-z0-9+/=]+( .*)?")
_HASH = re.compile(r"\$(1|5|6|y|2[aby])\$[./A-Za-z0-9$]+")


class PrepError(ValueError):
    """The board's settings or the image do not allow preparing the boot partition."""


@dataclass(frozen=True)
class VlanConfig:
    name: str
    parent: str
    vlan_id: int
    address: IPv4Interface
    gateway: IPv4Address | None
    dns: tuple[IPv4Address, ...]


@dataclass(frozen=True)
class Board:
    """Who the card becomes: from the inventory's host, plus the operator's key."""

    hostname: str
    user: str
    public_key: str
    password_hash: str | None
    vlan: VlanConfig | None
    managed: str  # header line for generated files: the site it comes from


def check_public_key(text: str, where: str) -> str:
    """The single public key line in `text`; PrepError for anything else (a private key)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any("PRIVATE KEY" in line for line in lines):
        raise PrepError(f"{where} is a private key; give the .pub file beside it")
    if len(lines) != 1 or not _KEY.fullmatch(lines[0]):
        raise PrepError(f"{where} is not one OpenSSH public key line (ssh-ed25519 AAAA...); "
                        "give your key's .pub file with --key")
    return lines[0]


def board_from_inventory(inventory: Any, host: Any, public_key: str,
                         password_hash: str | None = None) -> Board:
    """The Board for inventory host `host` (hostname from vars.hostname, else its name)."""
    if password_hash is not None and not _HASH.fullmatch(password_hash):
        raise PrepError("the password hash is not a crypt(3) hash ($6$..., $y$...)")
    hostname = (host.vars or {}).get("hostname")
    hostname = hostname if isinstance(hostname, str) else host.name
    vlan = None
    if host.vlan is not None and host.vlan.address is not None:
        network = inventory.network
        vlan = VlanConfig(
            name=host.vlan.name, parent=host.vlan.parent or "eth0", vlan_id=network.vlan_id,
            address=host.vlan.address, gateway=network.gateway,
            dns=tuple(network.dhcp.dns) if network.dhcp else (),
        )
    return Board(hostname, host.user, public_key, password_hash, vlan,
                 managed_from(inventory))


def flavour(boot_names: list[str], os_release: str | None) -> str:
    """`cloud-init` or `raspios`, from the boot partition's files and the root's os-release;
    PrepError for an image we cannot prepare."""
    names = {name.lower() for name in boot_names}
    if "cmdline.txt" not in names:
        raise PrepError("the boot partition has no cmdline.txt: not a Raspberry Pi OS or "
                        "Ubuntu image for a Raspberry Pi")
    if names & set(CLOUD_INIT_SEED):
        return "cloud-init"
    release = dict(re.findall(r"^(\w+)=\"?([^\"\n]*)\"?$", os_release or "", re.M))
    if release.get("ID") in ("debian", "raspbian") and release.get("VERSION_ID", "0").isdigit() \
            and int(release["VERSION_ID"]) >= 12:
        return "raspios"
    found = release.get("PRETTY_NAME") or "no /etc/os-release on an ext4 root"
    raise PrepError(f"the image is {found}: only Raspberry Pi OS bookworm (12) or later, or "
                    "images with cloud-init (Ubuntu), are prepared; use a current image")


def _cloud_init(board: Board, cmdline: str | None) -> dict[str, bytes]:
    user: dict[str, Any] = {"name": board.user, "ssh_authorized_keys": [board.public_key],
                            "lock_passwd": board.password_hash is None}
    if board.user != "root":
        user.update(groups="adm, sudo", shell="/bin/bash", sudo="ALL=(ALL) NOPASSWD:ALL")
    if board.password_hash is not None:
        user["passwd"] = board.password_hash
    config: dict[str, Any] = {
        "hostname": board.hostname, "manage_etc_hosts": True, "preserve_hostname": False,
        "users": [user], "ssh_pwauth": False, "disable_root": board.user != "root",
        "ssh_deletekeys": True,
    }
    files = {
        "user-data": "#cloud-config\n# " + board.managed + ", written by inv pi-prep.flash\n"
                     + yaml.safe_dump(config, sort_keys=False),
        "meta-data": f"instance-id: greenroom-{board.hostname}-{uuid.uuid4().hex[:12]}\n"
                     f"local-hostname: {board.hostname}\n",
        "cmdline.txt": merge_cmdline_txt(cmdline, CGROUP_ARGS),
    }
    if board.vlan is not None:
        vlan = board.vlan
        iface: dict[str, Any] = {"id": vlan.vlan_id, "link": vlan.parent,
                                 "addresses": [str(vlan.address)]}
        if vlan.gateway is not None:
            iface["routes"] = [{"to": "default", "via": str(vlan.gateway)}]
        if vlan.dns:
            iface["nameservers"] = {"addresses": [str(a) for a in vlan.dns]}
        network = {"version": 2,
                   "ethernets": {vlan.parent: {"dhcp4": True, "optional": True}},
                   "vlans": {vlan.name: iface}}
        files["network-config"] = "# " + board.managed + "\n" + yaml.safe_dump(
            network, sort_keys=False)
    return {name: text.encode() for name, text in files.items()}


def _raspios(board: Board, cmdline: str | None) -> dict[str, bytes]:
    files: dict[str, bytes] = {"ssh": b"", "greenroom/authorized_keys":
                               (board.public_key + "\n").encode()}
    network = None
    if board.vlan is not None:
        vlan = board.vlan
        network = f"{vlan.name}.nmconnection"
        files[f"greenroom/{network}"] = render(
            "pi_prep/flash-vlan.nmconnection.j2", managed=board.managed, iface=vlan.name,
            uuid=uuid.uuid5(uuid.NAMESPACE_DNS, f"{board.hostname}.{vlan.name}.greenroom"),
            vlan_id=vlan.vlan_id, parent=vlan.parent, address=str(vlan.address),
            gateway=str(vlan.gateway) if vlan.gateway else "",
            dns=[str(a) for a in vlan.dns]).encode()
    files["firstrun.sh"] = render(
        "pi_prep/flash-firstrun.sh.j2", managed=board.managed, hostname=board.hostname,
        user_q=shlex.quote(board.user), hash_q=shlex.quote(board.password_hash or "!"),
        network=network).encode()
    files["cmdline.txt"] = merge_cmdline_txt(cmdline, (*CGROUP_ARGS, *FIRSTRUN_ARGS)).encode()
    return files


def boot_files(board: Board, kind: str, cmdline: str | None) -> dict[str, bytes]:
    """Files to write into the boot partition (name -> content) for `kind` of image."""
    try:
        return _cloud_init(board, cmdline) if kind == "cloud-init" else _raspios(board, cmdline)
    except ValueError as exc:
        raise PrepError(f"cmdline.txt in the image: {exc}") from None
