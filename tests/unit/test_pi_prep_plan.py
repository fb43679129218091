"""pi-prep: plan building, host vars, swap steps, Kubernetes repo steps, reboot handling."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from runbooks.common.reboot import wait_for_new_boot
from runbooks.core.facts import FactResult
from runbooks.core.inventory import InventoryError, load_inventory, parse_inventory
from runbooks.core.session import CommandResult, HostUnreachable
from runbooks.core.steps import Command, Packages, StepFailed
from runbooks.pi_prep.facts import FACT_COMMANDS
from runbooks.pi_prep.kubernetes import apt_list_prefix, kubernetes_steps, repo_url
from runbooks.pi_prep.plan import build_plan
from runbooks.pi_prep.reboot import RebootPending, reboot_handler, verify_after_reboot
from runbooks.pi_prep.settings import load_settings
from runbooks.pi_prep.swap import Purged, SwapOff, VerifySwapOff
from tests.support.swapfacts import NO_UNITS, swap_rule_facts

LAB = Path(__file__).resolve().parents[2] / "hosts" / "lab.yaml"
SWAPS_HEADER = "Filename\tType\tSize\tUsed\tPriority\n"


@pytest.fixture(scope="module")
def inventory():
    return load_inventory(str(LAB))


def board_facts(**over):
    facts = {key: FactResult(1, "") for key in FACT_COMMANDS}
    facts.update({
        "os_release": FactResult(0, "ID=debian\nVERSION_ID=\"12\"\n"),
        "model": FactResult(0, "Raspberry Pi 4 Model B Rev 1.5"),
        "firmware_cmdline": FactResult(0, ""),
        "swaps": FactResult(0, SWAPS_HEADER),
        "arch": FactResult(0, "arm64\n"),
        "vlan.systemd": FactResult(0, ""),  # a systemd board with no network manager
    })
    facts.update({k: FactResult(*v) for k, v in over.items()})
    return facts


def make_ctx(inventory, name="rp0", facts=None, check=False, options=None, host_vars=None):
    host = inventory.hosts[name]
    if host_vars is not None:
        host = SimpleNamespace(**{f: getattr(host, f) for f in
                                  ("name", "address", "roles", "board", "vlan")},
                               vars=host_vars)
    logs: list[str] = []
    known = facts or board_facts()
    ctx = SimpleNamespace(host=host, inventory=inventory, check=check, options=options or {},
                          log=logs.append,
                          gather=lambda commands: {k: known.get(k, FactResult(1, ""))
                                                   for k in commands})
    return ctx, logs


def step_names(plan):
    return [s.name for s in plan.steps]


def test_firmware_board_plan(inventory):
    ctx, logs = make_ctx(inventory)
    plan = build_plan(ctx)
    names = step_names(plan)
    assert names[0].endswith("in /boot/firmware/cmdline.txt")
    assert "Ensure no swap is active" in names and "Verify swap is off and stays off" in names
    assert any("containerd containernetworking-plugins chrony" in n for n in names)
    assert [h.name for h in plan.handlers] == ["restart containerd", "restart chrony", "reboot"]
    assert "Ensure /etc/chrony/sources.d/greenroom.sources" in names  # follows the gateway
    assert logs and "Raspberry Pi 4" in logs[0]
    plan.check_notifications()


def test_grub_board_gets_update_grub_before_reboot(inventory):
    facts = board_facts(model=(0, "Libre Computer AML-S905X-CC"), firmware_cmdline=(1, ""),
                        grub=(0, ""))
    ctx, _ = make_ctx(inventory, "lp0", facts)
    plan = build_plan(ctx)
    assert "GRUB_CMDLINE_LINUX" in plan.steps[0].name
    assert [h.name for h in plan.handlers] == ["update-grub", "restart containerd",
                                               "restart chrony", "reboot"]


def test_check_mode_plans_the_same_steps(inventory):
    """Only the engine knows check mode: the plan has the same steps either way."""
    checked, _ = make_ctx(inventory, check=True)
    applied, _ = make_ctx(inventory, check=False)
    names = step_names(build_plan(checked))
    assert names == step_names(build_plan(applied))
    assert "Verify swap is off and stays off" in names


def test_swap_providers_and_ubuntu_pi_extras(inventory):
    facts = board_facts(os_release=(0, "ID=ubuntu\nVERSION_ID=\"22.04\"\n"),
                        swap_packages=(0, "dphys-swapfile ii \nzram-config ii \n"))
    ctx, _ = make_ctx(inventory, facts=facts, host_vars={"rng_tools": True})
    plan = build_plan(ctx)
    names = step_names(plan)
    assert "Ensure dphys-swapfile disabled and stopped" in names
    assert any(n.startswith("Ensure zram-config purged") for n in names)
    packages = next(s for s in plan.steps if isinstance(s, Packages))
    assert "linux-modules-extra-raspi" in packages.names and "rng-tools-debian" in packages.names


def test_debian_pi_gets_no_ubuntu_modules(inventory):
    ctx, _ = make_ctx(inventory)
    packages = next(s for s in build_plan(ctx).steps if isinstance(s, Packages))
    assert "linux-modules-extra-raspi" not in packages.names


def test_board_contradicting_inventory_is_refused(inventory):
    ctx, _ = make_ctx(inventory, "rp0", board_facts(model=(0, "Libre Computer AML-S905X-CC")))
    with pytest.raises(StepFailed, match=r"hosts\.rp0\.board is 'raspberrypi'"):
        build_plan(ctx)


def test_missing_boot_files_fail_clearly(inventory):
    ctx, _ = make_ctx(inventory, facts=board_facts(firmware_cmdline=(1, "")))
    with pytest.raises(StepFailed, match="cannot find the kernel command line"):
        build_plan(ctx)


def test_optional_vars_add_their_steps(inventory):
    ctx, logs = make_ctx(inventory, host_vars={
        "iptables_legacy": True, "hostname": True,
        "overclock": {"arm_freq": 2000, "over_voltage": 6, "dtoverlay": ["disable-wifi"]},
        "kubernetes": {"version": "1.28", "repo": "https://k8s-packages.example"}})
    names = step_names(build_plan(ctx))
    assert "Ensure iptables uses the legacy backend" in names
    assert "Ensure ip6tables uses the legacy backend" in names
    assert "Ensure arm_freq=2000, over_voltage=6, dtoverlay=disable-wifi in " \
           "/boot/firmware/config.txt" in names
    assert "Ensure /etc/hostname" in names and "Ensure the running host name is rp0" in names
    assert "Ensure kubelet kubeadm kubectl are held at v1.28" in names


def test_reboot_option_adds_a_requested_reboot(inventory):
    ctx, _ = make_ctx(inventory, options={"reboot": True})
    assert "Reboot requested with --reboot" in step_names(build_plan(ctx))


BAD_VARS = [
    ("misspelt-key", "rng_tool: true", 'hosts.rp0.vars.rng_tool: unknown key '
     "'rng_tool'; did you mean 'rng_tools'?"),
    ("rng-tools-not-bool", "rng_tools: 'yes'", "hosts.rp0.vars.rng_tools: must be true or "
     "false (install rng-tools-debian), got a string 'yes'"),
    ("kubernetes-unpinned", "kubernetes: {version: latest, repo: 'https://x'}",
     "hosts.rp0.vars.kubernetes.version: 'latest' is not a minor version"),
    ("kubernetes-unquoted-version", "kubernetes: {version: 1.30, repo: 'https://x'}",
     "hosts.rp0.vars.kubernetes.version: must be a string"),
    ("kubernetes-no-repo", "kubernetes: {version: '1.28'}",
     "hosts.rp0.vars.kubernetes.repo: missing required key 'repo'"),
    ("kubernetes-extra-key", "kubernetes: {version: '1.28', repo: 'https://x', y: 1}",
     "hosts.rp0.vars.kubernetes.y: unknown key 'y'"),
    ("overclock-not-mapping", "overclock: [1]", "hosts.rp0.vars.overclock: must be a mapping"),
    ("overclock-bad-value", "overclock: {arm_freq: '2000; reboot'}",
     "hosts.rp0.vars.overclock.arm_freq: '2000; reboot' is not a config.txt value"),
    ("overclock-bad-key", "overclock: {Arm-Freq: 2000}",
     "hosts.rp0.vars.overclock.Arm-Freq: key 'Arm-Freq' is not"),
    ("hostname-bad", "hostname: rp 0", "hosts.rp0.vars.hostname: 'rp 0' is not a host name"),
    ("sandbox-image-empty", "sandbox_image: ''", "hosts.rp0.vars.sandbox_image: '' is not an "
     "image reference"),
    ("gateway-takes-no-vars", None, "hosts.dell.vars.rng_tools: unknown key 'rng_tools'; "
     "hosts with roles gateway, registry take no vars"),
]


def inventory_with_vars(line: str | None) -> str:
    """hosts/lab.yaml with `line` as rp0's only var (or a pi var on the gateway when None)."""
    text = LAB.read_text()
    if line is None:
        return text.replace("  dell:\n", "  dell:\n    vars: {rng_tools: true}\n", 1)
    return text.replace("  rp0:\n", f"  rp0:\n    vars:\n      {line}\n", 1)


