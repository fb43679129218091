"""Board facts for pi-prep: OS, board, kernel command line location, swap, runtime, arch.

All of them are read in one round trip (`FACT_COMMANDS` through `ctx.gather`) and parsed by
the pure functions below into a `BoardFacts`, which decides the plan's steps.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from runbooks.common.facts import ARCHITECTURE, CONTAINERD_INSTALLED
from runbooks.core.facts import Fact, FactResult
from runbooks.core.steps.system import dpkg_status

FIRMWARE_CMDLINE = "/boot/firmware/cmdline.txt"
LEGACY_CMDLINE = "/boot/cmdline.txt"
GRUB_DEFAULT = "/etc/default/grub"
SWAP_PACKAGES = ("dphys-swapfile", "zram-config", "zram-tools", "systemd-zram-generator")

# the named facts several parts of pi-prep read (steps, the reboot check, demo.check)
SWAPS: Fact[tuple[SwapEntry, ...] | None] = Fact(
    "swaps", "cat /proc/swaps", lambda r: parse_proc_swaps(r.out) if r.ok else None)
PROC_CGROUPS: Fact[str] = Fact("cgroups", "cat /proc/cgroups", lambda r: r.out if r.ok else "")
CGROUP_CONTROLLERS: Fact[str] = Fact("controllers", "cat /sys/fs/cgroup/cgroup.controllers",
                                     lambda r: r.out if r.ok else "")

FACT_COMMANDS: dict[str, str] = {
    "os_release": "cat /etc/os-release",
    "rpi_issue": "[ -e /etc/rpi-issue ]",
    "armbian": "[ -e /etc/armbian-release ]",
    "model": "{ cat /proc/device-tree/model || cat /sys/firmware/devicetree/base/model; }"
             " | tr -d '\\000'",
    "firmware_cmdline": f"[ -f {FIRMWARE_CMDLINE} ]",
    "legacy_cmdline": f"head -c 400 {LEGACY_CMDLINE}",
    "grub": f"[ -f {GRUB_DEFAULT} ]",
    "swaps": SWAPS.command,
    "swap_packages": dpkg_status(SWAP_PACKAGES).command,
    "containerd": CONTAINERD_INSTALLED.command,
    "iptables": "iptables --version",
    "arch": ARCHITECTURE.command,
}


@dataclass(frozen=True)
class OsInfo:
    """The distribution: `family` is raspios, ubuntu, debian, armbian or other."""

    id: str
    version_id: str
    codename: str
    pretty: str
    family: str


@dataclass(frozen=True)
class Board:
    """The board from its device-tree model: kind raspberrypi, lepotato, other or unknown."""

    kind: str
    model: str
    generation: str | None = None  # Raspberry Pi: "3", "4", "5", "zero2", "cm4"...


@dataclass(frozen=True)
class SwapEntry:
    """One line of /proc/swaps: an active swap area."""

    name: str
    kind: str
    size_kib: int

    def describe(self) -> str:
        return f"{self.name} ({self.kind}, {self.size_kib // 1024} MiB)"


@dataclass(frozen=True)
class BoardFacts:
    """Everything the plan needs to choose its steps."""

    os: OsInfo
    board: Board
    boot: str  # firmware | legacy | grub
    cmdline_path: str
    swaps: tuple[SwapEntry, ...] = ()
    swap_packages: tuple[str, ...] = ()
    containerd: tuple[int, int] | None = None
    iptables: str = "unknown"  # nf_tables | legacy | unknown (not installed)
    arch: str = "unknown"
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        runtime = (f"containerd {self.containerd[0]}.{self.containerd[1]}"
                   if self.containerd else "no containerd")
        swap = ", ".join(s.name for s in self.swaps) or "none active"
        return (f"{self.board.model or self.board.kind}; {self.os.pretty or self.os.id}; "
                f"kernel arguments in {self.cmdline_path}; {runtime}; iptables {self.iptables}; "
                f"{self.arch}; swap: {swap}")


def parse_os_release(text: str, rpi_issue: bool = False, armbian: bool = False) -> OsInfo:
    """/etc/os-release (shell-style KEY=value lines) -> OsInfo."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("'\"")]
        values[key.strip()] = parts[0] if parts else ""
    os_id = values.get("ID", "").lower()
    like = values.get("ID_LIKE", "").lower().split()
    pretty = values.get("PRETTY_NAME", "")
    if armbian or pretty.lower().startswith("armbian"):
        family = "armbian"
    elif os_id == "raspbian" or rpi_issue:
        family = "raspios"
    elif os_id == "ubuntu" or "ubuntu" in like:
        family = "ubuntu"
    elif os_id == "debian" or "debian" in like:
        family = "debian"
    else:
        family = "other"
    return OsInfo(os_id or "unknown", values.get("VERSION_ID", ""),
                  values.get("VERSION_CODENAME", ""), pretty, family)


_PI_MODEL = re.compile(
    r"raspberry pi\s+(?:(?P<cm>compute module\s+(?P<cmn>\d+))|(?P<zero>zero(?:\s*2)?)|"
    r"(?P<n>\d+)|(?P<plain>model))", re.IGNORECASE)


