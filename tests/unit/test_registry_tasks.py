"""Every registry task has a docstring and help for every parameter; flags parse as documented."""

from __future__ import annotations

import inspect

from runbooks.registry.tasks import ns


def test_every_task_documents_every_parameter():
    assert sorted(ns.task_names) == ["check", "images", "load", "load-images",
                                     "patch-cluster", "save", "trust", "up", "verify"]
    for name in ns.task_names:
        task = ns[name]
        assert (task.__doc__ or "").strip(), name
        params = [p for p in inspect.signature(task.body).parameters if p != "c"]
        missing = [p for p in params if p not in task.help]
        assert not missing, (name, missing)


def test_load_images_module_import_is_lean():
    import subprocess
    import sys

    # yaml is not listed: invoke itself imports it
    code = ("import sys, runbooks.registry.tasks; heavy = ('requests', 'fabric', 'paramiko'); "
            "print(','.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
