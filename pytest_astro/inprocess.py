"""The database-free sandbox inside the pytest process, for users' own DAG tests.

Under ``--astro-dags`` users' tests (and the ``dagbag``/``astro_dag`` fixtures) see Airflow as the
parse sandbox does: AIRFLOW_HOME at the project root as in the Astro runtime (what Airflow writes
goes to a throwaway folder), variables and connections from memory, the
metadata-database guard, and the project's folders importable. Airflow itself is imported only
when a test (or a test module) imports it; this module sets things up so that whenever that
happens, it happens inside the sandbox:

- environment variables are set at configure time (before test modules are imported);
- an import hook patches ``DagBag`` when Airflow loads it: ``include_examples=False`` is accepted
  on Airflow 3 (the Astro CLI's project templates pass it), a DAG file that failed its isolated
  parse is never imported in this process (its import error is reported from the isolated result),
  and ``get_dag`` answers from the bag, as stock does when the database does not know the DAG,
  instead of asking the database (unless the test is marked ``astro_db``).
"""

from __future__ import annotations

import importlib.abc
import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from pytest_astro.project import Project
from pytest_astro.results import FileResult
from pytest_astro.values import ProjectValues

_DAGBAG_MODULES = ("airflow.dag_processing.dagbag", "airflow.models.dagbag")


class _State:
    project: Project | None = None
    values: ProjectValues | None = None
    results: dict[str, FileResult] = {}  # path relative to the project (as the engine keys it) -> result
    saved_env: dict[str, str | None] = {}
    saved_path: list[str] = []
    home: str | None = None
    hook: _PatchOnImport | None = None
    ensure: Callable[[Iterable[Path]], None] | None = None  # given to activate()


STATE = _State()


def seed_store(store: dict) -> None:
    """Called by the secrets backend module when Airflow loads it in this process."""
    if STATE.values is not None:
        store["variables"].update(STATE.values.variables)
        store["connections"].update(STATE.values.connections)


def failed_text(result: FileResult) -> str:
    """An import error as Airflow's DagBag would hold it (a traceback-like text, last line = error)."""
    from pytest_astro.parse.failure_text import long_text

    return long_text(result)


def _patch_dagbag(module) -> None:
    # the module's own namespace: Airflow 3's deprecated airflow.models.dagbag hands DagBag out
    # through a module __getattr__ that warns (the class is patched where it is defined)
    cls = vars(module).get("DagBag")
    if cls is None or getattr(cls, "_pytest_astro_patched", False):
        return
    init = cls.__init__
    accepted = set(inspect.signature(init).parameters)
    process_file = cls.process_file
    collect_dags = cls.collect_dags
    get_dag = cls.get_dag

    def __init__(self, *args, **kwargs):
        # Airflow 3 dropped include_examples; the Astro CLI's templates still pass it.
        for name in ("include_examples", "read_dags_from_db"):
            if name not in accepted:
                kwargs.pop(name, None)
        init(self, *args, **kwargs)

    def patched_collect_dags(self, dag_folder=None, *args, **kwargs):
        # parse every DAG file of the folder in isolation first, in one batch
        if STATE.ensure is not None and STATE.project is not None:
            folder = Path(str(dag_folder or self.dag_folder))
            STATE.ensure(STATE.project.dag_files([folder]))
        return collect_dags(self, dag_folder, *args, **kwargs)

    def patched_process_file(self, filepath, *args, **kwargs):
        real = os.path.realpath(str(filepath))
        rel = STATE.project.relative(real) if STATE.project is not None else real
        if rel not in STATE.results and STATE.ensure is not None and STATE.project is not None \
                and STATE.project.is_dag_file(Path(real)):
            STATE.ensure([Path(real)])
        result = STATE.results.get(rel)
        if result is not None and not result.ok:
            # Never import in this process a file that failed (it may exit, hang or crash).
            self.import_errors[str(filepath)] = failed_text(result)
            return []
        return process_file(self, filepath, *args, **kwargs)

    def patched_get_dag(self, dag_id, *args, **kwargs):
        # Stock asks the metadata database whether the DAG expired since it was bagged, and answers
        # from the bag when the database does not know the DAG: with no database, that answer.
        from pytest_astro import dbguard

        if dbguard.allowed() or getattr(self, "read_dags_from_db", False):
            return get_dag(self, dag_id, *args, **kwargs)
        return self.dags.get(dag_id)

    cls.__init__ = __init__
    cls.process_file = patched_process_file
    cls.collect_dags = patched_collect_dags
    cls.get_dag = patched_get_dag
    cls._pytest_astro_patched = True


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches DagBag and installs the DB guard as soon as Airflow loads them in this process."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _DAGBAG_MODULES and fullname != "airflow.settings":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Wrapped(spec.loader, fullname)
                return spec
        return None


