"""Building the ``cockpit`` command tree: one way to add a command or a group of commands.

Every command gets the shared flags (``--config``, ``--data-dir``, ``--redis-url``), its help
line and description, and the function that runs it as ``handler(args, settings) -> exit code``.
A group alone (``cockpit users``) prints its help and exits 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What a command runs: ``(args, settings) -> exit code`` (None counts as 0).
Handler = Callable[[argparse.Namespace, Any], Any]


@dataclass(frozen=True)
class Commands:
    """Where commands are added: a level of subcommands, and the parser of the shared flags."""

    sub: argparse._SubParsersAction
    common: argparse.ArgumentParser

    def add(
        self, name: str, handler: Handler, *, help: str, description: str, shared: bool = True
    ) -> argparse.ArgumentParser:
        """Add the command ``name`` that runs ``handler``; returns its parser for its own
        arguments. ``shared=False`` leaves out the shared flags."""
        parser = self.sub.add_parser(
            name, parents=[self.common] if shared else [], help=help, description=description
        )
        parser.set_defaults(handler=handler)
        return parser

    def group(
        self, name: str, *, help: str, description: str, title: str, metavar: str = "COMMAND"
    ) -> Commands:
        """Add the command group ``name``; returns where its subcommands are added."""
        parser = self.sub.add_parser(name, help=help, description=description)
        parser.set_defaults(handler=lambda _args, _settings: parser.print_help() or 2)
        return Commands(parser.add_subparsers(title=title, metavar=metavar), self.common)
