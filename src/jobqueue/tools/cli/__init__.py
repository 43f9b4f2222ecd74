"""``jobqueue``: the operator's command line over the same SQL API the functions use."""

from jobqueue.tools.cli.main import main

__all__ = ["main"]
