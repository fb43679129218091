"""greenroom: build, check and reset a homelab Kubernetes demo lab over SSH.

Wiring only (the CLI layer): every runbook is a Collection in runbooks/<name>/tasks.py; the
virtual lab plugs into the engine here, so the engine never imports it. Defaults live in
invoke.yaml beside this file.
"""

import sys
from importlib import import_module
from pathlib import Path

from invoke import Collection

from runbooks.core.cli import collector_paused

with collector_paused():  # the wiring's imports live until exit: never walked by the collector
    from runbooks.registry.fastpath import answer_inv

    # `inv registry.load-images` with nothing to copy is answered before any collection loads
    if answer_inv(sys.argv, Path(__file__).with_name("invoke.yaml")):
        raise SystemExit(0)

    from runbooks.lab.access import plug_in as plug_in_the_lab

    plug_in_the_lab()

    ns = Collection()
    for module in (
        "runbooks.lab.tasks",
        "runbooks.dell_gateway.tasks",
        "runbooks.registry.tasks",
        "runbooks.pi_prep.tasks",
        "runbooks.xen_dom0.tasks",
        "runbooks.k3s.tasks",
        "runbooks.microk8s.tasks",
        "runbooks.router.tasks",
        "runbooks.metallb.tasks",
        "runbooks.demo.tasks",
        "runbooks.ssh.tasks",
    ):
        ns.add_collection(import_module(module).ns)
