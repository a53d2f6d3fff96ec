"""The ``avocado`` command line: ``serve`` runs a node, the other commands talk to one."""

from avocado.cli.main import app, main

__all__ = ["app", "main"]
