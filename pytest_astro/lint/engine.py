"""Lint many files: find them, group them by project, skip the unchanged (content-hash cache),
and spread the rest over a process pool.

The cache lives in ``<project>/.pytest_cache/pytest-astro/lint.json``: one entry per
(file content, path, rule set, options, pytest-astro and libcst versions) -> findings.
"""

from __future__ import annotations

import hashlib
import json
import io
import multiprocessing
import os
import re
import sys
import tempfile
import tokenize
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from pytest_astro import __version__
from pytest_astro.config import find_project_root
from pytest_astro.lint.config import LintConfig, project_lint_config
from pytest_astro.lint.core import SYNTAX_ERROR, FileContext, Finding
from pytest_astro.lint.runner import lint_source
from pytest_astro.lint.rules import BY_CODE
from pytest_astro.lint.rules.airflow3_context import TEMPLATE_EXTENSIONS, TEMPLATE_REF, template_search_path
from pytest_astro.project import might_contain_dag

CACHE_FILE = Path(".pytest_cache") / "pytest-astro" / "lint.json"
_MAX_CACHE_ENTRIES = 50_000
#: Below this many files to lint, a pool costs more than it saves.
_POOL_THRESHOLD = 24
_SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".tox", ".nox", ".mypy_cache", ".pytest_cache"}


class LintUsageError(Exception):
    """Input we cannot lint (a missing file); the message says which and what to do."""


@dataclass
class Job:
    abspath: str
    ctx: FileContext
    codes: tuple[str, ...]
    fix: bool
    root: Path = Path()
    key: str = ""
    unsafe_fixes: bool = False


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    cached: int = 0
    fixed_files: list[str] = field(default_factory=list)
    fixes_applied: int = 0


@lru_cache(maxsize=None)
def _libcst_version() -> str:
    try:
        return metadata.version("libcst")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


def _lint_job(job: Job) -> tuple[list[dict], int, str | None]:
    """Run in a worker: (findings as dicts, fixes applied, fixed source or None)."""
    rules = [BY_CODE[c] for c in job.codes]
    path = Path(job.abspath)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [Finding(job.ctx.path, 1, 1, SYNTAX_ERROR, f"cannot read the file: {exc.strerror}").to_dict()], 0, None
    try:  # as Python reads it: a PEP 263 coding cookie or a BOM, else UTF-8
        encoding = tokenize.detect_encoding(io.BytesIO(raw).readline)[0]
        source = raw.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        start = getattr(exc, "start", None)
        if start is None:  # detect_encoding refused the first two lines: where is the bad byte?
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                start = bad.start
        line = raw[:start].count(b"\n") + 1 if start is not None else 1
        return [Finding(job.ctx.path, line, 1, SYNTAX_ERROR,
                        "the file cannot be decoded (Python reads it as UTF-8 unless a coding cookie says "
                        "otherwise, and so does Airflow); save it as UTF-8").to_dict()], 0, None
    if source.startswith("\ufeff"):
        source = source[1:]
    result = lint_source(source, job.ctx, rules, fix=job.fix, unsafe_fixes=job.unsafe_fixes)
    fixed = None
    if job.fix and result.source != source:
        path.write_bytes(result.source.encode(encoding))  # the file's own encoding (and BOM) kept
        fixed = result.source
    return [f.to_dict() for f in result.findings], result.fixes_applied, fixed


def expand_paths(paths: Iterable[Path]) -> list[tuple[Path, bool]]:
    """(file, named explicitly): files as given, directories walked for ``*.py`` (skipping
    virtualenvs, caches and hidden folders)."""
    out: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
                out += [(Path(root) / f, False) for f in sorted(files) if f.endswith((".py", ".pyi"))]
        elif path.exists():
            out.append((path, True))
        else:
            raise LintUsageError(f"{path}: no such file or directory; pass existing files or folders")
    return out


def default_paths(root: Path) -> list[Path]:
    """What ``pytest-astro lint`` checks without arguments: dags/, include/ and plugins/."""
    config, settings = project_lint_config(root)
    return [p for p in (settings.dags_path, root / "include", settings.plugins_path) if p.is_dir()]


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)


