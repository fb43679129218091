"""greenroom: build, check and reset a homelab Kubernetes demo lab over SSH.

Wiring only: every runbook is a Collection in runbooks/<name>/tasks.py.
"""

from importlib import import_module

from invoke import Collection

ns = Collection()
for module in (
    "runbooks.lab.tasks",
    "runbooks.dell_gateway.tasks",
    "runbooks.registry.tasks",
    "runbooks.pi_prep.tasks",
    "runbooks.k3s.tasks",
    "runbooks.demo.tasks",
):
    try:
        collection = import_module(module).ns
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(module.rsplit(".", 1)[0]):
            raise
        continue  # that runbook is not in this checkout yet
    ns.add_collection(collection)
ns.configure({"greenroom": {"inventory": "hosts/lab.yaml", "parallel": 10}})
