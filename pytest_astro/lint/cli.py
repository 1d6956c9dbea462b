"""Static checks on DAG, include/ and plugins/ source: `pytest-astro lint [--fix] [FILES]`.

Prints `path:line:col: CODE message` per finding (`[*]`: --fix can fix it) and exits 1 when
there are findings. `# noqa: CODE` at the end of a line suppresses it. Settings live in
[tool.pytest-astro.lint] of pyproject.toml; rules are documented in docs/lint-rules.md
(`pytest-astro lint --list-rules` prints them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_astro.ci_reports import in_github_actions
from pytest_astro.config import ConfigError
from pytest_astro.lint.output import FORMATS, render
from pytest_astro.user_errors import fail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILES",
                        help="files or folders to check (default: the project's dags/, include/ and plugins/)")
    parser.add_argument("--fix", action="store_true", help="apply the safe fixes ([*]) to the files")
    parser.add_argument("--unsafe-fixes", action="store_true",
                        help="with --fix, also apply the fixes that may change behaviour (listed as unsafe)")
    parser.add_argument("--target-airflow", type=int, choices=(2, 3), default=None, metavar="{2,3}",
                        help="lint for this Airflow major version instead of the project's (Dockerfile, "
                             "target-airflow); the AST3 rules run only when it is 3")
    parser.add_argument("--select", action="append", default=[], metavar="CODES",
                        help="only these codes or prefixes, comma-separated (e.g. AST0,AST201); repeatable")
    parser.add_argument("--ignore", action="append", default=[], metavar="CODES",
                        help="skip these codes or prefixes, comma-separated; repeatable")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--no-cache", action="store_true", help="re-check every file (no content-hash cache)")
    parser.add_argument("--workers", type=int, default=0, metavar="N", help="processes (default: one per core)")
    parser.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    parser.add_argument("--list-rules", action="store_true", help="print every rule's code, name and summary")


def list_rules() -> str:
    from pytest_astro.lint.rules import ALL_RULES

    lines = []
    for rule in ALL_RULES:
        flag = " (Airflow 3 projects)" if rule.AIRFLOW3 else ""
        lines.append(f"{rule.CODE}  {rule.NAME}{flag}: {rule.summary()}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pytest_astro.lint.engine import LintUsageError, lint_paths

    if args.list_rules:
        print(list_rules())
        return 0
    try:
        report = lint_paths([Path(f) for f in args.files], fix=args.fix, select=args.select, ignore=args.ignore,
                            use_cache=not args.no_cache, workers=args.workers, unsafe_fixes=args.unsafe_fixes,
                            target_airflow=args.target_airflow)
    except (ConfigError, LintUsageError) as exc:
        return fail(exc)
    out = render(report.findings, args.format)
    if args.format == "text" and report.findings and in_github_actions():
        out += "\n" + render(report.findings, "github")  # also shown on the pull request's diff
    if out:
        print(out)
    if args.format == "text":
        fixable = sum(f.fixable for f in report.findings)
        if report.fixes_applied:
            print(f"Fixed {report.fixes_applied} problem(s) in {len(report.fixed_files)} file(s).", file=sys.stderr)
        if report.findings:
            hint = f" ({fixable} fixable with --fix)" if fixable else ""
            print(f"Found {len(report.findings)} problem(s) in {report.files} file(s){hint}.", file=sys.stderr)
            unsafe = sum(f.unsafe_fix for f in report.findings)
            if unsafe:
                print(f"{unsafe} more fix(es) available with --fix --unsafe-fixes (they may change behaviour; "
                      f"review them).", file=sys.stderr)
    if report.findings and not args.exit_zero:
        return 1
    # pre-commit style: a hook that changed files fails, so the user reviews and re-stages them.
    return 1 if report.fixed_files and not args.exit_zero else 0


def main(argv: list[str] | None = None) -> int:
    """`pytest-astro-lint` (the astro-dag-lint pre-commit hook's entry point)."""
    parser = argparse.ArgumentParser(prog="pytest-astro-lint", description=(__doc__ or "").strip())
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
