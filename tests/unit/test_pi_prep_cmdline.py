"""pi-prep: kernel command line, GRUB defaults, fstab and config.txt merges (table-driven)."""

from __future__ import annotations

import pytest

from runbooks.pi_prep.cmdline import merge_cmdline, merge_cmdline_txt
from runbooks.pi_prep.configtxt import merge_config_txt
from runbooks.pi_prep.fstab import comment_swap_lines
from runbooks.pi_prep.grub import merge_grub_default

PI = "console=serial0,115200 console=tty1 root=PARTUUID=abc-02 rootfstype=ext4 rootwait"
CG = "cgroup_enable=cpuset cgroup_enable=memory cgroup_memory=1"

CMDLINE_CASES = [
    ("fresh-pi-appends-at-end", PI, f"{PI} {CG}"),
    ("already-converged-no-op", f"{PI} {CG}", f"{PI} {CG}"),
    ("args-at-start-kept-in-place", f"{CG} {PI}", f"{CG} {PI}"),
    ("memory-present-twice-deduplicated",
     f"cgroup_enable=memory {PI} cgroup_enable=memory",
     f"cgroup_enable=memory {PI} cgroup_enable=cpuset cgroup_memory=1"),
    ("cgroup_memory=0-fixed-in-place", f"cgroup_memory=0 {PI}",
     f"cgroup_memory=1 {PI} cgroup_enable=cpuset cgroup_enable=memory"),
    ("cgroup_memory-twice-first-kept", f"cgroup_memory=1 {PI} cgroup_memory=0",
     f"cgroup_memory=1 {PI} cgroup_enable=cpuset cgroup_enable=memory"),
    ("misspelt-cgroups_enable-rewritten-in-place", f"{PI} cgroups_enable=memory",
     f"{PI} cgroup_enable=memory cgroup_enable=cpuset cgroup_memory=1"),
    ("misspelt-dash-and-case", f"Cgroup-Enable=Memory {PI}",
     f"cgroup_enable=memory {PI} cgroup_enable=cpuset cgroup_memory=1"),
    ("cgroup_disable=memory-dropped", f"{PI} cgroup_disable=memory",
     f"{PI} {CG}"),
    ("cgroup_disable-keeps-other-controllers", f"{PI} cgroup_disable=memory,hugetlb",
     f"{PI} cgroup_disable=hugetlb {CG}"),
    ("comma-list-counts-as-present", f"{PI} cgroup_enable=cpuset,memory cgroup_memory=1",
     f"{PI} cgroup_enable=cpuset,memory cgroup_memory=1"),
    ("init-arguments-after-double-dash-untouched", f"{PI} -- single cgroup_memory=0",
     f"{PI} {CG} -- single cgroup_memory=0"),
    ("other-cgroup_enable-kept", f"cgroup_enable=hugetlb {PI}",
     f"cgroup_enable=hugetlb {PI} {CG}"),
]


@pytest.mark.parametrize("before,after", [c[1:] for c in CMDLINE_CASES],
                         ids=[c[0] for c in CMDLINE_CASES])
def test_merge_cmdline(before, after):
    merged = merge_cmdline(before.split())
    assert " ".join(merged) == after
    assert merge_cmdline(merged) == merged  # idempotent


def test_cmdline_txt_converged_file_is_returned_byte_for_byte():
    odd = f"{PI}  {CG}"  # two spaces, no newline: still converged, left alone
    assert merge_cmdline_txt(odd) is odd


def test_cmdline_txt_change_writes_one_line():
    assert merge_cmdline_txt(PI + "\n\n") == f"{PI} {CG}\n"


@pytest.mark.parametrize("content,message", [
    (f"{PI}\ncgroup_enable=memory\n", "2 lines"),
    ("", "empty"),
    ("  \n", "empty"),
    (None, "does not exist"),
], ids=["multi-line-refused", "empty-refused", "blank-refused", "missing-refused"])
def test_cmdline_txt_refuses(content, message):
    with pytest.raises(ValueError, match=message):
        merge_cmdline_txt(content)


