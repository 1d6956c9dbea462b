"""pytest-xdist: every worker collects every DAG file, but the batch is parsed once.

Each xdist worker collects the whole session (xdist checks that they all collected the same
items), so each needs every result. The first worker to ask parses the batch under a file lock and
writes the results to a file named by the run's id; the others wait on the lock and read that
file. All workers therefore collect from the very same results (a flaky timeout cannot make two
workers collect different items), and the controller reads the file for the summary and
``--astro-report``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_astro.project import Project
from pytest_astro.results import FileResult, RunStats

_STALE_SECONDS = 3600


def _folder(project: Project) -> Path:
    return project.root / ".pytest_cache" / "pytest-astro" / "xdist"


def run_id(config: pytest.Config) -> str | None:
    """The xdist run id, on workers and on the controller (None without xdist)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return workerinput.get("testrunuid")
    return getattr(config.option, "testrunuid", None)


def prepare_controller(config: pytest.Config) -> None:
    """On the xdist controller: fix the run id now, so that it can find the workers' batch later."""
    if (getattr(config, "workerinput", None) is None and config.pluginmanager.hasplugin("xdist")
            and config.getoption("numprocesses", default=None)
        and getattr(config.option, "testrunuid", "") is None):
        config.option.testrunuid = uuid.uuid4().hex


def _batch_file(project: Project, uid: str) -> Path:
    name = hashlib.sha256(f"{project.root}\0{uid}".encode()).hexdigest()[:24]
    return _folder(project) / f"{name}.json"


#: what a batch parse returns: its results by file, and its stats
Batch = tuple[dict[str, FileResult], RunStats]


def shared_batch(config: pytest.Config, project: Project, parse: Callable[[], Batch]) -> Batch:
    """``parse()`` once per xdist run (results, stats); the other workers get what it returned."""
    uid = run_id(config) if getattr(config, "workerinput", None) is not None else None
    if uid is None:
        return parse()
    import fcntl

    path = _batch_file(project, uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        loaded = read_batch(project, uid)
        if loaded is not None:
            return loaded
        results, stats = parse()
        data = {"stats": stats.to_dict(), "results": [r.to_dict() for r in results.values()]}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        _prune(path.parent)
        return results, stats


def read_batch(project: Project, uid: str | None) -> Batch | None:
    if not uid:
        return None
    try:
        data = json.loads(_batch_file(project, uid).read_text())
    except (OSError, ValueError):
        return None
    results = {r["file"]: FileResult.from_dict(r) for r in data["results"]}
    return results, RunStats.from_dict(data.get("stats", {}))


def _prune(folder: Path) -> None:
    """Batches of earlier runs (a crashed run leaves its file behind)."""
    now = time.time()
    for entry in folder.iterdir():
        try:
            if now - entry.stat().st_mtime > _STALE_SECONDS:
                entry.unlink()
        except OSError:
            continue


def finish(project: Project, uid: str | None) -> None:
    """On the controller, at the end of the run: remove this run's batch."""
    if not uid:
        return
    path = _batch_file(project, uid)
    for p in (path, path.with_suffix(".lock")):
        try:
            p.unlink()
        except OSError:
            pass
