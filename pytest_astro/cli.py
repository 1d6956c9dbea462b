"""The `pytest-astro` command: `pytest-astro parse|lint|deploy|ci ...`.

Each subcommand lives in its own module, imported only when it runs, which exposes
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pytest_astro import __version__

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("pytest_astro.parse.cli", "parse DAG files in an isolated, database-free sandbox"),
    "lint": ("pytest_astro.lint.cli", "static checks on DAG source (libcst), with autofixes"),
    "deploy": ("pytest_astro.deploy.cli", "run the suite, then deploy to Astro or a bucket if it passed"),
    "ci": ("pytest_astro.ci.cli", "write CI/CD pipeline templates"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-astro",
        description="Parse, check and safely deploy Astro / Apache Airflow projects.",
    )
    parser.add_argument("--version", action="version", version=f"pytest-astro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # not shipped in this build
        sp = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
