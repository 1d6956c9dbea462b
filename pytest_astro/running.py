"""Fixtures that run tasks and DAGs in users' tests: ``astro_tasks`` and ``astro_run_dag``.

``astro_tasks`` needs no database: it builds a task's template context in memory (dates, params,
``var``/``conn`` served as the parse sandbox serves them, a task instance whose XComs live in a
dict), renders the task's templated fields on a copy, and calls its ``execute``, which for a
TaskFlow task calls its function with its resolved arguments. ``astro_run_dag`` runs a whole DAG
with Airflow's own ``dag.test()``, which needs a database: a SQLite file in the session's throwaway
AIRFLOW_HOME, its tables created once per session, reachable only from tests marked
``@pytest.mark.astro_db``; never the user's AIRFLOW_HOME.

Importing this module imports neither Airflow nor anything heavy; the fixtures import Airflow
when a test uses them. Version differences live in ``parse/adapter.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import pytest

_NO_SESSION = ("the {name} fixture needs `pytest --astro-dags` (or astro_dags = true in the pytest "
               "configuration): it runs tasks in pytest-astro's database-free sandbox")


def _require_session(request: pytest.FixtureRequest) -> None:
    if request.config.pluginmanager.get_plugin("astro-session") is None:
        pytest.fail(_NO_SESSION.format(name=request.fixturename), pytrace=False)


class TaskInstanceStub:
    """The ``ti`` of a context made by ``astro_tasks``: what operators use of a task instance, with
    XComs in memory. ``xcoms`` maps ``task_id`` (its return value) or ``(task_id, key)`` to
    values."""

    def __init__(self, task, run_id: str, logical_date, xcoms: Mapping | None = None) -> None:
        self.task = task
        self.task_id = task.task_id
        self.dag_id = task.dag.dag_id if task.has_dag() else "adhoc"
        self.run_id = run_id
        self.logical_date = logical_date
        self.map_index = -1
        self.try_number = 1
        self.max_tries = getattr(task, "retries", 0) or 0
        self.xcoms: dict[tuple[str, str], Any] = {}
        for where, value in (xcoms or {}).items():
            task_id, key = where if isinstance(where, tuple) else (where, "return_value")
            self.xcoms[(task_id, key)] = value
        self.pushed: dict[str, Any] = {}  # what the task pushed with xcom_push, by key

    def xcom_push(self, key: str, value: Any, *args, **kwargs) -> None:
        self.pushed[key] = value
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids=None, dag_id=None, key: str = "return_value", *args, default=None,
                  **kwargs):
        """The value given for ``task_ids`` (a list gives a list); ``default`` when none was
        given."""
        if task_ids is None:
            task_ids = self.task_id
        if isinstance(task_ids, str):
            return self.xcoms.get((task_ids, key), default)
        return [self.xcoms.get((task_id, key), default) for task_id in task_ids]

    def get_relevant_upstream_map_indexes(self, *args, **kwargs) -> None:
        return None  # no mapped upstreams here: every upstream value is given whole in ``xcoms``

    def __repr__(self) -> str:
        return f"<TaskInstanceStub {self.dag_id}.{self.task_id} {self.run_id}>"


@dataclass
class DagRunStub:
    """The ``dag_run`` of a context made by ``astro_tasks``."""

    dag_id: str
    run_id: str
    logical_date: Any
    data_interval_start: Any
    data_interval_end: Any
    conf: dict = field(default_factory=dict)
    run_type: str = "manual"


def _as_datetime(value, dag) -> Any:
    """``value`` (a datetime, date or ISO string; default: the DAG's start_date, else today) as an
    aware pendulum DateTime, the type Airflow puts in contexts."""
    import pendulum

    if value is None:
        value = getattr(dag, "start_date", None) if dag is not None else None
        if value is None:
            value = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if isinstance(value, str):
        value = pendulum.parse(value)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return pendulum.instance(value)


def _params(task, params: Mapping | None, conf: Mapping | None) -> dict[str, Any]:
    """The DAG's params, the task's, then the run's conf and ``params`` (later wins), as values."""
    merged: dict[str, Any] = {}
    dag = task.dag if task.has_dag() else None
    for source in (getattr(dag, "params", None) or {}, getattr(task, "params", None) or {}):
        for key in source:
            merged[key] = source[key]  # a ParamsDict gives the param's value
    merged.update(conf or {})
    merged.update(params or {})
    return merged


class AstroTasks:
    """What the ``astro_tasks`` fixture gives: ``context``, ``render`` and ``run`` for one task."""

    def context(self, task, *, logical_date=None, params: Mapping | None = None,
                conf: Mapping | None = None,
                xcoms: Mapping | None = None) -> dict[str, Any]:
        """A template context for ``task`` at ``logical_date``, as a manual run would see it.

        ``params`` override the DAG's and the task's params; ``conf`` is the run's conf (also merged
        into params, as Airflow does by default); ``xcoms`` are what ``ti.xcom_pull`` returns
        (``{"extract": [1, 2]}`` for a return value, ``{("extract", "key"): v}`` for another key).
        """
        from pytest_astro.parse.adapter import adapter

        dag = task.dag if task.has_dag() else None
        when = _as_datetime(logical_date, dag)
        start, end = adapter().data_interval(dag, when) if dag is not None else (when, when)
        run_id = f"manual__{when.isoformat()}"
        ti = TaskInstanceStub(task, run_id, when, xcoms)
        return {
            "dag": dag, "task": task, "ti": ti, "task_instance": ti, "run_id": run_id,
            "dag_run": DagRunStub(ti.dag_id, run_id, when, start, end, dict(conf or {})),
            "logical_date": when, "data_interval_start": start, "data_interval_end": end,
            "ds": when.strftime("%Y-%m-%d"), "ds_nodash": when.strftime("%Y%m%d"),
            "ts": when.isoformat(), "ts_nodash": when.strftime("%Y%m%dT%H%M%S"),
            "ts_nodash_with_tz": when.isoformat().replace("-", "").replace(":", ""),
            "params": _params(task, params, conf),
            "inlets": list(getattr(task, "inlets", []) or []),
            "outlets": list(getattr(task, "outlets", []) or []), "map_index_template": None,
            "expanded_ti_count": None,
            **adapter().context_extras(when),
        }

    def render(self, task, context: Mapping | None = None, **context_args) -> dict[str, Any]:
        """``task``'s templated fields rendered as Airflow renders them before ``execute``:
        ``{field: value}``. The task itself is left as it was (a copy is rendered)."""
        rendered = self._rendered(task,
                                  dict(context) if context is not None
                                  else self.context(task, **context_args))
        return {name: getattr(rendered, name) for name in task.template_fields}

    def run(self, task, context: Mapping | None = None, **context_args) -> Any:
        """Render ``task``'s templated fields, then call its ``execute``; its return value.

        For a TaskFlow task this calls its function with its arguments (upstream results from
        ``xcoms=``) and the context values it asks for. What the task pushes is in
        ``context["ti"].pushed`` when you pass your own ``context``.
        """
        context = dict(context) if context is not None else self.context(task, **context_args)
        rendered = self._rendered(task, context)
        context["task"] = rendered
        from pytest_astro.parse.adapter import adapter

        return adapter().execute(rendered, context)

    @staticmethod
    def _rendered(task, context: dict) -> Any:
        # Airflow's own copy for a run (locked: setting an attribute adds no dependency): rendering
        # sets the copy's attributes, the task in the user's DAG stays as it was for the next test.
        clone = task.prepare_for_execution()
        clone.render_template_fields(context)
        return clone


@dataclass
class DagRunOutcome:
    """What ``astro_run_dag`` returns: the run's state, each task's, and Airflow's DagRun."""

    state: str
    task_states: dict[str, str]
    dag_run: Any

    @property
    def failed_tasks(self) -> list[str]:
        return sorted(t for t, s in self.task_states.items() if s in ("failed", "upstream_failed"))


_DB_READY: set[str] = set()  # AIRFLOW_HOMEs whose database has Airflow's tables


def _session_database(request: pytest.FixtureRequest) -> None:
    """Create Airflow's tables in the session's throwaway SQLite file, once; refuse any other
    database."""
    from pytest_astro.inprocess import STATE

    if request.node.get_closest_marker("astro_db") is None:
        pytest.fail("astro_run_dag runs the DAG with Airflow's dag.test(), which needs a "
                    "database: mark the test with @pytest.mark.astro_db (it gets a throwaway "
                    "SQLite file, never your AIRFLOW_HOME)",
                    pytrace=False)
    from airflow import settings

    home = os.path.realpath(STATE.home or "")
    url = settings.engine.url if settings.engine is not None else None
    where = os.path.realpath(url.database) if url is not None and url.database else ""
    if (not STATE.home or url is None or url.get_backend_name() != "sqlite"
        or not where.startswith(home + os.sep)):
        pytest.fail(f"astro_run_dag: Airflow's database is {url!r}, not pytest-astro's throwaway "
                    "SQLite file: Airflow was imported before pytest-astro set up its "
                    "AIRFLOW_HOME (a conftest.py or plugin that imports Airflow at its top?). "
                    "Import Airflow inside tests or fixtures; pytest-astro never runs DAGs "
                    "against your own database", pytrace=False)
    if home not in _DB_READY:
        from airflow.utils import db

        db.initdb()
        _DB_READY.add(home)


@pytest.fixture
def astro_tasks(request: pytest.FixtureRequest) -> AstroTasks:
    """Render and run single tasks without a database: ``astro_tasks.render(task, logical_date=...,
    params=...)``, ``astro_tasks.run(task, xcoms={"upstream": value})``,
    ``astro_tasks.context(task)``."""
    _require_session(request)
    return AstroTasks()


@pytest.fixture
def astro_run_dag(request: pytest.FixtureRequest):
    """Run a whole DAG with ``dag.test()``: ``astro_run_dag(dag, logical_date=..., conf={...})``
    returns a ``DagRunOutcome`` (``.state``, ``.task_states``, ``.failed_tasks``, ``.dag_run``).
    Needs ``@pytest.mark.astro_db``: the run uses a throwaway SQLite database made once per
    session."""
    _require_session(request)

    def run(dag, *, logical_date=None, conf: Mapping | None = None) -> DagRunOutcome:
        from pytest_astro.parse.adapter import adapter

        _session_database(request)
        dag_run = adapter().dag_test(dag, _as_datetime(logical_date, dag),
                                     dict(conf) if conf else None)
        states = {ti.task_id: str(getattr(ti.state, "value", ti.state))
                  for ti in dag_run.get_task_instances()}
        return DagRunOutcome(str(getattr(dag_run.state, "value", dag_run.state)), states, dag_run)

    return run
