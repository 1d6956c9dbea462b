"""AST301-AST304: Airflow 3 migration, for projects on Astro Runtime 3.x (Airflow 3).

These rules run only when the project targets Airflow 3: the Dockerfile's ``FROM`` image is Astro
Runtime 3.x (or ``apache/airflow:3.*``), or ``target-airflow = 3`` is set in
``[tool.pytest-astro.lint]``, or they are selected by code (``--select AST3``).
Fixes are offered only where the rewrite is exact (same object, new import path or name).
"""

from __future__ import annotations

import re

from pytest_astro.lint.core import Invalid, Rule, Valid, cst, dotted, is_dag_call, is_decorator, keyword, string_value

_STD = "airflow.providers.standard"

# (old module, name) -> (new module, new name). Deprecated in Airflow 3: they import with a warning.
MOVED: dict[tuple[str, str], tuple[str, str]] = {}


def _moved(old_module: str, new_module: str, *names: str) -> None:
    for name in names:
        MOVED[(old_module, name)] = (new_module, name)


_moved("airflow.operators.bash", f"{_STD}.operators.bash", "BashOperator")
_moved("airflow.operators.python", f"{_STD}.operators.python", "PythonOperator", "BranchPythonOperator",
       "ShortCircuitOperator", "PythonVirtualenvOperator", "ExternalPythonOperator",
       "BranchExternalPythonOperator", "BranchPythonVirtualenvOperator")
_moved("airflow.operators.python", "airflow.sdk", "get_current_context")
_moved("airflow.operators.empty", f"{_STD}.operators.empty", "EmptyOperator")
_moved("airflow.operators.datetime", f"{_STD}.operators.datetime", "BranchDateTimeOperator")
_moved("airflow.operators.weekday", f"{_STD}.operators.weekday", "BranchDayOfWeekOperator")
_moved("airflow.operators.trigger_dagrun", f"{_STD}.operators.trigger_dagrun", "TriggerDagRunOperator")
_moved("airflow.operators.latest_only", f"{_STD}.operators.latest_only", "LatestOnlyOperator")
_moved("airflow.operators.generic_transfer", "airflow.providers.common.sql.operators.generic_transfer", "GenericTransfer")
_moved("airflow.operators.email", "airflow.providers.smtp.operators.smtp", "EmailOperator")
_moved("airflow.sensors.python", f"{_STD}.sensors.python", "PythonSensor")
_moved("airflow.sensors.bash", f"{_STD}.sensors.bash", "BashSensor")
_moved("airflow.sensors.date_time", f"{_STD}.sensors.date_time", "DateTimeSensor", "DateTimeSensorAsync")
_moved("airflow.sensors.time_sensor", f"{_STD}.sensors.time", "TimeSensor", "TimeSensorAsync")
_moved("airflow.sensors.weekday", f"{_STD}.sensors.weekday", "DayOfWeekSensor")
_moved("airflow.sensors.time_delta", f"{_STD}.sensors.time_delta", "TimeDeltaSensor", "TimeDeltaSensorAsync")
_moved("airflow.sensors.filesystem", f"{_STD}.sensors.filesystem", "FileSensor")
_moved("airflow.sensors.external_task", f"{_STD}.sensors.external_task", "ExternalTaskSensor",
       "ExternalTaskMarker")
_moved("airflow.sensors.base", "airflow.sdk", "BaseSensorOperator", "PokeReturnValue")
_moved("airflow.hooks.filesystem", f"{_STD}.hooks.filesystem", "FSHook")
_moved("airflow.hooks.subprocess", f"{_STD}.hooks.subprocess", "SubprocessHook")
_moved("airflow.hooks.package_index", f"{_STD}.hooks.package_index", "PackageIndexHook")
_moved("airflow.hooks.base", "airflow.sdk", "BaseHook")
_moved("airflow", "airflow.sdk", "DAG")
_moved("airflow.models", "airflow.sdk", "DAG", "Variable", "BaseOperator", "Param", "Connection")
_moved("airflow.models.dag", "airflow.sdk", "DAG")
_moved("airflow.models.variable", "airflow.sdk", "Variable")
_moved("airflow.models.param", "airflow.sdk", "Param")
_moved("airflow.models.baseoperator", "airflow.sdk", "BaseOperator", "chain", "chain_linear", "cross_downstream")
_moved("airflow.decorators", "airflow.sdk", "dag", "task", "task_group", "setup", "teardown")
_moved("airflow.utils.task_group", "airflow.sdk", "TaskGroup")
_moved("airflow.utils.edgemodifier", "airflow.sdk", "Label")
MOVED[("airflow.datasets", "Dataset")] = ("airflow.sdk", "Asset")