@pytest.mark.parametrize("line,message", [c[1:] for c in BAD_VARS],
                         ids=[c[0] for c in BAD_VARS])
def test_bad_vars_are_refused_with_the_inventory_naming_line_and_key(line, message):
    text = inventory_with_vars(line)
    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "hosts/site.yaml")
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 1, problems
    vars_line = next(i for i, ln in enumerate(text.splitlines(), 1)
                     if ln.strip().startswith("vars:"))
    where = vars_line if line is None else vars_line + 1  # flow mapping, or the next line
    assert problems[0].startswith(f"hosts/site.yaml:{where}: "), problems[0]
    assert message in problems[0]


def test_good_vars_pass_and_reach_the_settings():
    text = inventory_with_vars("kubernetes: {version: '1.28', repo: 'https://pkgs.example'}")
    inventory = parse_inventory(text, "hosts/site.yaml")
    settings = load_settings(inventory, inventory.hosts["rp0"])
    assert settings.kubernetes == ("https://pkgs.example", "1.28")


def test_default_settings_use_the_inventory_registry(inventory):
    settings = load_settings(inventory, inventory.hosts["rp0"])
    assert settings.sandbox_image == "192.168.10.2:5001/pause:3.9"
    assert settings.registry == "192.168.10.2:5001"
    assert settings.kubernetes is None and not settings.iptables_legacy


