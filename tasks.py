"""greenroom: build, check and reset a homelab Kubernetes demo lab over SSH.

Wiring only (the CLI layer): every runbook is a Collection in runbooks/<name>/tasks.py; the
virtual lab plugs into the engine here, so the engine never imports it. Defaults live in
invoke.yaml beside this file.
"""

from importlib import import_module

from invoke import Collection

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
):
    ns.add_collection(import_module(module).ns)
