"""The parse sandbox: a warm process that imports Airflow once, then has a pool of forked children
parse the DAG files.

Started by ``engine.py`` as ``python -m pytest_astro.parse.server ROOT IMPORT_PATHS`` with a sandbox
environment (``environment.sandbox_env``: AIRFLOW_HOME at the project root, what Airflow writes in a
throwaway folder, a metadata-database URL that cannot be opened). It imports Airflow while the
engine still reads its cache, then reads one ``messages.Request`` on stdin and answers on stdout
(``messages``: ``Ready``, a ``Result`` per file as files finish, ``Done``; or ``Fatal``).

Why forked children (``child.py``, scheduled and watched by ``pool.py``): user DAG code may call
``os._exit``, loop forever, segfault, allocate without bound, or monkeypatch Airflow and
``sys.path``. In a forked child all of that stays in the child; the pool kills it at the deadline
and reports the cause. Forking from a process that has already imported Airflow (and the
third-party modules the DAG files import, and parsed a warm-up DAG, then ``gc.freeze()``) makes a
child cost far less than ``import airflow``.

Why batches (``isolation = "batch"``, the default): a fork costs more than parsing a small DAG file
(page tables, copy-on-write faults as the child touches shared objects). So a child parses a batch
of files in turn and, between two files, resets what a file can leave behind (``snapshot.py``); a
file that leaves what cannot be reset ends its child, and a file that fails after other files ran
in the same child is parsed again alone, in a fresh fork, and that verdict is the one reported (a
syntax error or a timeout is not: neither depends on what ran before). A crash, exit or hard
timeout loses only the file being parsed; the rest of the batch goes back to the queue. What files
of one batch still share: in-place changes to third-party modules, which preloading shares between
all files anyway. ``isolation = "file"`` forks once per file.
"""

from __future__ import annotations

import functools
import gc
import importlib
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time

from pytest_astro.parse import child
from pytest_astro.parse.limits import Limits, ParseTimeout
from pytest_astro.parse.messages import Done, Fatal, Ready, Request, Writer
from pytest_astro.parse.paths import ProjectPaths
from pytest_astro.parse.pool import Pool, Queue

_TIMES: dict[str, float] = {"started": time.perf_counter()}  # what the sandbox spent its time on


def _preload(modules: list[list], timeout: float) -> None:
    """Import what the DAG files import from outside the project, once, before forking.

    Also resolves the names taken from each module: ``airflow.sdk`` loads ``dag``, ``task``...
    lazily on first access, which would otherwise be paid again in every child.
    """
    def on_alarm(signum, frame):
        raise ParseTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    for name, attributes in modules:
        # a module that hangs at import is skipped here
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is None:
                continue
            module = importlib.import_module(name)
            for attribute in attributes:
                getattr(module, attribute, None)
        except BaseException:  # a module that fails here will fail (and be reported) in the child
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _forget_bytecode(folder: str) -> None:
    """Remove the bytecode cached under PYTHONPYCACHEPREFIX for the files of ``folder``."""
    if sys.pycache_prefix:
        import shutil

        shutil.rmtree(os.path.join(sys.pycache_prefix, os.path.realpath(folder).lstrip(os.sep)),
                      ignore_errors=True)


def _warm_up(paths: ProjectPaths) -> None:
    from pytest_astro.parse.adapter import adapter

    ad = adapter()
    with tempfile.TemporaryDirectory(prefix="pytest-astro-warmup-") as tmp:
        path = os.path.join(tmp, "pytest_astro_warmup.py")
        with open(path, "w") as fh:
            fh.write(ad.warmup_source())
        try:
            dags, _ = ad.parse_file(ad.new_dagbag(path), path)
            # Each child also summarizes and serializes its DAGs; Airflow imports the serialization
            # modules (SQLAlchemy models, trigger and sensor classes) lazily on first use, which
            # every child would pay unless done here once, before forking.
            import pytest_astro.parse.coverage_support  # noqa: F401
            import pytest_astro.policies.sandbox  # noqa: F401

            for dag in dags:
                ad.summarize(dag, paths.rel(path), None)
                ad.serialize_round_trip(dag)
        except Exception:
            pass
        _forget_bytecode(tmp)  # the warm-up file's own
    # the timetable classes of the common schedules are imported lazily by (de)serialization too
    from datetime import datetime, timedelta

    for i, schedule in enumerate(("@daily", "0 3 * * *", timedelta(hours=1), "@once", None)):
        try:
            with ad.DAG(f"pytest_astro_warmup_schedule_{i}", schedule=schedule,
                        start_date=datetime(2024, 1, 1)) as dag:
                pass
            ad.serialize_round_trip(dag)
        except Exception:
            continue


