"""`flash` through its real code path onto loop devices (allowed by the test-only list),
then the card read back with mtools and debugfs: image bytes, SSH, user and key, hostname,
network configuration, cgroup arguments."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
import xxhash
import yaml

from runbooks.pi_prep.flash.run import NotConfirmed, NotPrepared, flash
from tests.flash.conftest import PUBLIC_KEY
from tests.flash.imagekit import BOOT_START, MiB, build_image, ext4_read, fat_read

CGROUPS = ("cgroup_enable=cpuset", "cgroup_enable=memory", "cgroup_memory=1")


def _sha(path: str | Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left:
            chunk = f.read(min(left, 4 * MiB))
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _compress(image: Path, kind: str) -> Path:
    if kind == "raw":
        return image
    if kind == "xz":
        subprocess.run(["xz", "-k", "-T0", "-1", str(image)], check=True)
        return image.with_name(image.name + ".xz")
    if kind == "zst":
        subprocess.run(["zstd", "-q", "-k", str(image)], check=True)
        return image.with_name(image.name + ".zst")
    target = image.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.write(image, "2023-12-05-raspios-bookworm-arm64-lite.img")
    return target


@pytest.mark.parametrize("kind", ["raw", "xz", "zst", "zip"])
def test_every_image_format_is_written_verified_and_prepared(kind, tmp_path, loops, board):
    image = build_image(tmp_path / "raspios.img", "raspios", size=64 * MiB)
    expected = xxhash.xxh3_128(image.read_bytes()).hexdigest()
    source = _compress(image, kind)
    device = loops(128 * MiB)
    result = flash(str(source), device, board, yes=True, allowed_loops={device},
                   out=lambda _: None, show_progress=False)
    assert result is not None and result.digest == expected and result.size == 64 * MiB
    assert result.flavour == "raspios"
    assert fat_read(device, "ssh") == ""


def test_raspios_boot_partition_is_prepared_for_the_inventory_host(tmp_path, loops, board):
    image = build_image(tmp_path / "raspios.img", "raspios")
    device = loops(128 * MiB)
    flash(str(image), device, board, yes=True, allowed_loops={device}, out=lambda _: None,
          show_progress=False)
    cmdline = fat_read(device, "cmdline.txt")
    assert cmdline is not None and cmdline.count("\n") == 1
    tokens = cmdline.split()
    assert tokens[:6] == ["console=serial0,115200", "console=tty1", "root=PARTUUID=4e639091-02",
                          "rootfstype=ext4", "fsck.repair=yes", "rootwait"]
    for arg in (*CGROUPS, "systemd.run=/boot/firmware/firstrun.sh",
                "systemd.unit=kernel-command-line.target"):
        assert tokens.count(arg) == 1, arg
    assert fat_read(device, "ssh") == ""
    assert fat_read(device, "greenroom/authorized_keys") == PUBLIC_KEY + "\n"
    firstrun = fat_read(device, "firstrun.sh") or ""
    assert "NEWUSER=ubuntu\n" in firstrun and "HASH='!'\n" in firstrun
    assert "echo rp0 >/etc/hostname" in firstrun
    assert "/etc/NetworkManager/system-connections/eth0.100.nmconnection" in firstrun
    subprocess.run(["bash", "-n"], input=firstrun.encode(), check=True)
    keyfile = fat_read(device, "greenroom/eth0.100.nmconnection") or ""
    for line in ("type=vlan", "interface-name=eth0.100", "id=100", "parent=eth0",
                 "method=manual", "address1=192.168.10.3/25,192.168.10.2", "dns=8.8.8.8;8.8.4.4;"):
        assert line in keyfile.splitlines(), line
    # the root filesystem is the image's, untouched
    assert ext4_read(device, "/etc/hostname", BOOT_START + 32 * MiB) == "raspberrypi\n"


def test_ubuntu_gets_cloud_init_user_network_and_a_fresh_instance(tmp_path, loops, board):
    image = build_image(tmp_path / "ubuntu.img", "ubuntu")
    device = loops(128 * MiB)
    result = flash(str(image), device, board, yes=True, allowed_loops={device},
                   out=lambda _: None, show_progress=False)
    assert result is not None and result.flavour == "cloud-init"
    user_data = fat_read(device, "user-data") or ""
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    assert config["hostname"] == "rp0" and config["ssh_pwauth"] is False
    [user] = config["users"]
    assert user["name"] == "ubuntu" and user["ssh_authorized_keys"] == [PUBLIC_KEY]
    assert user["lock_passwd"] is True and "passwd" not in user
    network = yaml.safe_load(fat_read(device, "network-config") or "")
    assert network["vlans"]["eth0.100"] == {
        "id": 100, "link": "eth0", "addresses": ["192.168.10.3/25"],
        "routes": [{"to": "default", "via": "192.168.10.2"}],
        "nameservers": {"addresses": ["8.8.8.8", "8.8.4.4"]}}
    assert (fat_read(device, "meta-data") or "").startswith("instance-id: greenroom-rp0-")
    tokens = (fat_read(device, "cmdline.txt") or "").split()
    assert all(tokens.count(arg) == 1 for arg in CGROUPS) and "root=LABEL=writable" in tokens
    assert not any(t.startswith("systemd.run") for t in tokens)


def test_a_password_is_only_ever_a_hash_on_the_card(tmp_path, loops, board):
    from dataclasses import replace

    hashed = "$6$saltsalt$" + "a" * 86
    image = build_image(tmp_path / "ubuntu.img", "ubuntu", size=64 * MiB)
    device = loops(128 * MiB)
    flash(str(image), device, replace(board, password_hash=hashed), yes=True,
          allowed_loops={device}, out=lambda _: None, show_progress=False)
    [user] = yaml.safe_load(fat_read(device, "user-data") or "")["users"]
    assert user["passwd"] == hashed and user["lock_passwd"] is False


def test_a_wrong_confirmation_writes_nothing(tmp_path, loops, board):
    image = build_image(tmp_path / "raspios.img", size=48 * MiB)
    device = loops(64 * MiB)
    prompts: list[str] = []
    with pytest.raises(NotConfirmed, match="nothing was written"):
        flash(str(image), device, board, ask=lambda p: prompts.append(p) or "sda",
              allowed_loops={device}, out=lambda _: None, show_progress=False)
    assert "will be destroyed" in prompts[0] and Path(device).name in prompts[0]
    assert _sha(device, 64 * MiB) == hashlib.sha256(bytes(64 * MiB)).hexdigest()


def test_typing_the_name_confirms(tmp_path, loops, board):
    image = build_image(tmp_path / "raspios.img", size=48 * MiB)
    device = loops(64 * MiB)
    result = flash(str(image), device, board, ask=lambda _: Path(device).name,
                   allowed_loops={device}, out=lambda _: None, show_progress=False)
    assert result is not None and result.size == 48 * MiB


def test_check_shows_everything_and_writes_nothing(tmp_path, loops, board):
    image = build_image(tmp_path / "raspios.img", size=48 * MiB)
    device = loops(64 * MiB)
    lines: list[str] = []
    assert flash(str(image), device, board, check=True, allowed_loops={device},
                 out=lines.append, show_progress=False) is None
    text = "\n".join(lines)
    assert "raw, 50.3 MB" in text and "67.1 MB, loop" in text and "nothing written" in text
    assert "rp0, user ubuntu" in text and "eth0.100 192.168.10.3/25" in text
    assert _sha(device, 64 * MiB) == hashlib.sha256(bytes(64 * MiB)).hexdigest()


def test_an_image_older_than_bookworm_is_written_but_not_prepared(tmp_path, loops, board):
    image = build_image(tmp_path / "bullseye.img", "bullseye", size=48 * MiB)
    device = loops(64 * MiB)
    with pytest.raises(NotPrepared, match="written and verified, but .*bookworm"):
        flash(str(image), device, board, yes=True, allowed_loops={device},
              out=lambda _: None, show_progress=False)


def test_no_board_writes_and_verifies_only(tmp_path, loops):
    image = build_image(tmp_path / "raspios.img", size=48 * MiB)
    device = loops(64 * MiB)
    result = flash(str(image), device, None, yes=True, allowed_loops={device},
                   out=lambda _: None, show_progress=False)
    assert result is not None and result.flavour is None
    assert _sha(device, 48 * MiB) == _sha(image, 48 * MiB)