class _Wrapped(importlib.abc.Loader):
    def __init__(self, loader, fullname):
        self.loader = loader
        self.fullname = fullname

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _after_import(self.fullname, module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


def _after_import(fullname: str, module) -> None:
    if fullname == "airflow.settings":
        from pytest_astro import dbguard

        dbguard.install()
    else:
        _patch_dagbag(module)


def activate(project: Project, values: ProjectValues, ensure: Callable[[Iterable[Path]], None] | None = None) -> None:
    """Set up the sandbox for this process (idempotent; undone by ``deactivate``).

    ``ensure(paths)`` makes sure the isolated results of those DAG files are known (parsing the
    ones that are not yet) before Airflow imports any of them in this process."""
    if STATE.project is not None:
        return
    STATE.project, STATE.values, STATE.ensure = project, values, ensure
    STATE.home = tempfile.mkdtemp(prefix="pytest-astro-home-")
    from pytest_astro.parse.environment import airflow_env

    # AIRFLOW_HOME is the project root, as in the Astro runtime; what Airflow writes goes to STATE.home
    env = {
        **airflow_env(project, STATE.home),
        # a throwaway file that the guard keeps closed, unless a test is marked astro_db
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{STATE.home}/airflow.db",
    }
    STATE.saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    STATE.saved_path = list(sys.path)
    for p in project.importable_roots():  # appended, as Airflow does (see server.py)
        if str(p) not in sys.path:
            sys.path.append(str(p))
    STATE.hook = _PatchOnImport()
    sys.meta_path.insert(0, STATE.hook)
    for name in _DAGBAG_MODULES:  # Airflow already imported (e.g. by a conftest.py)
        if name in sys.modules:
            _patch_dagbag(sys.modules[name])
    if "airflow.settings" in sys.modules:
        from pytest_astro import dbguard

        dbguard.install()


def set_results(results: dict[str, FileResult]) -> None:
    """The session's results (the same dict, keyed by path relative to the project)."""
    assert STATE.project is not None
    STATE.results = results


def deactivate() -> None:
    if STATE.project is None:
        return
    for key, value in STATE.saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    sys.path[:] = STATE.saved_path
    if STATE.hook in sys.meta_path:
        sys.meta_path.remove(STATE.hook)
    if STATE.home:
        shutil.rmtree(STATE.home, ignore_errors=True)
    STATE.project = STATE.values = STATE.hook = STATE.home = STATE.ensure = None
    STATE.results = {}


def build_dagbag():
    """A real DagBag of the project's DAGs, built in this process from the files that passed their
    isolated parse; files that failed appear in ``import_errors`` without being imported here."""
    assert STATE.project is not None, "the pytest-astro sandbox is not active"
    module = None
    for name in _DAGBAG_MODULES:
        try:
            module = __import__(name, fromlist=["DagBag"])
            break
        except ImportError:
            continue
    if module is None:  # pragma: no cover
        raise RuntimeError("cannot import Airflow's DagBag in this environment")
    _patch_dagbag(module)
    files = STATE.project.all_dag_files
    if STATE.ensure is not None:
        STATE.ensure(files)
    bag = module.DagBag(dag_folder=str(STATE.project.dags_path), collect_dags=False)
    for path in files:
        bag.process_file(str(path), only_if_updated=False, safe_mode=False)
    return bag