def start(root: str, sys_path: list[str]) -> str | None:
    """Everything that does not depend on which files are parsed: runs while the engine is still
    checking its cache and reading the DAG files' imports. Returns a fatal message, or None."""
    _forget_bytecode(root)  # only installed modules' bytecode is kept between runs (see child.py)
    os.chdir(root)
    # appended, as Airflow does: a DAG file named like a package (dags/deprecated.py) must not
    # shadow the real one for Airflow's own imports
    for p in sys_path:
        if p not in sys.path:
            sys.path.append(p)
    try:
        from pytest_astro.parse.adapter import adapter
    except ImportError as exc:
        return (f"cannot import Airflow in {sys.executable}: {exc}. Install Airflow in the "
                "environment that runs pytest-astro (pip install 'pytest-astro[airflow]' or the "
                "apache-airflow version your Astro Runtime uses)")

    # Airflow logs every import failure with a full traceback; we report it better ourselves, and
    # the captured output of a file should be what the file printed.
    import logging

    for name in ("airflow.dag_processing", "airflow.dag_processing.dagbag.DagBag",
                 "airflow.models.dagbag",
                 "airflow.models.dagbag.DagBag"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)

    _install_guards()
    adapter().disable_metastore_secrets()
    return None


def _install_guards() -> None:
    """What parse-time code may not do, refused with a clear error in every child (installed once,
    in the parent, before forking): reach the metadata database."""
    from pytest_astro.dbguard import install as install_db_guard

    install_db_guard()


def serve(root: str, request: Request, channel: Writer) -> int:
    """Parse ``request.files`` and send each verdict on ``channel``, then ``Done``."""
    from pytest_astro.netguard import install as install_network_guard
    from pytest_astro.parse.adapter import AIRFLOW_VERSION
    from pytest_astro.parse.secrets_backend import STORE

    paths = ProjectPaths(root)
    limits = Limits(float(request.timeout), int(request.memory_limit),
                    int(request.address_space_limit or 0))
    workers = max(1, int(request.workers))
    STORE["variables"].update(request.variables)
    STORE["connections"].update(request.connections)

    install_network_guard(request.allow_network)  # before the preload imports anything
    _preload(request.preload, limits.timeout)
    _TIMES["preloaded"] = time.perf_counter()
    if len(request.files) > 2 * workers:
        # what a warm-up and a clean heap save each child is paid once here; for a few files
        # (one DAG file edited) it would cost more than it saves
        _warm_up(paths)
        gc.collect()
    gc.freeze()
    _TIMES["warmed up"] = time.perf_counter()
    channel.send(Ready(airflow=AIRFLOW_VERSION))

    sys.stdout.flush()
    sys.stderr.flush()
    queue = Queue(request.files, workers, batching=request.isolation == "batch")
    with tempfile.TemporaryDirectory(prefix="pytest-astro-parse-") as tmp:  # the children's output
        pool = Pool(paths, limits, workers, queue,
                    start_child=functools.partial(child.run, paths, request), emit=channel.send, tmp=tmp)
        stats = pool.run()
    _TIMES["parsed"] = time.perf_counter()
    marks = list(_TIMES.items())
    timings = {name: round(t - previous, 3) for (name, t), (_, previous) in zip(marks[1:], marks)}
    channel.send(Done(processes=stats.processes, rechecked=stats.rechecked,
                      ended_early=stats.ended_early,
                      timings=timings))
    return 0


def main() -> int:
    # The channel to the engine is a private copy of stdout; fd 1 is pointed at stderr so that
    # anything Airflow or user code prints can never corrupt it.
    channel = Writer(os.dup(1))
    os.dup2(2, 1)
    # argv: the project root and its import paths (known before the engine has decided which files
    # to parse); stdin: the request, once it has
    fatal = start(sys.argv[1], json.loads(sys.argv[2]))
    if fatal:
        channel.send(Fatal(message=fatal))
        return 1
    _TIMES["airflow imported"] = time.perf_counter()
    line = sys.stdin.readline()
    if not line:  # the engine found nothing to parse after all
        return 0
    _TIMES["request read"] = time.perf_counter()
    return serve(sys.argv[1], Request.decode(line), channel)


if __name__ == "__main__":
    sys.exit(main())
