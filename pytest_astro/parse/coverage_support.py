"""Coverage of DAG code that runs at parse time, in the isolated sandbox children.

When the pytest process is measured (``coverage run -m pytest --astro-dags`` or pytest-cov's
``--cov``), each sandbox child measures the file it parses with the same source/include/omit
settings and saves a data file; the engine merges those into the running measurement, so the
report counts parse-time lines of ``dags/`` and ``include/`` together with the users' own tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from pathlib import Path


def _current():
    if "coverage" not in sys.modules:  # nothing measures without it (and importing it costs ~0.1 s)
        return None
    try:
        import coverage
    except ImportError:
        return None
    return coverage.Coverage.current()


def active() -> bool:
    """Whether the pytest process (or the CLI) is being measured right now."""
    return _current() is not None


def request() -> dict | None:
    """What the sandbox needs to measure like the pytest process does (None when not measured)."""
    cov = _current()
    if cov is None:
        return None
    cfg = cov.config

    def absolute(paths):
        return [str(Path(p).resolve()) if Path(p).exists() else p for p in (paths or [])]

    return {
        "data_file": os.path.join(tempfile.mkdtemp(prefix="pytest-astro-coverage-"), ".coverage"),
        "source": absolute(cfg.source) or None,
        "include": absolute(cfg.run_include) or None,
        "omit": cfg.run_omit or None,
        "branch": bool(cfg.branch),
    }


def start_in_child(settings: dict | None):
    """Start measuring in a sandbox child (returns the Coverage object, or None)."""
    if not settings:
        return None
    import coverage

    cov = coverage.Coverage(data_file=settings["data_file"], data_suffix=True,
                            source=settings["source"],
                            include=settings["include"], omit=settings["omit"],
                            branch=settings["branch"],
                            config_file=False, auto_data=False)
    cov.start()
    return cov


def save_coverage(cov) -> None:
    """Write what was measured so far (a child saves after each file: it may die during the
    next)."""
    if cov is not None:
        cov.save()


def merge(settings: dict | None) -> None:
    """Add the children's data to the pytest process's measurement, then remove their files."""
    if not settings:
        return
    cov = _current()
    folder = os.path.dirname(settings["data_file"])
    try:
        if cov is not None:
            from coverage.data import CoverageData

            target = cov.get_data()
            for path in glob.glob(settings["data_file"] + ".*"):
                data = CoverageData(basename=path)
                data.read()
                target.update(data)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