class _Project:
    """Per project root: settings, lint config, which dags-folder files Airflow would ignore, cache."""

    def __init__(self, root: Path, select: Sequence[str], ignore: Sequence[str], use_cache: bool,
                 target_airflow: int | None = None):
        self.root = root
        self.config, self.settings = project_lint_config(root, select, ignore, target_airflow)
        self.dags_path = self.settings.dags_path
        self._walked: set[Path] | None = None
        self._parse_time_modules: set[Path] | None = None
        self.cache_path = root / CACHE_FILE
        self.use_cache = use_cache
        self.cache: dict[str, list[dict]] = self._load_cache() if use_cache else {}
        self.dirty = False

    def _load_cache(self) -> dict:
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data.get("entries", {}) if isinstance(data, dict) and data.get("version") == 1 else {}

    def save_cache(self) -> None:
        if not self.use_cache or not self.dirty:
            return
        entries = self.cache
        if len(entries) > _MAX_CACHE_ENTRIES:
            entries = dict(list(entries.items())[-_MAX_CACHE_ENTRIES:])
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_path.parent, prefix=".lint-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "entries": entries}, fh, separators=(",", ":"))
            os.replace(tmp, self.cache_path)
        except OSError:
            pass  # a read-only checkout still lints; it just does not remember

    def airflow_ignored(self, path: Path) -> bool:
        if self._walked is None:
            from pytest_astro.project import Project

            project = Project(self.settings)
            self._walked = {p.resolve() for p in project.dag_folder_files()}
        return path.resolve() not in self._walked

    def imported_at_parse_time(self, resolved: Path, in_dags: bool) -> bool:
        """Whether Airflow imports this file when it parses the project's DAG files."""
        if not self.dags_path.is_dir():
            # No dags folder to start from: a file that looks like a DAG file is taken for one.
            return might_contain_dag(resolved, self.config.target_airflow or 3)
        if in_dags and not self.airflow_ignored(resolved) and might_contain_dag(resolved, self.config.target_airflow or 3):
            return True
        if self._parse_time_modules is None:
            from pytest_astro.lint.reach import parse_time_modules
            from pytest_astro.project import Project

            self._parse_time_modules, learned = parse_time_modules(Project(self.settings), self.config.target_airflow,
                                                                   self.cache if self.use_cache else None)
            self.dirty = self.dirty or learned
        return resolved in self._parse_time_modules

    def context(self, path: Path) -> FileContext:
        resolved = path.resolve()
        try:
            relpath = resolved.relative_to(self.root).as_posix()
        except ValueError:
            relpath = resolved.as_posix()
        in_dags = self.dags_path == resolved or self.dags_path in resolved.parents
        name = resolved.name
        maybe_test = name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
        return FileContext(
            path=_display(path), relpath=relpath, in_dags_folder=in_dags,
            airflow_ignored=bool(in_dags and maybe_test and self.airflow_ignored(resolved)),
            target_airflow=self.config.target_airflow, heavy_imports=self.config.heavy_imports,
            imported_at_parse_time=self.imported_at_parse_time(resolved, in_dags))


_SEARCHPATH = re.compile(rb"template_searchpath\s*=\s*[\[(]?\s*[\"']([^\"'\n]+)[\"']")


def _template_files(raw: bytes, path: Path) -> list[Path]:
    """Template files the file may render (AST306 reads them): part of its cache key."""
    if not any(ext.encode() in raw for ext in TEMPLATE_EXTENSIONS):
        return []
    names = TEMPLATE_REF.findall(raw.decode("utf-8", "replace"))
    searchpath = [m.decode("utf-8", "replace") for m in _SEARCHPATH.findall(raw)]
    return [folder / name for name in names for folder in template_search_path(path, searchpath)]


