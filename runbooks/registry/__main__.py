"""`python -m runbooks.registry <task> ...`: the registry collection without the root tasks.py."""

from invoke import Program

from .tasks import ns

Program(namespace=ns, name="registry", binary="python -m runbooks.registry").run()
