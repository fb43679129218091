"""The lab's microk8s doubles (`snap` for the microk8s snap, `microk8s`): see microk8s.py."""

from __future__ import annotations

import os
from pathlib import Path

from runbooks.lab.doubles.k3s import MODULE as K3S_MODULE
from runbooks.lab.doubles.k3s import install_module as install_k3s_module

HERE = Path(__file__).resolve().parent
LIB = "usr/local/lib/greenroom-double/microk8s.py"
KUBE = K3S_MODULE  # the k3s double: microk8s kubectl runs it


def install(root: Path) -> None:
    """Put the `snap` double into a guest's root (/usr/local/bin/snap); `snap install
    microk8s` then adds /usr/local/bin/microk8s as the real one adds /snap/bin/microk8s."""
    lib = root / LIB
    lib.parent.mkdir(parents=True, exist_ok=True)
    lib.write_text((HERE / "microk8s.py").read_text())
    install_k3s_module(root)  # at KUBE, its bytecode compiled
    path = root / "usr/local/bin/snap"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\n# greenroom lab DOUBLE\nexec /usr/bin/python3 /{LIB} snap "$@"\n')
    os.chmod(path, 0o755)