def detect_board(model: str) -> Board:
    """A device-tree model string ("Raspberry Pi 4 Model B Rev 1.5") -> Board."""
    model = model.replace("\x00", "").strip()
    if not model:
        return Board("unknown", "")
    lower = model.lower()
    if lower.startswith("raspberry pi"):
        match = _PI_MODEL.match(model)
        generation = None
        if match:
            if match.group("cm"):
                generation = f"cm{match.group('cmn')}"
            elif match.group("zero"):
                generation = "zero2" if "2" in match.group("zero") else "zero"
            elif match.group("n"):
                generation = match.group("n")
            else:
                generation = "1"
        return Board("raspberrypi", model, generation)
    if "aml-s905x-cc" in lower or "le potato" in lower:
        return Board("lepotato", model)
    return Board("other", model)


def parse_proc_swaps(text: str) -> tuple[SwapEntry, ...]:
    """/proc/swaps -> the active swap areas (the header line is skipped)."""
    entries = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            try:
                size = int(fields[2])
            except ValueError:
                continue
            name = fields[0].replace("\\040", " ")
            entries.append(SwapEntry(name, fields[1], size))
    return tuple(entries)


def parse_iptables_variant(text: str) -> str:
    """`iptables --version` ("iptables v1.8.9 (nf_tables)") -> nf_tables | legacy | unknown."""
    match = re.search(r"\((nf_tables|legacy)\)", text)
    if match:
        return match.group(1)
    return "legacy" if re.search(r"iptables v1\.[0-7]\.", text) else "unknown"


def kernel_cmdline_location(facts: Mapping[str, FactResult]) -> tuple[str, str]:
    """(boot kind, path) of the kernel command line; ValueError when none is found.

    Order: /boot/firmware/cmdline.txt (Raspberry Pi OS bookworm, Ubuntu), /boot/cmdline.txt
    (older Raspberry Pi OS) unless it is the "moved to /boot/firmware" stub, then GRUB.
    """
    if facts["firmware_cmdline"].ok:
        return "firmware", FIRMWARE_CMDLINE
    legacy = facts["legacy_cmdline"]
    if legacy.ok:
        if "/boot/firmware" in legacy.out and ("moved" in legacy.out or "DO NOT" in legacy.out):
            raise ValueError(
                f"{LEGACY_CMDLINE} says the command line moved to {FIRMWARE_CMDLINE}, but that "
                "file does not exist: mount the boot partition at /boot/firmware "
                "(check /etc/fstab), then run again")
        return "legacy", LEGACY_CMDLINE
    if facts["grub"].ok:
        return "grub", GRUB_DEFAULT
    raise ValueError(
        f"cannot find the kernel command line: none of {FIRMWARE_CMDLINE}, {LEGACY_CMDLINE}, "
        f"{GRUB_DEFAULT} exists; is the boot partition mounted?")


def parse_board_facts(facts: Mapping[str, FactResult]) -> BoardFacts:
    """The results of FACT_COMMANDS -> BoardFacts (ValueError when the boot files are missing)."""
    os_info = parse_os_release(facts["os_release"].out if facts["os_release"].ok else "",
                               facts["rpi_issue"].ok, facts["armbian"].ok)
    board = detect_board(facts["model"].out if facts["model"].ok else "")
    boot, path = kernel_cmdline_location(facts)
    packages = dpkg_status(SWAP_PACKAGES).read(facts, "swap_packages")
    iptables = facts["iptables"]
    return BoardFacts(
        os=os_info,
        board=board,
        boot=boot,
        cmdline_path=path,
        swaps=SWAPS.read(facts) or (),
        swap_packages=tuple(p for p in SWAP_PACKAGES if packages.installed(p)),
        containerd=CONTAINERD_INSTALLED.read(facts, "containerd"),
        iptables=parse_iptables_variant(iptables.out) if iptables.ok else "unknown",
        arch=ARCHITECTURE.read(facts, "arch") or "unknown",
    )


def memory_cgroup_enabled(proc_cgroups: str, controllers: str = "") -> bool:
    """True when the running kernel has the memory cgroup enabled.

    /proc/cgroups (`memory <hierarchy> <num_cgroups> <enabled>`) answers on cgroup v1 and v2;
    the cgroup v2 root's cgroup.controllers answers when /proc/cgroups has no memory line.
    """
    for line in proc_cgroups.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "memory":
            return fields[3] == "1"
    return "memory" in controllers.split()


def missing_arguments(cmdline: str, wanted: tuple[str, ...] | list[str]) -> list[str]:
    """The wanted kernel arguments that a running kernel's /proc/cmdline lacks."""
    tokens = cmdline.split()
    if "--" in tokens:
        tokens = tokens[: tokens.index("--")]
    missing = []
    for arg in wanted:
        key, _, value = arg.partition("=")
        if key in ("cgroup_enable", "cgroup_disable"):
            present = any(t.partition("=")[0] == key and value in t.partition("=")[2].split(",")
                          for t in tokens)
        else:
            present = arg in tokens
        if not present:
            missing.append(arg)
    return missing