# -- swap steps ------------------------------------------------------------------------------

@pytest.mark.parametrize("swaps,commands", [
    (SWAPS_HEADER, []),
    (SWAPS_HEADER + "/var/swap file 102396 0 -2\n/dev/zram0 partition 1048572 0 100\n",
     ["swapoff /var/swap", "swapoff /dev/zram0"]),
    (SWAPS_HEADER + "/mnt/my\\040swap file 1024 0 -2\n", ["swapoff '/mnt/my swap'"]),
], ids=["no-swap-no-op", "file-and-zram-each-by-name", "space-in-name-quoted"])
def test_swapoff_acts_only_on_listed_areas(swaps, commands):
    changes = SwapOff().plan({"swaps": FactResult(0, swaps)})
    assert [a.command for c in changes for a in c.actions] == commands
    assert all("-a" not in cmd.split() for cmd in commands)


def _verify_facts(swaps=SWAPS_HEADER, fstab="proc /proc proc defaults 0 0\n",
                  packages="", units=NO_UNITS):
    return swap_rule_facts(swaps=swaps, fstab=fstab, packages=packages, units=units)


def test_verify_swap_off_passes_when_nothing_provides_swap():
    assert VerifySwapOff().plan(_verify_facts()) == []


@pytest.mark.parametrize("facts,named", [
    (_verify_facts(swaps=SWAPS_HEADER + "/swapfile file 2048 0 -2\n"), "active swap /swapfile"),
    (_verify_facts(fstab="/swapfile none swap sw 0 0\n"), "/etc/fstab line"),
    (_verify_facts(packages="zram-tools ii \n"), "package zram-tools"),
    (_verify_facts(units="dphys-swapfile enabled inactive\nzramswap none inactive\n"),
     "service dphys-swapfile"),
], ids=["active", "fstab", "zram-package", "dphys-unit-enabled"])
def test_verify_swap_off_names_what_still_provides_swap(facts, named):
    with pytest.raises(StepFailed, match=named):
        VerifySwapOff().plan(facts)


@pytest.mark.parametrize("dpkg,purged", [
    ("dphys-swapfile ii \n", ["dphys-swapfile"]),
    ("dphys-swapfile rc \n", ["dphys-swapfile"]),
    ("dphys-swapfile un \n", []),
    ("", []),
], ids=["installed", "config-files-left", "not-installed", "unknown"])
def test_purged(dpkg, purged):
    changes = Purged(["dphys-swapfile"]).plan({"dpkg": FactResult(0, dpkg)})
    assert [c.summary for c in changes] == ([f"purge {' '.join(purged)}"] if purged else [])


# -- Kubernetes apt repository ---------------------------------------------------------------

def test_kubernetes_repo_steps():
    base = "https://k8s-packages.example/"
    url = repo_url(base, "1.28")
    assert url == "https://k8s-packages.example/core:/stable:/v1.28/deb/"
    assert apt_list_prefix(url) == "k8s-packages.example_core:_stable:_v1.28_deb"
    steps = kubernetes_steps(base, "1.28")
    key, update, hold = (s for s in steps if isinstance(s, Command))
    assert key.unless == "test -s /etc/apt/keyrings/kubernetes-apt-keyring.gpg"
    assert "Release.key" in key.command and "gpg --dearmor" in key.command
    assert hold.command == "apt-mark hold kubelet kubeadm kubectl"
    assert hold.plan({"guard": FactResult(0, "")}) == []
    assert hold.plan({"guard": FactResult(1, "")})[0].summary.startswith("run: apt-mark hold")
    source = next(s for s in steps if s.name.endswith("kubernetes.list"))
    assert source.content == (f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                              f"{url} /\n")
    assert any(isinstance(s, Packages) and s.names == ["kubelet", "kubeadm", "kubectl"]
               for s in steps)


