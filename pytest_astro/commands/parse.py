"""Parse DAG files in an isolated sandbox without a metadata database (what `pytest --astro-dags`
does).

FILES may be DAG files, folders, or other project modules (e.g. include/helpers.py): a module
that is not a DAG file selects the DAG files that import it. Without FILES, every DAG file of the
project is parsed. Prints `path:line: message` per failing file; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_astro import ci_reports
from pytest_astro.config import ConfigError, find_project_root, load_settings
from pytest_astro.imports import ImportGraph
from pytest_astro.parse.engine import EngineError, ParseEngine
from pytest_astro.parse.failure_text import long_text, one_line
from pytest_astro.project import Project
from pytest_astro.user_errors import fail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILES", help="files or folders (default: the "
                                                                  "DAG folder)")
    parser.add_argument("--project", metavar="DIR", help="the Astro project root (default: found "
                                                         "from the current folder upwards)")
    parser.add_argument("--dags-folder", metavar="DIR", help="DAG folder relative to the project "
                                                             "(default: dags)")
    parser.add_argument("--timeout", metavar="SECONDS",
                        help="per-file import timeout (default: 30)")
    parser.add_argument("--memory-limit", metavar="SIZE",
                        help="per-file memory limit (default: 4GiB)")
    parser.add_argument("--workers", metavar="N", help="files parsed at once (default: one per "
                                                       "core)")
    parser.add_argument("--isolation", choices=("batch", "file"), default=None,
                        help="batch (default): a forked process parses several files in turn, "
                             "state reset between them, failures re-run alone; file: a fresh fork "
                             "for every file")
    parser.add_argument("--no-cache", action="store_true", help="parse again even files that did "
                                                                "not change")
    parser.add_argument("--format", choices=("text", "json", "github", "sarif", "gitlab"),
                        default="text",
                        help="output format: text, json (the results), github (workflow "
                             "annotations), sarif (2.1.0) or gitlab (Code Quality)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the full report of each failure")


def select_files(project: Project, files: list[str]) -> list[Path]:
    """The DAG files to parse for ``files``: DAG files, folders, and the DAG files importing a
    module."""
    if not files:
        return project.dag_files()
    dag_files: set[Path] = set()
    modules: list[Path] = []
    for raw in files:
        path = Path(raw).resolve()
        if path.is_dir() or project.is_dag_file(path):
            dag_files.update(project.dag_files([path]))
        elif path.suffix == ".py" and path.is_file():
            modules.append(path)
    if modules:
        dag_files.update(ImportGraph(project).affected(modules, project.all_dag_files))
    return sorted(dag_files)


#: the exit status when pytest-astro itself failed (as pytest's for an internal error): the verdicts
#: printed may be incomplete, and none of the failures is the DAG files' own
INTERNAL_ERROR = 3


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except Exception as exc:  # a bug of ours outside the sandbox: say so, never as a DAG's failure
        import traceback

        from pytest_astro.results import INTERNAL_NOTICE

        where = "parse command"
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):  # our innermost frame
            parts = Path(frame.filename).parts
            if "pytest_astro" in parts:
                where = (f"{'/'.join(parts[len(parts) - 1 - parts[::-1].index('pytest_astro'):])} "
                         f"({frame.name})")
                break
        sys.stdout.flush()
        print(f"pytest-astro: internal error in pytest-astro's {where}: {type(exc).__name__}: "
              f"{exc}; {INTERNAL_NOTICE}", file=sys.stderr)
        traceback.print_exc()
        return INTERNAL_ERROR


def _run(args: argparse.Namespace) -> int:
    try:
        root = Path(args.project) if args.project else find_project_root(Path.cwd())
        settings = load_settings(root, dags_folder=args.dags_folder, timeout=args.timeout,
                                 memory_limit=args.memory_limit, workers=args.workers,
                                 isolation=args.isolation)
    except ConfigError as exc:
        return fail(exc)
    if args.no_cache:
        settings = settings.with_overrides(cache=False)
    project = Project(settings)
    if not project.dags_path.is_dir():
        return fail(f"{project.dags_path} does not exist",
                    fix="run from an Astro project, or pass --project DIR / --dags-folder DIR")
    try:
        files = select_files(project, args.files)
    except ConfigError as exc:  # a symlink loop in the DAG folder
        return fail(exc)
    if not files:
        print("pytest-astro: no DAG files to parse"
              + (" among the given files" if args.files else ""))
        return 0
    engine = ParseEngine(project)
    try:
        results = engine.parse(files)
    except (EngineError, ConfigError) as exc:  # e.g. a broken airflow_settings.yaml
        return fail(exc)
    failed = [r for r in sorted(results.values(), key=lambda r: r.file) if not r.ok]
    internal = [r for r in failed if any(e.kind == "internal" for e in r.errors)]
    if args.format == "json":
        stats = {**engine.stats.to_dict(), "seconds": round(engine.stats.seconds, 3)}
        json.dump({"files": [r.to_dict() for r in results.values()], "failed": len(failed),
                   "stats": stats},
                  sys.stdout, indent=2)
        print()
    elif args.format in ("github", "sarif", "gitlab"):
        out = ci_reports.render(ci_reports.parse_problems(failed), args.format, project.root)
        if out:
            print(out)
    else:
        for result in sorted(results.values(), key=lambda r: r.file):
            for message in result.warnings:
                print(f"warning: {message}", file=sys.stderr)
        for result in failed:
            if args.verbose or result in internal:  # our traceback is what a bug report needs
                print(long_text(result) + "\n")
            else:
                for error in result.errors:
                    print(one_line(result, error))
        s = engine.stats
        sys.stdout.flush()
        print(f"{len(results)} DAG files parsed ({s.cached} from cache), {len(failed)} failed, "
              f"{s.dags} DAGs, {s.seconds:.2f} s", file=sys.stderr)
        # annotations on the pull request's diff, and the job summary
        if ci_reports.in_github_actions():
            problems = ci_reports.parse_problems(failed)
            for line in ci_reports.github_annotations(problems, project.root):
                print(line)
            summary = ci_reports.RunSummary.build(results.values(), s, settings.worker_count(),
                                                  problems)
            ci_reports.append_step_summary(summary.markdown(problems, project.root))
    if internal:
        print(f"pytest-astro: internal error on {len(internal)} file(s): a bug in pytest-astro, "
              "not in the DAG files (exit status 3)", file=sys.stderr)
        return INTERNAL_ERROR
    return 1 if failed else 0
