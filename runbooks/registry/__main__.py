"""`python -m runbooks.registry <task> ...`: the registry collection without the root tasks.py
(the project's defaults are still read from invoke.yaml beside tasks.py). A load-images run
with nothing to copy is answered before Invoke is imported (runbooks.registry.fastpath)."""

import sys
from pathlib import Path

from .fastpath import answer, project_config

PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "invoke.yaml"
project = project_config(PROJECT_CONFIG)

if not answer(sys.argv[1:], project):
    from invoke import Program

    from .tasks import ns

    ns.configure(project())
    Program(namespace=ns, name="registry", binary="python -m runbooks.registry").run()
