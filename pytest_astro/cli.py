"""The `pytest-astro` command: `pytest-astro parse|lint|deploy|ci|shards ...`.

Each subcommand lives in its own module (``pytest_astro/commands/``; ``lint`` in ``lint/cli.py``,
which is also the ``astro-dag-lint`` pre-commit hook, and ``shards`` in ``sharding.py``), imported
only when it runs, which exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the exit
status).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pytest_astro import __version__

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("pytest_astro.commands.parse", "parse DAG files in an isolated, database-free "
                                             "sandbox"),
    "lint": ("pytest_astro.lint.cli", "static checks on DAG source (libcst), with autofixes"),
    "deploy": ("pytest_astro.commands.deploy", "check (no token: suite, plan), then apply (token: "
                                               "deploy what was checked)"),
    "ci": ("pytest_astro.commands.ci", "write CI/CD pipeline templates"),
    "shards": ("pytest_astro.sharding", "check that the --astro-report files of N shards add up"),
}


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported (a broken or slow subcommand
    never affects the others, and `pytest-astro --help` imports none of them)."""
    parser = argparse.ArgumentParser(
        prog="pytest-astro",
        description="Parse, check and safely deploy Astro / Apache Airflow projects.",
    )
    parser.add_argument("--version", action="version", version=f"pytest-astro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            sp.description = (module.__doc__ or help_text).strip()
            sp.formatter_class = argparse.RawDescriptionHelpFormatter
            module.add_arguments(sp)
            sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
