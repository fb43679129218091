"""pi-prep.flash's pure parts: refusals from device facts, sizes, image flavour, public key
checks, the boot files, the MBR edit of capture."""

from __future__ import annotations

import struct
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface

import pytest
import yaml

from runbooks.pi_prep.flash.bootprep import (
    Board,
    PrepError,
    VlanConfig,
    boot_files,
    check_public_key,
    flavour,
)
from runbooks.pi_prep.flash.device import Device, Partition
from runbooks.pi_prep.flash.partitions import PartitionError, mbr_with_size
from runbooks.pi_prep.flash.refusals import parse_size, refusals

GB = 10**9
CARD = Device(path="/dev/sdb", name="sdb", size=32 * GB, whole_disk=True, removable=True,
              transport="usb", model="Generic STORAGE DEVICE",
              partitions=(Partition("sdb1", 512 * 10**6), Partition("sdb2", 31 * GB)))
LOOP = replace(CARD, path="/dev/loop7", name="loop7", removable=False, transport="loop",
               partitions=())

REFUSALS = [
    ("a card", CARD, 4 * GB, (), []),
    ("an sd card in the mmc slot (never marked removable)",
     replace(CARD, transport="mmc", name="mmcblk0", removable=False, mmc_type="SD"),
     4 * GB, (), []),
    ("built-in emmc", replace(CARD, transport="mmc", name="mmcblk0", removable=False,
                              mmc_type="MMC"), 4 * GB, (), ["MMC storage, not an SD card"]),
    ("a partition", replace(CARD, whole_disk=False, name="sdb1"), 1, (), ["is a partition"]),
    ("the running system", replace(CARD, mounts=(("sdb2", "/"),), system_mounts=("/",)),
     1, (), ["holds the running system"]),
    ("swap", replace(CARD, swaps=("/dev/sdb2",)), 1, (), ["in use as swap"]),
    ("a mounted card", replace(CARD, mounts=(("sdb1", "/media/op/bootfs"),)), 1, (),
     ["has mounted filesystems (sdb1 on /media/op/bootfs)"]),
    ("a sata disk", replace(CARD, transport="ata", removable=False), 1, (),
     ["not USB or MMC", "not removable"]),
    ("a fixed usb disk", replace(CARD, removable=False), 1, (), ["not removable"]),
    ("a read-only card", replace(CARD, read_only=True), 1, (), ["read-only"]),
    ("a big disk", replace(CARD, size=512 * GB), 1, (), ["larger than the limit"]),
    ("no medium", replace(CARD, size=0), 1, (), ["no medium"]),
    ("a small card", CARD, 64 * GB, (), ["use a bigger card"]),
    ("an unknown image size", CARD, None, (), []),
    ("a loop device", LOOP, 1, (), ["not USB or MMC", "not removable"]),
    ("an allowed loop device", LOOP, 1, ("/dev/loop7",), []),
    ("an allow list naming another loop", LOOP, 1, ("/dev/loop1",), ["not USB", "not rem"]),
    ("an allow list cannot allow a disk", replace(CARD, transport="ata", removable=False), 1,
     ("/dev/sdb",), ["not USB or MMC", "not removable"]),
    ("an allowed loop still refused when mounted",
     replace(LOOP, mounts=(("loop7", "/mnt"),)), 1, ("/dev/loop7",), ["mounted"]),
]


@pytest.mark.parametrize("device,image_size,allowed,expected",
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(device, image_size, allowed, expected):
    reasons = refusals(device, image_size, allowed_loops=allowed)
    assert len(reasons) == len(expected), reasons
    for reason, part in zip(reasons, expected, strict=True):
        assert part in reason


def test_every_refusal_says_what_to_do():
    worst = replace(CARD, whole_disk=False, transport="ata", removable=False, read_only=True,
                    size=512 * GB, mounts=(("sdb1", "/mnt"),), swaps=("/dev/sdb2",))
    reasons = refusals(worst, 1024 * GB)
    assert len(reasons) == 8
    for reason in reasons:
        assert any(hint in reason for hint in ("give", "unmount", "check", "slide",
                                               "--max-size", "use a bigger")), reason


@pytest.mark.parametrize("text,size", [("256GB", 256 * GB), ("64G", 64 * GB), ("512MB", 512 *
                         10**6), ("1.5T", 1500 * GB), ("1000", 1000)],
                         ids=["GB", "G", "MB", "fraction", "bytes"])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "0", "-5GB", "12 PB"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="256GB"):
        parse_size(text)