def _cache_key(raw: bytes, ctx: FileContext, config: LintConfig, unsafe_fixes: bool = False,
               path: Path | None = None) -> str:
    h = hashlib.sha256(raw)
    for template in _template_files(raw, path) if path is not None else ():
        try:
            h.update(str(template).encode() + hashlib.sha256(template.read_bytes()).digest())
        except OSError:
            h.update(str(template).encode())
    h.update(repr((ctx.relpath, ctx.in_dags_folder, ctx.airflow_ignored, ctx.imported_at_parse_time,
                   config.fingerprint(ctx.relpath), unsafe_fixes, __version__, _libcst_version())).encode())
    return h.hexdigest()


def worker_count(requested: int = 0) -> int:
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def lint_paths(paths: Sequence[Path] | None = None, *, fix: bool = False, select: Sequence[str] = (),
               ignore: Sequence[str] = (), use_cache: bool = True, workers: int = 0,
               cwd: Path | None = None, unsafe_fixes: bool = False, target_airflow: int | None = None) -> LintReport:
    """Lint ``paths`` (files or folders; the project's dags/include/plugins when empty).
    ``unsafe_fixes``: ``--fix`` also applies the fixes that may change behaviour;
    ``target_airflow``: the Airflow major version to lint for, instead of the project's."""
    cwd = (cwd or Path.cwd()).resolve()
    if not paths:
        paths = default_paths(find_project_root(cwd))
    files = expand_paths(paths)
    projects: dict[Path, _Project] = {}
    root_of_dir: dict[Path, Path] = {}
    jobs: list[Job] = []
    report = LintReport()
    cached_findings: list[Finding] = []
    for path, explicit in files:
        parent = path.resolve().parent
        root = root_of_dir.get(parent)
        if root is None:
            root = root_of_dir[parent] = find_project_root(parent)
        project = projects.get(root)
        if project is None:
            project = projects[root] = _Project(root, select, ignore, use_cache, target_airflow)
        ctx = project.context(path)
        if project.config.is_excluded(ctx.relpath):
            continue
        if not explicit and ctx.in_dags_folder and project.airflow_ignored(path):
            continue  # found by walking a folder, and Airflow never parses it (named files are checked)
        rules = project.config.rules(ctx.relpath)
        report.files += 1
        job = Job(str(path.resolve()), ctx, tuple(r.CODE for r in rules), fix, root, unsafe_fixes=unsafe_fixes)
        if use_cache:
            try:
                raw = path.read_bytes()
            except OSError:
                raw = b""
            job.key = _cache_key(raw, ctx, project.config, unsafe_fixes, path)
            hit = project.cache.get(job.key)
            # A cached file with fixable findings still needs the worker when fixing.
            if hit is not None and not (fix and any(f.get("fixable") for f in hit)):
                report.cached += 1
                cached_findings += [Finding(**{**f, "path": ctx.path}) for f in hit]
                continue
        jobs.append(job)

    results = _run_jobs(jobs, workers)
    for job, (found, applied, fixed_source) in zip(jobs, results):
        findings = [Finding(**f) for f in found]
        report.findings += findings
        project = projects[job.root]
        if applied and fixed_source is not None:
            report.fixed_files.append(job.ctx.path)
            report.fixes_applied += applied
            job.key = _cache_key(fixed_source.encode("utf-8"), job.ctx, project.config, unsafe_fixes, Path(job.abspath))
        if use_cache and job.key and not any(f.code == SYNTAX_ERROR and "cannot read" in f.message for f in findings):
            project.cache[job.key] = [f.to_dict() for f in findings]
            project.dirty = True
    for project in projects.values():
        project.save_cache()
    report.findings += cached_findings
    report.findings.sort(key=lambda f: (f.path, f.line, f.col, f.code))
    return report


def _run_jobs(jobs: list[Job], workers: int) -> list[tuple[list[dict], int, str | None]]:
    n = min(worker_count(workers), max(1, len(jobs) // 8))
    if n <= 1 or len(jobs) < _POOL_THRESHOLD:
        return [_lint_job(job) for job in jobs]
    # fork: the workers inherit the imported libcst and rules (spawn would re-import per worker).
    method = "fork" if sys.platform.startswith("linux") else None
    context = multiprocessing.get_context(method)
    chunksize = max(1, len(jobs) // (n * 4))
    with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
        return list(pool.map(_lint_job, jobs, chunksize=chunksize))