# Removed in Airflow 3: importing them fails the parse. Value: exact replacement or None.
REMOVED: dict[tuple[str, str], tuple[str, str] | None] = {
    ("airflow.operators.dummy", "DummyOperator"): (f"{_STD}.operators.empty", "EmptyOperator"),
    ("airflow.operators.dummy_operator", "DummyOperator"): (f"{_STD}.operators.empty", "EmptyOperator"),
    ("airflow.operators.bash_operator", "BashOperator"): (f"{_STD}.operators.bash", "BashOperator"),
    ("airflow.operators.python_operator", "PythonOperator"): (f"{_STD}.operators.python", "PythonOperator"),
    ("airflow.operators.python_operator", "BranchPythonOperator"): (f"{_STD}.operators.python", "BranchPythonOperator"),
    ("airflow.operators.python_operator", "ShortCircuitOperator"): (f"{_STD}.operators.python", "ShortCircuitOperator"),
    ("airflow.sensors.external_task_sensor", "ExternalTaskSensor"): (f"{_STD}.sensors.external_task", "ExternalTaskSensor"),
    ("airflow.hooks.base_hook", "BaseHook"): ("airflow.sdk", "BaseHook"),
    ("airflow.operators.subdag", "SubDagOperator"): None,
    ("airflow.operators.subdag_operator", "SubDagOperator"): None,
    ("airflow.utils.dates", "days_ago"): None,
}
_REMOVED_HINT = {
    "SubDagOperator": "use a TaskGroup",
    "days_ago": "use a fixed date such as pendulum.datetime(2024, 1, 1, tz=\"UTC\")",
}
_REMOVED_MODULES = ("airflow.contrib", "airflow.operators.dummy", "airflow.operators.subdag")


def _import_names(node: cst.ImportFrom) -> list[cst.ImportAlias] | None:
    return None if isinstance(node.names, cst.ImportStar) else list(node.names)


def _rewrite(node: cst.ImportFrom, table: dict) -> cst.ImportFrom | None:
    """The same import from the new module, when every imported name moves to one module."""
    names = _import_names(node)
    module = dotted(node.module)
    if not names:
        return None
    targets = [table.get((module, dotted(a.name))) for a in names]
    if any(t is None for t in targets) or len({t[0] for t in targets}) != 1:
        return None
    new_aliases = []
    for alias, (_, new_name) in zip(names, targets):
        old_name = dotted(alias.name)
        if new_name != old_name and alias.asname is None:
            # Keep the old name bound: the rest of the file keeps working unchanged.
            new_alias = alias.with_changes(name=cst.Name(new_name), asname=cst.AsName(name=cst.Name(old_name)))
        else:
            new_alias = alias.with_changes(name=cst.Name(new_name))
        new_aliases.append(new_alias)
    return node.with_changes(module=cst.parse_expression(targets[0][0]), names=new_aliases)