GRUB = "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
GRUB_CASES = [
    ("empty-value", GRUB + 'GRUB_CMDLINE_LINUX=""\n', GRUB + f'GRUB_CMDLINE_LINUX="{CG}"\n'),
    ("keeps-existing-args", GRUB + 'GRUB_CMDLINE_LINUX="console=ttyAML0,115200"\n',
     GRUB + f'GRUB_CMDLINE_LINUX="console=ttyAML0,115200 {CG}"\n'),
    ("single-quotes-kept", "GRUB_CMDLINE_LINUX='quiet'\n", f"GRUB_CMDLINE_LINUX='quiet {CG}'\n"),
    ("unquoted-word", "GRUB_CMDLINE_LINUX=quiet\n", f'GRUB_CMDLINE_LINUX="quiet {CG}"\n'),
    ("no-op-when-present", f'GRUB_CMDLINE_LINUX="{CG}"\n', f'GRUB_CMDLINE_LINUX="{CG}"\n'),
    ("missing-line-appended", GRUB, GRUB + f'GRUB_CMDLINE_LINUX="{CG}"\n'),
    ("last-assignment-wins", 'GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX="b"\n',
     f'GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX="b {CG}"\n'),
    ("commented-line-ignored", '#GRUB_CMDLINE_LINUX="x"\n',
     f'#GRUB_CMDLINE_LINUX="x"\nGRUB_CMDLINE_LINUX="{CG}"\n'),
    ("misspelt-fixed", 'GRUB_CMDLINE_LINUX="cgroup_memory=0 cgroups_enable=memory"\n',
     'GRUB_CMDLINE_LINUX="cgroup_memory=1 cgroup_enable=memory cgroup_enable=cpuset"\n'),
    ("default-line-untouched", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n',
     f'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="{CG}"\n'),
]


@pytest.mark.parametrize("before,after", [c[1:] for c in GRUB_CASES],
                         ids=[c[0] for c in GRUB_CASES])
def test_merge_grub_default(before, after):
    assert merge_grub_default(before) == after
    assert merge_grub_default(after) == after


@pytest.mark.parametrize("content,message", [
    ('GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX quiet"\n', "shell expansion"),
    ('GRUB_CMDLINE_LINUX="quiet\n', "unclosed quote"),
    ("GRUB_CMDLINE_LINUX=a b\n", "spaces but no quotes"),
    (None, "does not exist"),
], ids=["expansion-refused", "unclosed-quote-refused", "unquoted-spaces-refused", "missing"])
def test_grub_refuses(content, message):
    with pytest.raises(ValueError, match=message):
        merge_grub_default(content)


FSTAB_CASES = [
    ("swap-file", "proc /proc proc defaults 0 0\n/swapfile none swap sw 0 0\n",
     "proc /proc proc defaults 0 0\n#/swapfile none swap sw 0 0\n"),
    ("partition-by-uuid-with-tabs", "UUID=1234-ab\tnone\tswap\tsw\t0\t0\n",
     "#UUID=1234-ab\tnone\tswap\tsw\t0\t0\n"),
    ("device-partition", "/dev/mmcblk0p3 none swap defaults 0 0\n",
     "#/dev/mmcblk0p3 none swap defaults 0 0\n"),
    ("already-commented-no-op", "# /swapfile none swap sw 0 0\n",
     "# /swapfile none swap sw 0 0\n"),
    ("swap-word-elsewhere-untouched", "/dev/sda1 /swap ext4 defaults 0 2\n",
     "/dev/sda1 /swap ext4 defaults 0 2\n"),
    ("no-trailing-newline", "/var/swap none swap sw 0 0", "#/var/swap none swap sw 0 0"),
    ("empty", "", ""),
]


@pytest.mark.parametrize("before,after", [c[1:] for c in FSTAB_CASES],
                         ids=[c[0] for c in FSTAB_CASES])
def test_comment_swap_lines(before, after):
    assert comment_swap_lines(before) == after
    assert comment_swap_lines(after) == after


def test_missing_fstab_stays_missing():
    assert comment_swap_lines(None) is None


SEEDED = "dtparam=audio=on\narm_boost=1\n\n[cm4]\notg_mode=1\n\n[all]\n"
CONFIG_CASES = [
    ("pi-os-file-ends-in-all", SEEDED, {"arm_freq": "2000"}, (),
     SEEDED + "arm_freq=2000\n"),
    ("conditional-last-section-gets-all", "[cm4]\notg_mode=1\n", {"gpu_mem": "16"}, (),
     "[cm4]\notg_mode=1\n\n[all]\ngpu_mem=16\n"),
    ("no-sections", "arm_64bit=1\n", {"over_voltage": "6"}, ("disable-wifi",),
     "arm_64bit=1\nover_voltage=6\ndtoverlay=disable-wifi\n"),
    ("value-replaced-duplicates-dropped", "[all]\narm_freq=1800\narm_freq=1500\n",
     {"arm_freq": "2000"}, (), "[all]\narm_freq=2000\n"),
    ("no-op", "[all]\narm_freq=2000\ndtoverlay=disable-bt\n", {"arm_freq": "2000"},
     ("disable-bt",), "[all]\narm_freq=2000\ndtoverlay=disable-bt\n"),
]


@pytest.mark.parametrize("before,settings,overlays,after", [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_merge_config_txt(before, settings, overlays, after):
    assert merge_config_txt(before, settings, overlays) == after
    assert merge_config_txt(after, settings, overlays) == after