BOOKWORM = 'ID=raspbian\nVERSION_ID="12"\nPRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\n'
FLAVOURS = [
    ("ubuntu seed", ["cmdline.txt", "user-data", "meta-data"], None, "cloud-init"),
    ("raspios bookworm", ["cmdline.txt", "config.txt"], BOOKWORM, "raspios"),
    ("debian trixie", ["cmdline.txt"], 'ID=debian\nVERSION_ID="13"\n', "raspios"),
    ("raspios with cloud-init", ["cmdline.txt", "network-config"], BOOKWORM, "cloud-init"),
]


@pytest.mark.parametrize("names,release,kind", [f[1:] for f in FLAVOURS],
                         ids=[f[0] for f in FLAVOURS])
def test_flavour(names, release, kind):
    assert flavour(names, release) == kind


@pytest.mark.parametrize("names,release,message", [
    (["config.txt"], BOOKWORM, "no cmdline.txt"),
    (["cmdline.txt"], 'ID=raspbian\nVERSION_ID="11"\nPRETTY_NAME="Raspbian 11 (bullseye)"\n',
     "Raspbian 11 (bullseye)"),
    (["cmdline.txt"], None, "no /etc/os-release"),
], ids=["not a pi image", "bullseye", "no os-release"])
def test_flavour_refuses(names, release, message):
    with pytest.raises(PrepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        flavour(names, release)


@pytest.mark.parametrize("text,message", [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", "private key"),
    ("", "not one OpenSSH public key"),
    ("ssh-ed25519 AAAA a\nssh-rsa AAAA b\n", "not one OpenSSH public key"),
    ("hello world", "not one OpenSSH public key"),
], ids=["private", "empty", "two keys", "junk"])
def test_public_key_refused(text, message):
    with pytest.raises(PrepError, match=message):
        check_public_key(text, "k.pub")


def test_public_key_accepted():
    assert check_public_key("\nssh-ed25519 AAAAC3Nz op@laptop\n", "k") == \
        "ssh-ed25519 AAAAC3Nz op@laptop"


BOARD = Board("rp0", "pi", "ssh-ed25519 AAAAC3Nz op@laptop", None,
              VlanConfig("eth0.100", "eth0", 100, IPv4Interface("192.168.10.3/25"),
                         IPv4Address("192.168.10.2"), (IPv4Address("192.168.10.2"),)),
              "site lab (lab.yaml)")
CMDLINE = "console=tty1 root=PARTUUID=abc-02 rootwait cgroup_disable=memory\n"


def test_raspios_files_merge_cmdline_once_and_quote_the_hash():
    files = boot_files(replace(BOARD, password_hash="$6$s$x/y.z"), "raspios", CMDLINE)
    tokens = files["cmdline.txt"].decode().split()
    assert "cgroup_disable=memory" not in tokens
    assert tokens[:3] == ["console=tty1", "root=PARTUUID=abc-02", "rootwait"]
    again = boot_files(BOARD, "raspios", files["cmdline.txt"].decode())
    assert again["cmdline.txt"] == files["cmdline.txt"]
    assert "HASH='$6$s$x/y.z'\n" in files["firstrun.sh"].decode()
    assert set(files) == {"ssh", "firstrun.sh", "cmdline.txt", "greenroom/authorized_keys",
                          "greenroom/eth0.100.nmconnection"}


def test_no_vlan_address_means_no_network_file():
    files = boot_files(replace(BOARD, vlan=None), "cloud-init", CMDLINE)
    assert "network-config" not in files
    assert "NetworkManager" not in boot_files(replace(BOARD, vlan=None), "raspios",
                                              CMDLINE)["firstrun.sh"].decode()


def test_cloud_init_root_user_keeps_root_login_by_key():
    config = yaml.safe_load(boot_files(replace(BOARD, user="root"), "cloud-init",
                                       CMDLINE)["user-data"])
    assert config["disable_root"] is False and "sudo" not in config["users"][0]


@pytest.mark.parametrize("cmdline,message", [(None, "does not exist"), ("\n", "empty"),
                                             ("a\nb\n", "2 lines")],
                         ids=["missing", "empty", "two lines"])
def test_a_broken_cmdline_is_refused_with_its_file(cmdline, message):
    with pytest.raises(PrepError, match=f"cmdline.txt in the image: .*{message}"):
        boot_files(BOARD, "raspios", cmdline)


def test_mbr_with_size_changes_only_that_entry():
    mbr = bytearray(512)
    mbr[510:512] = b"\x55\xaa"
    for index, (start, size) in enumerate([(8192, 1000), (9192, 50000)]):
        struct.pack_into("<II", mbr, 446 + 16 * index + 8, start, size)
    out = mbr_with_size(bytes(mbr), 2, 777)
    assert struct.unpack_from("<II", out, 446 + 16 + 8) == (9192, 777)
    assert out[:446 + 16] == bytes(mbr[:446 + 16]) and len(out) == 512
    with pytest.raises(PartitionError):
        mbr_with_size(bytes(512), 1, 5)