class RemovedAirflowImport(Rule):
    """An import that no longer exists in Airflow 3 (``airflow.operators.dummy``,
    ``airflow.operators.subdag``, ``airflow.utils.dates.days_ago``, ``airflow.contrib``, the
    ``*_operator`` modules, ...). The file fails to parse on Astro Runtime 3.

    ``--fix`` rewrites the import when the object still exists elsewhere (``DummyOperator`` ->
    ``EmptyOperator`` from the standard provider, imported under the old name so the rest of the
    file is unchanged). ``SubDagOperator`` and ``days_ago`` have no replacement: use a TaskGroup
    and a fixed ``start_date``.
    """

    CODE = "AST301"
    NAME = "airflow3-removed-import"
    MESSAGE = "removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.providers.standard.operators.empty import EmptyOperator\n"),
    ]
    INVALID = [
        Invalid("from airflow.operators.dummy import DummyOperator\n",
                expected_fix="from airflow.providers.standard.operators.empty import EmptyOperator as DummyOperator\n"),
        Invalid("from airflow.operators.bash_operator import BashOperator\n",
                expected_fix="from airflow.providers.standard.operators.bash import BashOperator\n"),
        Invalid("from airflow.utils.dates import days_ago\n", line=1),
        Invalid("from airflow.contrib.operators.ssh_operator import SSHOperator\n"),
        Invalid("import airflow.operators.subdag\n"),
    ]

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = dotted(node.module)
        names = _import_names(node) or []
        removed = [dotted(a.name) for a in names if (module, dotted(a.name)) in REMOVED]
        if not removed and not module.startswith(_REMOVED_MODULES):
            return
        hints = [_REMOVED_HINT[n] for n in removed if n in _REMOVED_HINT]
        fix = _rewrite(node, REMOVED)
        target = ""
        if fix is not None:
            target = f"; import from {dotted(fix.module)}"
        elif module.startswith("airflow.contrib"):
            target = "; import it from its provider package (apache-airflow-providers-*)"
        elif hints:
            target = "; " + "; ".join(hints)
        what = ", ".join(removed) if removed else module
        self.report(node, f"{what} from {module} was removed in Airflow 3 (the file fails to parse on Runtime 3){target}",
                    replacement=fix)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = dotted(alias.name)
            if module.startswith(_REMOVED_MODULES) or module in {m for m, _ in REMOVED if m != "airflow.utils.dates"}:
                self.report(alias, f"{module} was removed in Airflow 3 (the file fails to parse on Runtime 3)")


class DeprecatedAirflowImport(Rule):
    """An import path that moved in Airflow 3: core operators, sensors and hooks moved to the
    standard provider (``airflow.operators.bash`` -> ``airflow.providers.standard.operators.bash``),
    DAG-authoring names to the Task SDK (``airflow.decorators``/``airflow.models.DAG`` ->
    ``airflow.sdk``), ``Dataset`` became ``Asset``.

    The old paths still import, with a deprecation warning, and will be removed. ``--fix``
    rewrites the import (a renamed object is imported under its old name, so nothing else in the
    file changes).
    """

    CODE = "AST302"
    NAME = "airflow3-moved-import"
    MESSAGE = "moved in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.providers.standard.operators.bash import BashOperator\nfrom airflow.sdk import DAG, task\n"),
    ]
    INVALID = [
        Invalid("from airflow.operators.bash import BashOperator\n",
                expected_fix="from airflow.providers.standard.operators.bash import BashOperator\n"),
        Invalid("from airflow.decorators import dag, task\n",
                expected_fix="from airflow.sdk import dag, task\n"),
        Invalid("from airflow import DAG\n", expected_fix="from airflow.sdk import DAG\n"),
        Invalid("from airflow.datasets import Dataset\n", expected_fix="from airflow.sdk import Asset as Dataset\n"),
        Invalid("from airflow.models import DAG, DagRun\n"),
        # Two new modules: reported, not rewritten (split it by hand).
        Invalid("from airflow.operators.python import get_current_context, PythonOperator\n"),
    ]

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = dotted(node.module)
        names = _import_names(node) or []
        moved = [(dotted(a.name), MOVED[(module, dotted(a.name))]) for a in names if (module, dotted(a.name)) in MOVED]
        if not moved:
            return
        fix = _rewrite(node, MOVED)
        where = ", ".join(f"{old} -> {new_mod}.{new}" for old, (new_mod, new) in moved)
        self.report(node, f"import moved in Airflow 3 (deprecated, will be removed): {where}", replacement=fix)


# Old keyword -> new keyword (None: removed, no replacement)
_DAG_ARGS = {"schedule_interval": "schedule", "timetable": "schedule", "concurrency": "max_active_tasks",
             "sla_miss_callback": None, "default_view": None, "orientation": None, "full_filepath": None,
             "fail_stop": "fail_fast"}
