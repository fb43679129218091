"""`python -m runbooks.registry <task> ...`: the registry collection without the root tasks.py
(the project's defaults are still read from invoke.yaml beside tasks.py)."""

from pathlib import Path

import yaml
from invoke import Program

from .tasks import ns

PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "invoke.yaml"
if PROJECT_CONFIG.exists():
    ns.configure(yaml.safe_load(PROJECT_CONFIG.read_text()) or {})
Program(namespace=ns, name="registry", binary="python -m runbooks.registry").run()
