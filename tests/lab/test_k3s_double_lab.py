"""The k3s double on the virtual lab: lab.up serves the release site on loopback, and the
double runs in guests as systemd services (server on rp0, agents on rp1/lp0 over the VLAN),
with an agent given a wrong token refused. What other runbooks (metallb, demo) build on."""

from __future__ import annotations

import hashlib
import urllib.request

import pytest

from runbooks.lab import release
from tests.support.waiting import wait_until

pytestmark = pytest.mark.lab

VERSION = "v1.34.3+k3s1"
UNIT = "[Service]\nType=notify\nEnvironmentFile=-/etc/default/{name}\nExecStart={cmd}\n"


def sh(lab, host: str, command: str, stdin: str | None = None) -> str:
    done = lab.exec(host, command, stdin=stdin)
    assert done.returncode == 0, f"{host}: {command}: {done.stdout}{done.stderr}"
    return done.stdout


def install(lab, host: str, data: bytes) -> None:
    sh(lab, host, "cat > /usr/local/bin/k3s && chmod 755 /usr/local/bin/k3s && "
                  "ln -sf k3s /usr/local/bin/kubectl", stdin=data.decode())


def service(lab, host: str, name: str, cmd: str, env: str = "") -> None:
    sh(lab, host, f"cat > /etc/default/{name} && chmod 600 /etc/default/{name}", stdin=env)
    sh(lab, host, f"cat > /run/systemd/system/{name}.service && systemctl daemon-reload && "
                  f"systemctl start --no-block {name}", stdin=UNIT.format(name=name, cmd=cmd))


def test_release_site_served_by_lab_up(lab):
    url = f"{release.URL}/{VERSION.replace('+', '%2B')}"
    with urllib.request.urlopen(f"{url}/sha256sum-arm64.txt", timeout=10) as resp:
        sums = dict(reversed(line.split()) for line in resp.read().decode().splitlines())
    with urllib.request.urlopen(f"{url}/k3s-arm64", timeout=10) as resp:
        assert hashlib.sha256(resp.read()).hexdigest() == sums["k3s-arm64"]
    quoted = VERSION.replace("+", "%2B")
    assert f"GET /{quoted}/k3s-arm64 200" in (lab.state_dir / "release.log").read_text()


def test_double_server_and_agents_in_guests(lab):
    for host in ("rp0", "rp1", "lp0"):
        lab.reset(host)
    data = release.asset(VERSION, "k3s-arm64")
    assert data is not None
    for host in ("rp0", "rp1", "lp0"):
        install(lab, host, data)
    service(lab, "rp0", "k3s", "/usr/local/bin/k3s server --node-ip 192.168.10.3 "
                               "--disable traefik --disable servicelb")
    assert wait_until(lambda: lab.exec("rp0", "systemctl is-active k3s").stdout.strip()
                      == "active", 30), sh(lab, "rp0", "journalctl -u k3s --no-pager | tail")
    token = sh(lab, "rp0", "cat /var/lib/rancher/k3s/server/node-token").strip()
    service(lab, "rp1", "k3s-agent", "/usr/local/bin/k3s agent --node-ip 192.168.10.4",
            env=f"K3S_URL=https://192.168.10.3:6443\nK3S_TOKEN={token}\n")
    wrong = token.rsplit(":", 1)[0] + ":not-the-password"
    service(lab, "lp0", "k3s-agent", "/usr/local/bin/k3s agent",
            env=f"K3S_URL=https://192.168.10.3:6443\nK3S_TOKEN={wrong}\n")
    waited = lab.exec("rp0", "k3s kubectl wait --for=condition=Ready node/rp0 node/rp1 "
                             "--timeout=30s")
    assert waited.returncode == 0, waited.stderr
    nodes = sh(lab, "rp0", "kubectl get nodes -o jsonpath='{.items[*].metadata.name}'")
    assert nodes.split() == ["rp0", "rp1"]
    # the binary is a launcher; the double is the module lab.up installed with its bytecode:
    # kubectl loads that bytecode (the guest's own python3, as greenroom's SSH calls run it)
    cached = sh(lab, "rp0", "python3 -c 'import importlib.util as u; print(u.cache_from_"
                            "source(\"/usr/local/lib/greenroom-double/k3s.py\"))'").strip()
    assert lab.exec("rp0", f"test -s {cached}").returncode == 0, cached
    loaded = lab.exec("rp0", "python3 -v /usr/local/bin/kubectl get nodes "
                             "-o jsonpath='{.items[*].metadata.name}'")
    assert loaded.returncode == 0 and loaded.stdout.split() == ["rp0", "rp1"], \
        loaded.stderr[-1500:]
    assert f"code object from '{cached}'" in loaded.stderr
    assert wait_until(lambda: "401 Unauthorized" in lab.exec(
        "lp0", "journalctl -u k3s-agent --no-pager").stdout, 20)
    assert lab.exec("lp0", "systemctl is-active k3s-agent").stdout.strip() == "activating"
    assert "not-the-password" not in lab.exec("rp0", "journalctl -u k3s --no-pager").stdout
    for host in ("rp0", "rp1", "lp0"):
        lab.reset(host)