_TASK_ARGS = {"task_concurrency": "max_active_tis_per_dag", "sla": None}


class RemovedArgument(Rule):
    """A DAG or task argument that Airflow 3 removed: ``schedule_interval`` and ``timetable``
    (both are ``schedule`` now), ``concurrency`` (``max_active_tasks``), ``task_concurrency``
    (``max_active_tis_per_dag``), ``fail_stop`` (``fail_fast``), and ``sla``/``sla_miss_callback``,
    ``default_view``, ``orientation`` (gone).

    The DAG fails to parse with an unexpected keyword argument. ``--fix`` renames the keyword
    when there is an exact replacement.
    """

    CODE = "AST303"
    NAME = "airflow3-removed-argument"
    MESSAGE = "argument removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.sdk import DAG\nDAG('d', schedule='@daily', catchup=False)\n"),
        Valid("def f(schedule_interval=None):\n    return schedule_interval\nf(schedule_interval=1)\n"),
    ]
    INVALID = [
        Invalid("from airflow.sdk import DAG\nDAG('d', schedule_interval='@daily', catchup=False)\n",
                expected_fix="from airflow.sdk import DAG\nDAG('d', schedule='@daily', catchup=False)\n"),
        Invalid("from airflow.sdk import dag\n\n@dag(schedule_interval=None, concurrency=4)\ndef d():\n    pass\n",
                expected_fix="from airflow.sdk import dag\n\n@dag(schedule=None, max_active_tasks=4)\ndef d():\n    pass\n"),
        Invalid("from airflow.sdk import DAG\nDAG('d', sla_miss_callback=print)\n"),
        Invalid("from airflow.providers.standard.operators.bash import BashOperator\n"
                "BashOperator(task_id='t', bash_command='true', task_concurrency=1)\n",
                expected_fix="from airflow.providers.standard.operators.bash import BashOperator\n"
                             "BashOperator(task_id='t', bash_command='true', max_active_tis_per_dag=1)\n"),
        Invalid("default_args = {'retries': 1, 'sla': 60}\n"),
    ]

    def _check_call(self, call: cst.Call, table: dict) -> None:
        present = {a.keyword.value for a in call.args if a.keyword is not None}
        for arg in call.args:
            if arg.keyword is None or arg.keyword.value not in table:
                continue
            old, new = arg.keyword.value, table[arg.keyword.value]
            fix = None
            if new is not None and new not in present:
                fix = arg.with_changes(keyword=cst.Name(new))
                present.add(new)
            what = f"use {new}=" if new else "remove it"
            self.report(arg, f"{old}= was removed in Airflow 3 (the DAG fails to parse); {what}", replacement=fix)

    def visit_Call(self, node: cst.Call) -> None:
        if is_dag_call(node):
            self._check_call(node, _DAG_ARGS)
        elif keyword(node, "task_id") is not None:
            self._check_call(node, _TASK_ARGS)

    def visit_Decorator(self, node: cst.Decorator) -> None:
        if isinstance(node.decorator, cst.Call) and is_decorator(node, ("dag",)):
            self._check_call(node.decorator, _DAG_ARGS)

    def visit_DictElement(self, node: cst.DictElement) -> None:
        key = string_value(node.key)
        if key in _TASK_ARGS:
            new = _TASK_ARGS[key]
            what = f"use {new!r}" if new else "remove it"
            self.report(node, f"{key!r} was removed in Airflow 3; {what}")


# Removed context keys -> exact replacement expression (None: no exact one)
REMOVED_CONTEXT: dict[str, str | None] = {
    "execution_date": "logical_date",
    "next_execution_date": "data_interval_end",
    "next_ds": "data_interval_end | ds",
    "next_ds_nodash": "data_interval_end | ds_nodash",
    "prev_ds": None, "prev_ds_nodash": None, "prev_execution_date": None,
    "prev_execution_date_success": "prev_data_interval_start_success",
    "tomorrow_ds": None, "tomorrow_ds_nodash": None, "yesterday_ds": None, "yesterday_ds_nodash": None,
    "conf": None,
}
_JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_KEY = re.compile(r"(?<![\w.'\"])(" + "|".join(sorted(REMOVED_CONTEXT, key=len, reverse=True)) + r")(?![\w'\"(])")
_CONTEXT_NAMES = {"context", "kwargs", "ctx", "kw", "context_kwargs", "op_kwargs"}