# -- reboot ----------------------------------------------------------------------------------

CGROUPS = "#subsys_name hierarchy num_cgroups enabled\nmemory 4 57 {}\n"


@pytest.mark.parametrize("enabled,required,summaries", [
    ("1", False, []),
    ("0", False, ["reboot: the running kernel has the memory cgroup disabled"]),
    ("1", True, ["reboot: /var/run/reboot-required (new kernel or libraries)"]),
], ids=["nothing-pending", "memory-cgroup-off", "reboot-required"])
def test_reboot_pending(enabled, required, summaries):
    facts = {"cgroups": FactResult(0, CGROUPS.format(enabled)),
             "controllers": FactResult(1, ""), "reboot_required": FactResult(0 if required else 1,
                                                                              "")}
    changes = RebootPending().plan(facts)
    assert [c.summary for c in changes] == summaries and all(c.reboot for c in changes)


class FakeSession:
    """Answers the batched fact script as a host whose /proc holds `files` (path: content;
    every other path missing), read by `cat` or by the batch's one `stat` and one `grep`;
    every other command answers nothing, exit 0."""

    def __init__(self, files):
        self.files = files

    def run(self, script, stdin=None):
        import shlex

        marker = script.split('printf "\\n', 1)[1].split(" ", 1)[0]
        body = ""
        for command in script.split("\n{ ")[1:]:
            words = shlex.split(command.split("\n}", 1)[0])
            paths = [p for p in words[words.index("--") + 1:] if p in self.files] if (
                "--" in words) else []
            if words[1:2] == ["stat"]:  # a pseudo-file's size: 0
                body += "".join(f"0 444 root root regular file|{p}\n" for p in paths)
            elif words[1:2] == ["grep"]:
                body += "".join(f"{p}:{n}:{line}\n" for p in paths
                                for n, line in enumerate(self.files[p].splitlines(), 1))
            elif words[:1] == ["cat"] and len(words) == 2:
                body += self.files.get(words[1], "")
            body += f"\n{marker} 0\n"
        return CommandResult(0, body, "")


@pytest.mark.parametrize("cgroups,cmdline,error,warning", [
    (CGROUPS.format(1), "root=x cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1",
     None, None),
    (CGROUPS.format(1), "root=x", None, "WARNING: after the reboot /proc/cmdline lacks"),
    (CGROUPS.format(0), "root=x", "did not read /boot/firmware/cmdline.txt", None),
    (CGROUPS.format(0), "cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1",
     "without memory cgroup support", None),
], ids=["all-good", "args-ignored-but-memory-on-warns", "memory-off-fails-naming-file",
        "memory-off-despite-args"])
def test_verify_after_reboot(cgroups, cmdline, error, warning):
    logs: list[str] = []
    ctx = SimpleNamespace(session=FakeSession({"/proc/cgroups": cgroups,
                                               "/proc/cmdline": cmdline}), log=logs.append)
    if error:
        with pytest.raises(StepFailed, match=error):
            verify_after_reboot(ctx, where="/boot/firmware/cmdline.txt")
        return
    verify_after_reboot(ctx, where="/boot/firmware/cmdline.txt")
    assert any(line.startswith(warning) for line in logs) if warning else len(logs) == 1


def test_no_reboot_option_reports_reboot_needed():
    ctx = SimpleNamespace(options={"no_reboot": True}, host=SimpleNamespace(name="rp0"))
    with pytest.raises(StepFailed, match="REBOOT NEEDED.*--no-reboot"):
        reboot_handler("/boot/firmware/cmdline.txt").command(ctx)


def test_board_that_does_not_come_back_is_unreachable():
    class DeadConnector:
        def forget(self, host):
            pass

        def session(self, host):
            raise HostUnreachable("cannot connect to 10.0.0.9:22: timed out")

    ctx = SimpleNamespace(connector=DeadConnector(), host=SimpleNamespace(name="rp0"))
    with pytest.raises(HostUnreachable, match="rp0 did not come back within 0.2s.*timed out"):
        wait_for_new_boot(ctx, "old-boot", timeout=0.2, poll=0.05)


def test_board_on_the_vlan_gets_its_vlan_address_step(inventory):
    ctx, _ = make_ctx(inventory, "rp0")
    names = step_names(build_plan(ctx))
    vlan = [n for n in names if "eth0.100" in n]
    assert vlan and "192.168.10.3/25" in " ".join(vlan)
