"""Every difference between Airflow versions lives here, and only here.

Runs inside the parse sandbox, and in the pytest process only for the fixtures that run tasks
(``running.py``), which users' tests call after importing Airflow themselves: importing this
module imports Airflow. The rest of the engine talks to Airflow only through ``adapter()``.
"""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from functools import cached_property, lru_cache
from typing import Any

import airflow

AIRFLOW_VERSION: str = airflow.__version__
MAJOR = int(AIRFLOW_VERSION.split(".")[0])


class _Silent:
    """A logger that drops everything (LoggingMixin's ``_log`` slot)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def memoize_cron_descriptions() -> None:
    """Make Airflow's cron timetables describe each cron expression once per process.

    Every cron timetable Airflow builds (the DAG's, and again on each serialization and
    deserialization: three per DAG for DAG006) renders its ``description`` with cron_descriptor,
    which loads its translations and parses the expression each time. The description depends only
    on the expression, the options and the locale, so a hit returns the same text and a miss (or an
    expression that fails) runs the real code: same results, same exceptions at the same points.
    """
    try:
        from airflow.timetables import _cron
    except ImportError:
        return
    real = getattr(_cron, "ExpressionDescriptor", None)
    if real is None or getattr(real, "_pytest_astro_memo", False):
        return
    import locale

    described: dict[tuple, str] = {}

    class ExpressionDescriptor(real):
        _pytest_astro_memo = True

        def __init__(self, expression, options=None, **kwargs):
            self._memo_args = (expression, options, kwargs)
            self._memo_key = None
            if options is None:  # an Options object may be changed after the call: not keyed
                try:
                    self._memo_key = (expression, tuple(sorted(kwargs.items())), locale.getlocale())
                except Exception:  # unhashable or unsortable arguments: describe as usual
                    self._memo_key = None
            if self._memo_key not in described:
                super().__init__(expression, options, **kwargs)

        def get_description(self, *args, **kwargs):
            if not args and not kwargs and self._memo_key in described:
                return described[self._memo_key]
            if not hasattr(self, "_options"):  # served from the memo so far; now asked for more
                expression, options, init_kwargs = self._memo_args
                super().__init__(expression, options, **init_kwargs)
            text = super().get_description(*args, **kwargs)
            if not args and not kwargs and self._memo_key is not None:
                described[self._memo_key] = text
            return text

    ExpressionDescriptor.__qualname__ = real.__qualname__
    ExpressionDescriptor.__module__ = real.__module__
    _cron.ExpressionDescriptor = ExpressionDescriptor


class _Adapter:
    """What the engine needs from Airflow: a DagBag for one file, the DAG classes, summaries."""

    version = AIRFLOW_VERSION

    def __init__(self) -> None:
        if MAJOR >= 3:
            from airflow.dag_processing.dagbag import DagBag
            from airflow.sdk.definitions.dag import DAG
        else:  # Airflow 2.10 / 2.11
            from airflow.models.dag import DAG
            from airflow.models.dagbag import DagBag
        self.DagBag = DagBag
        self.DAG = DAG
        memoize_cron_descriptions()

    @cached_property
    def _dagbag_parameters(self) -> frozenset[str]:
        return frozenset(inspect.signature(self.DagBag.__init__).parameters)

    def new_dagbag(self, dag_folder: str):
        """An empty DagBag that never reads the metadata database."""
        wanted = {"dag_folder": dag_folder, "include_examples": False, "safe_mode": False,
                  "read_dags_from_db": False, "load_op_links": False, "collect_dags": False}
        bag = self.DagBag(**{k: v for k, v in wanted.items() if k in self._dagbag_parameters})
        # The DagBag logs each import failure with a traceback; the sandbox reports it better, and
        # a file's captured output should hold only what the file printed.
        bag._log = _Silent()
        return bag

    def parse_file(self, bag, path: str) -> tuple[list, list[tuple[str, Any]]]:
        """Import ``path`` the way Airflow's DAG processor does: (the DAGs it bagged, every error it
        recorded as ``(text, the DAG it refused or None)``, in the order it recorded them).

        A DagBag keeps one error text per file: of several DAGs it refuses in one file (a cycle in
        one, a bad cron in another) the last one it bagged, in the order of a set of the module's
        DAGs, which varies between processes. Every refusal is returned here, with its DAG: the one
        the bag was validating (both versions validate each DAG, then bag it) when it recorded it.
        """
        refusals: list[tuple[str, Any]] = []
        bagging: list[Any] = [None]

        class Recorded(dict):
            def __setitem__(self, key, value):
                refusals.append((str(value), bagging[0]))
                super().__setitem__(key, value)

        real_validate = self.DAG.validate

        def validate(dag, *args, **kwargs):
            bagging[0] = dag
            return real_validate(dag, *args, **kwargs)

        bag.import_errors = Recorded(bag.import_errors)
        self.DAG.validate = validate
        try:
            dags = bag.process_file(path, only_if_updated=False, safe_mode=False)
        finally:
            self.DAG.validate = real_validate
        return dags, refusals

    # ---------------------------------------------------------------- variables and connections

    _NOT_FOUND = [
        ("variable", r"VARIABLE_NOT_FOUND.*Variable (?P<name>\S+) not found"),  # airflow.sdk.Variable (3.x)
        ("variable", r"^'?Variable (?P<name>\S+) does not exist"),  # airflow.models.Variable
        ("connection", r"CONNECTION_NOT_FOUND.*Connection (?P<name>\S+) not found"),
        ("connection", r"The conn_id `(?P<name>[^`]+)` isn't defined"),  # BaseHook / Connection.get
    ]

    def lookup_error(self, exc: BaseException) -> tuple[str, str] | None:
        """("variable" | "connection", name) when ``exc`` says a lookup found nothing."""
        text = str(exc)
        for kind, pattern in self._NOT_FOUND:
            m = re.search(pattern, text)
            if m:
                return kind, m.group("name").strip("'\"")
        return None

    def disable_metastore_secrets(self) -> None:
        """There is no database: the metastore secrets backend finds nothing (instead of trying to
        connect, failing, and logging a traceback for every undefined variable)."""
        from airflow.secrets.metastore import MetastoreBackend

        MetastoreBackend.get_variable = lambda self, *args, **kwargs: None
        MetastoreBackend.get_connection = lambda self, *args, **kwargs: None
        MetastoreBackend.get_conn_value = lambda self, *args, **kwargs: None

    def variable_classes(self) -> list:
        classes = []
        if MAJOR >= 3:
            from airflow.sdk.definitions.variable import Variable as SdkVariable

            classes.append(SdkVariable)
        from airflow.models.variable import Variable as ModelVariable

        classes.append(ModelVariable)
        return classes

    def serve_placeholders(self, on_missing) -> None:
        """``missing_variables = "placeholder"``: an undefined variable read without a default
        returns a placeholder (and ``on_missing(name)`` records a warning) instead of failing."""
        for cls in self.variable_classes():
            original = cls.get

            def get(klass, key, *args, __original=original, **kwargs):
                try:
                    return __original(key, *args, **kwargs)
                except Exception as exc:
                    found = self.lookup_error(exc)
                    if not found or found[0] != "variable":
                        raise
                    on_missing(key)
                    return f"pytest-astro-placeholder-{key}"

            cls.get = classmethod(get)

    def schedule_of(self, dag) -> str | None:
        timetable = type(getattr(dag, "timetable", None)).__name__
        if "Asset" in timetable or "Dataset" in timetable:  # AssetTriggeredTimetable, DatasetTriggered...
            return "assets"
        raw = getattr(dag, "schedule", None) if MAJOR >= 3 else getattr(dag, "schedule_interval", None)
        if raw is None:
            return None
        if isinstance(raw, str):
            return raw
        if isinstance(raw, timedelta):
            return f"timedelta({raw.total_seconds():g}s)"
        name = type(raw).__name__
        if "Asset" in name or "Dataset" in name or isinstance(raw, (list, tuple)):
            return "assets"
        return name

    def timetable_of(self, dag) -> str:
        tt = getattr(dag, "timetable", None)
        if tt is None:
            return ""
        return str(getattr(tt, "summary", None) or getattr(tt, "description", None) or type(tt).__name__)

    def failure_callback_of(self, dag) -> bool:
        cb = getattr(dag, "on_failure_callback", None)
        default = (getattr(dag, "default_args", None) or {}).get("on_failure_callback")
        return bool(cb or default)

    def summarize(self, dag, file: str, line: int | None) -> dict[str, Any]:
        default_args = dict(getattr(dag, "default_args", None) or {})
        start = getattr(dag, "start_date", None) or default_args.get("start_date")
        timeout = getattr(dag, "dagrun_timeout", None)
        tasks = list(dag.tasks)
        retries = default_args.get("retries")
        return {
            "dag_id": dag.dag_id,
            "file": file,
            "line": line,
            "task_ids": [t.task_id for t in tasks],
            "edges": sorted([t.task_id, d] for t in tasks for d in t.downstream_task_ids),
            "tags": sorted(str(t) for t in (getattr(dag, "tags", None) or [])),
            "owner": str(getattr(dag, "owner", "") or ""),
            "task_owners": {t.task_id: str(t.owner) for t in tasks},
            "retries": int(retries) if isinstance(retries, (int, float)) else None,
            "task_retries": {t.task_id: int(t.retries or 0) for t in tasks},
            "schedule": self.schedule_of(dag),
            "timetable": self.timetable_of(dag),
            "catchup": getattr(dag, "catchup", None),
            "start_date": start.isoformat() if start is not None else None,
            "start_date_tz": str(start.tzinfo) if start is not None and start.tzinfo else None,
            "description": getattr(dag, "description", None),
            "has_doc_md": bool(getattr(dag, "doc_md", None)),
            "max_active_runs": getattr(dag, "max_active_runs", None),
            "dagrun_timeout": timeout.total_seconds() if isinstance(timeout, timedelta) else None,
            "has_failure_callback": self.failure_callback_of(dag),
            "params": sorted(str(k) for k in (getattr(dag, "params", None) or {}).keys()),
            "pools": sorted({str(t.pool) for t in tasks if getattr(t, "pool", None)}),
            "operators": {t.task_id: type(t).__name__ for t in tasks},
        }

    # ---------------------------------------------------------------- DAG policies (policies/sandbox.py)

    def serialize_round_trip(self, dag) -> dict[str, Any]:
        """Serialize ``dag`` as the DAG processor does before the scheduler sees it, through JSON, and
        back (no database): {"ok": True} or {"ok": False, "error": "Type: message"}."""
        return self.round_trip(dag)[0]

    def round_trip(self, dag) -> tuple[dict[str, Any], Any]:
        """``serialize_round_trip(dag)``, and the DAG as the scheduler gets it back (None when the
        round trip failed)."""
        import json

        from pytest_astro.policies.schema import install

        if MAJOR >= 3:
            from airflow.serialization.serialized_objects import DagSerialization as Serializer
        else:
            from airflow.serialization.serialized_objects import SerializedDAG as Serializer
        install(Serializer)  # Airflow's schema, compiled, in front of its validator: same verdicts
        try:
            data = json.loads(json.dumps(Serializer.to_dict(dag)))
            scheduled = Serializer.from_dict(data)
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, None
        return {"ok": True}, scheduled

    def next_run(self, dag, after, scheduled=None) -> dict[str, Any]:
        """When a time-scheduled ``dag``'s timetable runs it next, at or after ``after`` (an aware
        datetime), without a database: ``{"periodic": False}`` for manual, once and asset schedules;
        else ``{"periodic": True, "next": ISO start of the next run's interval or None, "end_date":
        ISO or None, "error": "Type: message" when the timetable raised}``. ``scheduled``: the DAG
        as ``round_trip`` gave it back, whose timetable is the scheduler's (on Airflow 3 the same
        as converting the DAG's own, which is then not done again)."""
        from airflow.timetables.base import TimeRestriction

        timetable = dag.timetable
        if MAJOR >= 3:
            from airflow.serialization.encoders import coerce_to_core_timetable

            # the deserialized DAG's timetable is decode(encode(dag.timetable)) through JSON, which is
            # what coerce_to_core_timetable computes (without the JSON step)
            core = getattr(scheduled, "timetable", None) if scheduled is not None else None
            timetable = core if core is not None else coerce_to_core_timetable(timetable)
        if not getattr(timetable, "periodic", False):
            return {"periodic": False}
        import pendulum

        after = pendulum.instance(after)  # timetables call pendulum methods on it
        start, end = getattr(dag, "start_date", None), getattr(dag, "end_date", None)
        out: dict[str, Any] = {"periodic": True, "next": None, "end_date": end.isoformat() if end else None}
        try:
            earliest = max(start, after) if start is not None else after
            info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                              restriction=TimeRestriction(earliest=earliest, latest=end, catchup=True))
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
            return out
        if info is not None:
            out["next"] = info.data_interval.start.isoformat()
        return out

    def mapped_tasks(self, dag) -> list[dict[str, Any]]:
        """Tasks made with ``.expand()`` / ``.expand_kwargs()``: ``{"task_id", "over": {argument:
        [upstream task_ids]} (only arguments fed by upstream output), "limits": {name: value}}``."""
        if MAJOR >= 3:
            from airflow.sdk.definitions.xcom_arg import XComArg
        else:
            from airflow.models.xcom_arg import XComArg
        found = []
        for task in dag.tasks:
            if not type(task).__name__.endswith("MappedOperator"):
                continue
            value = task._get_specified_expand_input().value
            arguments = value if isinstance(value, dict) else {"(expand_kwargs)": value}
            over = {name: sorted({op.task_id for op, _ in XComArg.iter_xcom_references(v)})
                    for name, v in arguments.items()}
            found.append({"task_id": task.task_id, "over": {k: v for k, v in over.items() if v},
                          "limits": {name: getattr(task, name, None)
                                     for name in ("max_active_tis_per_dagrun", "max_active_tis_per_dag")}})
        return found

    #: serialized DAG fields that say where and when it was parsed, not what it is
    _VOLATILE = frozenset({"fileloc", "relative_fileloc", "_processor_dags_folder", "last_loaded"})

    def snapshot(self, dag, root: str) -> dict[str, Any]:
        """``dag`` serialized as the DAG processor serializes it, normalized for a stable, readable
        diff: tasks keyed by task_id, where it was parsed from left out, the project's path as
        ``<project>``. Differs between Airflow 2 and 3 (as their serialized forms do)."""
        if MAJOR >= 3:
            from airflow.serialization.serialized_objects import DagSerialization as Serializer
        else:
            from airflow.serialization.serialized_objects import SerializedDAG as Serializer
        data = Serializer.to_dict(dag)["dag"]
        tasks = {}
        for item in data.pop("tasks", []):
            task = dict(item.get("__var", item)) if isinstance(item, dict) else {"value": item}
            tasks[str(task.pop("task_id", len(tasks)))] = task
        out = {k: v for k, v in data.items() if k not in self._VOLATILE}
        out["tasks"] = tasks
        return _replace_prefix(out, root.rstrip("/") + "/", "<project>/")

    def set_cluster_policies(self, dag_policy, task_policy) -> None:
        """What the DagBag calls for each DAG and task it bags (Airflow's ``settings.dag_policy`` and
        ``settings.task_policy``), replaced by ``dag_policy(dag)`` / ``task_policy(task)``."""
        from airflow import settings

        settings.dag_policy = dag_policy
        settings.task_policy = task_policy

    # ---------------------------------------------------------------- running tasks in users' tests (running.py)

    def context_extras(self, logical_date) -> dict[str, Any]:
        """What a task's template context holds besides dates, params and the task: ``var``, ``conn``,
        ``macros``, ``outlet_events`` (and ``execution_date`` on Airflow 2)."""
        if MAJOR >= 3:
            from airflow.sdk.execution_time import macros
            from airflow.sdk.execution_time.context import ConnectionAccessor, OutletEventAccessors, VariableAccessor
        else:
            from airflow import macros
            from airflow.utils.context import ConnectionAccessor, OutletEventAccessors, VariableAccessor
        return {"var": {"json": VariableAccessor(deserialize_json=True),
                        "value": VariableAccessor(deserialize_json=False)},
                "conn": ConnectionAccessor(), "macros": macros, "outlet_events": OutletEventAccessors(),
                **({"execution_date": logical_date} if MAJOR < 3 else {})}

    def data_interval(self, dag, logical_date) -> tuple[Any, Any]:
        """The data interval of a manual run at ``logical_date`` (what ``dag.test()`` gives it)."""
        timetable = dag.timetable
        if MAJOR >= 3:
            from airflow.serialization.encoders import coerce_to_core_timetable

            timetable = coerce_to_core_timetable(timetable)
        interval = timetable.infer_manual_data_interval(run_after=logical_date)
        return interval.start, interval.end

    def execute(self, task, context: dict) -> Any:
        """``task.execute(context)`` as the task runner calls it (past the guard that warns about an
        ``execute`` called outside of it)."""
        if MAJOR >= 3:
            import contextvars

            from airflow.sdk.bases.operator import ExecutorSafeguard

            run_in = contextvars.copy_context()
            run_in.run(ExecutorSafeguard.tracker.set, task)
            return run_in.run(task.execute, context)
        from airflow.models.base import _sentinel

        return task.execute(context, **{f"{type(task).__name__}__sentinel": _sentinel})

    def dag_test(self, dag, logical_date, conf: dict | None):
        """``dag.test()`` for one logical date; the DagRun."""
        if MAJOR >= 3:
            return dag.test(logical_date=logical_date, run_conf=conf)
        return dag.test(execution_date=logical_date, run_conf=conf)

    # A tiny DAG parsed once in the warm parent before forking, so that Airflow's lazy
    # first-DAG work (imports, caches) is done once instead of once per file.
    WARMUP_SOURCE = '''
from datetime import datetime
from airflow{sdk} import DAG
from airflow.decorators import task
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("pytest_astro_warmup", start_date=datetime(2024, 1, 1), schedule=None, tags=["warmup"]):
    @task
    def c(x):
        return x
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b") >> c(1)
'''

    def warmup_source(self) -> str:
        source = self.WARMUP_SOURCE.format(sdk=".sdk" if MAJOR >= 3 else "")
        return source.replace("airflow.decorators", "airflow.sdk") if MAJOR >= 3 else source


def _replace_prefix(value: Any, prefix: str, replacement: str) -> Any:
    """``value`` with every string that starts with ``prefix`` starting with ``replacement`` instead."""
    if isinstance(value, str):
        return replacement + value[len(prefix):] if value.startswith(prefix) else value
    if isinstance(value, dict):
        return {k: _replace_prefix(v, prefix, replacement) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_prefix(v, prefix, replacement) for v in value]
    return value


@lru_cache(maxsize=None)
def adapter() -> _Adapter:
    return _Adapter()