class RemovedContextKey(Rule):
    """A template variable or task-context key that Airflow 3 removed: ``execution_date``,
    ``next_ds``, ``next_execution_date``, ``prev_ds``, ``tomorrow_ds``, ``yesterday_ds``, ``conf``...

    Templates render them as undefined (or fail), and ``context["execution_date"]`` raises
    ``KeyError`` at run time. ``--fix`` rewrites the keys that have an exact replacement
    (``execution_date`` -> ``logical_date``, ``next_ds`` -> ``data_interval_end | ds`` in
    templates, ``next_execution_date`` -> ``data_interval_end``); for the others, use
    ``data_interval_start``/``data_interval_end`` or ``macros.ds_add(ds, 1)``.
    """

    CODE = "AST304"
    NAME = "airflow3-removed-context-key"
    MESSAGE = "context key removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("cmd = 'echo {{ ds }} {{ logical_date }} {{ dag_run.conf }}'\n"),
        Valid("execution_date = 1\nprint('execution_date is a word')\n"),
    ]
    INVALID = [
        Invalid("cmd = 'echo {{ execution_date }} {{ next_ds }}'\n",
                expected_fix="cmd = 'echo {{ logical_date }} {{ data_interval_end | ds }}'\n"),
        Invalid("def f(**context):\n    return context['execution_date']\n",
                expected_fix="def f(**context):\n    return context['logical_date']\n"),
        Invalid("cmd = '{{ yesterday_ds }}'\n", line=1),
        Invalid("from airflow.sdk import task\n\n@task\ndef f(prev_ds=None):\n    return prev_ds\n", line=4),
    ]

    def _replace_in_template(self, text: str) -> tuple[list[str], str]:
        found: list[str] = []

        def block(m: re.Match) -> str:
            def key(k: re.Match) -> str:
                found.append(k.group(1))
                new = REMOVED_CONTEXT[k.group(1)]
                return new if new is not None else k.group(1)
            return _KEY.sub(key, m.group(0))

        return found, _JINJA_BLOCK.sub(block, text)

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if "{" not in node.value:
            return
        found, new_value = self._replace_in_template(node.value)
        if not found:
            return
        exact = all(REMOVED_CONTEXT[k] is not None for k in found)
        fix = node.with_changes(value=new_value) if exact else None
        self.report(node, self._message(found), replacement=fix)

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if dotted(node.value).split(".")[-1] not in _CONTEXT_NAMES or len(node.slice) != 1:
            return
        index = node.slice[0].slice
        if not isinstance(index, cst.Index):
            return
        key = string_value(index.value)
        if key in REMOVED_CONTEXT:
            new = REMOVED_CONTEXT[key]
            fix = None
            if new is not None and new.isidentifier() and isinstance(index.value, cst.SimpleString):
                quote = index.value.quote
                fix = index.value.with_changes(value=f"{index.value.prefix}{quote}{new}{quote}")
                self.report(index.value, self._message([key]), replacement=fix)
            else:
                self.report(index.value, self._message([key]))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not any(is_decorator(d, ("task",)) for d in node.decorators):
            return
        for param in (*node.params.params, *node.params.kwonly_params):
            if param.name.value in REMOVED_CONTEXT:
                self.report(param, self._message([param.name.value]))

    @staticmethod
    def _message(keys: list[str]) -> str:
        parts = []
        for key in dict.fromkeys(keys):
            new = REMOVED_CONTEXT[key]
            parts.append(f"{key} -> {new}" if new else key)
        return "context key removed in Airflow 3: " + ", ".join(parts)


RULES = [RemovedAirflowImport, DeprecatedAirflowImport, RemovedArgument, RemovedContextKey]
