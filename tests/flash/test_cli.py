"""`inv pi-prep.flash` and `inv pi-prep.capture` as the operator runs them: refusals on real
devices exit 2 with the reasons, no option reaches the tests' loop-device allow list, the
password becomes a hash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.pi_prep.flash.cli import PASSWORD_ENV, password_hash
from tests.flash.conftest import PUBLIC_KEY, REPO
from tests.flash.imagekit import MiB, build_image


def inv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120)


@pytest.fixture
def key(tmp_path: Path) -> str:
    path = tmp_path / "id_ed25519.pub"
    path.write_text(PUBLIC_KEY + "\n")
    return str(path)


def _root_source() -> str | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[4] == "/" and fields[sep + 2].startswith("/dev/"):
            return fields[sep + 2]
    return None


def test_flash_refuses_the_root_disk_even_with_yes(tmp_path, key):
    disk = _root_source()
    if disk is None:
        pytest.skip("/ is not on a block device here")
    image = build_image(tmp_path / "img.img", size=48 * MiB)
    out = inv("pi-prep.flash", "-i", "hosts/demo.yaml", "--host", "rp0", "--image", str(image),
              "--device", disk, "--key", key, "--yes")
    assert out.returncode == 2, out.stderr
    assert f"refusing to write {disk}" in out.stderr and "running system" in out.stderr


def test_the_cli_cannot_allow_a_loop_device(tmp_path, key, loops):
    help_text = inv("--help", "pi-prep.flash").stdout + inv("--help", "pi-prep.capture").stdout
    assert "loop" not in help_text.lower() and "allow" not in help_text.lower()
    image = build_image(tmp_path / "img.img", size=48 * MiB)
    device = loops(64 * MiB)
    out = inv("pi-prep.flash", "-i", "hosts/demo.yaml", "--host", "rp0", "--image", str(image),
              "--device", device, "--key", key, "--yes")
    assert out.returncode == 2 and "not USB or MMC" in out.stderr
    assert "not removable" in out.stderr
    with open(device, "rb") as f:
        assert f.read(MiB) == bytes(MiB)
    captured = tmp_path / "c.img.xz"
    out = inv("pi-prep.capture", "--device", device, "--image", str(captured))
    assert out.returncode == 2 and "refusing to read" in out.stderr
    assert not captured.exists()


@pytest.mark.parametrize("args,message", [
    (["--host", "rp0", "--device", "/dev/null"], "give --host, --image and --device"),
    (["--host", "nope", "--image", "x.img", "--device", "/dev/null"], "neither a host"),
    (["--host", "rp0", "--image", "missing.img", "--device", "/dev/null"], "no such file"),
    (["--host", "rp0", "--image", "{image}", "--device", "/dev/null"], "not a block device"),
    (["--host", "rp0", "--image", "{image}", "--device", "/dev/sdz9"], "does not exist"),
    (["--host", "rp0", "--image", "{image}", "--device", "/dev/null", "--max-size", "lots"],
     "not a size"),
], ids=["missing option", "unknown host", "no image", "not a block device", "no device",
        "bad max size"])
def test_flash_bad_input_exits_2_with_what_to_do(args, message, tmp_path, key):
    image = tmp_path / "x.img"
    image.write_bytes(bytes(4096))
    args = [a.replace("{image}", str(image)) for a in args]
    out = inv("pi-prep.flash", "-i", "hosts/demo.yaml", "--key", key, *args)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_the_password_is_hashed_and_never_shown(monkeypatch, capsys):
    monkeypatch.setenv(PASSWORD_ENV, "correct horse battery")
    hashed = password_hash()
    assert hashed.startswith("$6$") and "horse" not in hashed
    check = subprocess.run(["openssl", "passwd", "-6", "-salt", hashed.split("$")[2],
                            "-stdin"], input="correct horse battery\n", text=True,
                           capture_output=True, check=True)
    assert check.stdout.strip() == hashed
    assert "horse" not in capsys.readouterr().out


def test_openssl_is_not_handed_the_password_in_its_environment(monkeypatch):
    """The secrets audit's finding: openssl inherited GREENROOM_FLASH_PASSWORD."""
    monkeypatch.setenv(PASSWORD_ENV, "correct horse battery")
    seen: list[dict[str, str]] = []
    real = subprocess.run

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003
        seen.append(dict(kwargs.get("env") or os.environ))
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    assert password_hash().startswith("$6$")
    assert len(seen) == 1 and PASSWORD_ENV not in seen[0]
    assert "correct horse battery" not in "".join(seen[0].values())
    assert seen[0].get("PATH") == os.environ.get("PATH")
