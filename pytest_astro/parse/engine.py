"""The parse engine as seen from pytest and the CLI: cache, sandbox process, duplicate dag_ids.

This module never imports Airflow or the user's DAG files: it starts the sandbox
(``server.py``) in a separate Python process with AIRFLOW_HOME at the project root (as in the Astro
runtime) but everything Airflow writes in a throwaway folder, and a metadata-database URL that
cannot be opened, and reads plain JSON results back.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_astro.parse import coverage_support
from pytest_astro.parse.cache import ParseCache, cache_dir
from pytest_astro.parse.environment import sandbox_env
from pytest_astro.project import Project
from pytest_astro.results import FileResult, ParseError, RunStats
from pytest_astro.values import ProjectValues, load_values

if TYPE_CHECKING:  # imported when the sandbox runs: a run answered from the cache never needs them
    from pytest_astro.parse.messages import Done, Fatal, Ready, Request, Result


class EngineError(Exception):
    """The sandbox could not run at all (e.g. Airflow is not installed); the message says what to
    do."""


@dataclass
class ParseEngine:
    """Parse DAG files of ``project``: cached results first, the rest in the sandbox."""

    project: Project
    python: str = sys.executable
    # of the last parse(); the sandbox's figures (Airflow version, processes) of the last one that
    # started it
    stats: RunStats = field(default_factory=RunStats)
    values: ProjectValues | None = None  # variables, connections and pools served to the sandbox
    _early: _Sandbox | None = field(default=None, repr=False)  # started by prestart, for the next parse

    def prestart(self) -> None:
        """Start the sandbox now when the next parse will parse every file (no parse cache yet: a
        fresh clone, a CI job without a restored cache, ``--astro-no-cache``, a measured run), so
        that ``import airflow`` runs while pytest collects. A sandbox no parse asks for is stopped
        when the process exits."""
        settings = self.project.settings
        if self._early is not None or (settings.cache and not coverage_support.active()
                                       and cache_dir(self.project).is_dir()):
            return
        if self.values is None:
            self.values = load_values(settings)
        sandbox = _Sandbox(self.project, self.python)
        try:
            sandbox.start()
        except EngineError:  # said again, as a usage error, by the parse that needs it
            return
        self._early = sandbox
        atexit.register(sandbox.__exit__, None, None, None)

    def parse(self, files: Iterable[Path]) -> dict[str, FileResult]:
        """Verdicts for ``files`` (absolute DAG file paths), keyed by path relative to the project;
        ``stats`` says what it took."""
        started = time.perf_counter()
        stats = replace(self.stats)  # a new value: what the caller holds does not change
        # str: Path's < is ~10x slower
        files = sorted({self.project.real(f) for f in files}, key=str)
        if self.values is None:  # read once per engine (pytest passes the session's)
            self.values = load_values(self.project.settings)
        # a measured run (coverage / pytest-cov) must execute the files to count their lines
        use_cache = self.project.settings.cache and not coverage_support.active()
        cache = ParseCache(self.project, extra_key=self.values.digest()) if use_cache else None
        results: dict[str, FileResult] = {}
        todo: list[Path] = []
        early, self._early = self._early, None
        with early or _Sandbox(self.project, self.python) as sandbox, cache or contextlib.nullcontext():
            for path in files:
                hit = cache.get(path) if cache else None
                if hit is not None:
                    results[hit.file] = hit
                else:
                    todo.append(path)
                    # started at the first file to parse: `import airflow` (~1.5 s) runs while the
                    # rest of the cache is checked and the files' imports are read
                    sandbox.start()
            stats.cached = len(results)
            if todo:
                for result in self._run_sandbox(sandbox, todo, stats):
                    results[result.file] = result
                    if cache:
                        cache.put(self.project.root / result.file, result)
        _mark_duplicates(results)
        stats.files = len(files)
        stats.parsed = len(todo)
        stats.failed = sum(not r.ok for r in results.values())
        stats.dags = sum(r.dag_count() for r in results.values())
        stats.seconds = time.perf_counter() - started
        self.stats = stats
        return results

    def _request(self, files: list[Path]) -> Request:
        from pytest_astro.imports import ImportGraph  # the static import scan: only when parsing
        from pytest_astro.parse.messages import Request

        settings = self.project.settings
        graph = ImportGraph(self.project)
        preload = ([[m, sorted(names)] for m, names in sorted(graph.third_party(files).items())]
                   if settings.preload else [])
        assert self.values is not None
        return Request(
            files=[str(f) for f in files], timeout=settings.timeout,
            memory_limit=settings.memory_limit,
            address_space_limit=settings.address_space_limit,
            workers=min(settings.worker_count(), len(files)), preload=preload,
            policy_options=settings.sandbox_policy_options(), variables=self.values.variables,
            connections=self.values.connections, missing_variables=settings.missing_variables,
            isolation=settings.isolation, allow_network=list(settings.allow_network),
            coverage=coverage_support.request())

    def _run_sandbox(self, sandbox: _Sandbox, files: list[Path],
                     stats: RunStats) -> Iterable[FileResult]:
        """Send the sandbox its request; its verdicts as they come (every file gets one)."""
        from pytest_astro.parse.messages import decode, dispatch  # only when the sandbox runs
        project = self.project
        request = self._request(files)
        proc = sandbox.proc
        assert proc is not None and proc.stdin and proc.stdout
        try:
            proc.stdin.write(request.encode() + "\n")
            proc.stdin.close()
        except BrokenPipeError:
            # it already stopped (Airflow missing?): its message follows on stdout
            pass
        seen: set[str] = set()
        receiver = _FromSandbox(stats)
        try:
            for line in proc.stdout:
                result = dispatch(receiver, decode(line))
                if result is not None:
                    seen.add(result.file)
                    yield result
        finally:
            proc.stdout.close()
            code = proc.wait()
        coverage_support.merge(request.coverage)
        missing = [f for f in files if project.relative(f) not in seen]
        if missing:
            tail = sandbox.stderr_tail()
            if not seen and code != 0:
                raise EngineError(
                    f"the parse sandbox ({self.python} -m pytest_astro.parse.server) exited with "
                    f"status {code} before parsing any file:\n{tail}")
            for f in missing:  # the sandbox itself died midway: say so per file, never drop one
                yield FileResult(file=project.relative(f), ok=False, errors=[ParseError(
                    kind="crash", type="SandboxError", file=project.relative(f),
                    message=f"the parse sandbox stopped (status {code}) before this file was "
                            "parsed",
                    hint="re-run; if it persists, report it with this output:\n" + tail)])


class _FromSandbox:
    """What the engine does with each message of the sandbox (``messages.dispatch``)."""

    def __init__(self, stats: RunStats) -> None:
        self.stats = stats

    def on_ready(self, message: Ready) -> None:
        self.stats.airflow = message.airflow

    def on_result(self, message: Result) -> FileResult:
        return FileResult.from_dict(message.data())

    def on_done(self, message: Done) -> None:
        self.stats.processes, self.stats.rechecked = message.processes, message.rechecked
        self.stats.ended_early, self.stats.timings = message.ended_early, message.timings

    def on_fatal(self, message: Fatal) -> None:
        raise EngineError(message.message)


class _Sandbox:
    """The sandbox process, started on demand, with its throwaway folder and stderr file."""

    def __init__(self, project: Project, python: str):
        self.project = project
        self.python = python
        self.proc: subprocess.Popen | None = None
        self._home: tempfile.TemporaryDirectory | None = None
        self._stderr = None

    def start(self) -> None:
        if self.proc is not None:
            return
        if not hasattr(os, "fork"):
            raise EngineError(
                "the parse sandbox forks a process per batch of DAG files and needs a POSIX "
                "system (Linux, macOS, or WSL2 on Windows); Airflow itself runs only there. Run "
                "pytest-astro in WSL2 or in a Linux container")
        project = self.project
        self._home = tempfile.TemporaryDirectory(prefix="pytest-astro-home-")
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [self.python, "-m", "pytest_astro.parse.server", str(project.root),
             json.dumps([str(p) for p in project.importable_roots()])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=sandbox_env(project, self._home.name), cwd=str(project.root),
        )

    def stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-3000:]

    def __enter__(self) -> _Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:  # never given a request (an error on our side): stop it
                self.proc.kill()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            self.proc.wait()
        if self._stderr is not None:
            self._stderr.close()
        if self._home is not None:
            self._home.cleanup()
        self.proc = self._stderr = self._home = None  # done: a second call (at exit) does nothing


def _mark_duplicates(results: dict[str, FileResult]) -> None:
    """A dag_id defined in two files fails both, each naming the other (Airflow keeps only one)."""
    where: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
    for result in results.values():
        for dag_id, file, line in result.dag_refs():
            where[dag_id].append((file, line))
    for dag_id, places in where.items():
        files = {f for f, _ in places}
        if len(files) < 2:
            continue
        for file, line in places:
            others = ", ".join(f"{f}:{ln}" if ln else f for f, ln in places if f != file)
            results[file].fail(ParseError(
                kind="duplicate_dag_id", type="DuplicateDagId", file=file, line=line,
                message=f"dag_id '{dag_id}' is also defined in {others}",
                hint="dag_ids must be unique across the project: Airflow keeps only one of them"))
