"""AST301-AST304: Airflow 3 migration, for projects on Astro Runtime 3.x (Airflow 3).

These rules run only when the project targets Airflow 3: the Dockerfile's ``FROM`` image is Astro
Runtime 3.x (or ``apache/airflow:3.*``), or ``target-airflow = 3`` is set in
``[tool.pytest-astro.lint]``, or ``--target-airflow 3`` is given. The target version wins over a
selection: ``--select AST3`` on an Airflow 2 project runs none of them.
Fixes are offered only where the rewrite is exact (same object, new import path or name).
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_astro.lint.core import Invalid, Rule, Valid, cst, dotted, is_dag_call, is_decorator, keyword, string_value
from pytest_astro.lint.rules import airflow3_names as names_table

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

#: Providers that Airflow 3 itself requires: a fix may import from them on any Airflow 3 project.
PREINSTALLED_PROVIDERS = frozenset({"standard", "common.sql", "common.io", "common.compat", "smtp"})


#: Whole modules Airflow 3 removed (``import airflow.operators.bash_operator`` fails).
_GONE_MODULES = frozenset(m for m, _ in REMOVED if m != "airflow.utils.dates")


def _merge() -> None:
    """The hand-checked tables above plus the generated ones (airflow3_names.py: every name ruff's
    AIR301/AIR302/AIR311/AIR312 know, checked against Airflow 3.3). A name that no longer imports on
    Airflow 3.3 is removed, even if Airflow 3.0 still had a deprecated alias."""
    for key, new in names_table.REMOVED.items():
        hand = MOVED.pop(key, None) or REMOVED.get(key)
        REMOVED[key] = (new[0], new[1]) if new else hand
    for key, new in names_table.MOVED.items():
        if key not in MOVED and key not in REMOVED:
            MOVED[key] = (new[0], new[1]) if new else None


_merge()


def fix_target_available(module: str, ctx) -> bool:
    """Whether an import from ``module`` works on the project's target Airflow: Airflow 3 core, the
    Task SDK, and the providers Airflow 3 requires."""
    if not module.startswith("airflow.providers."):
        return ctx.target_airflow == 3
    provider = module.split(".")[2]
    if provider == "common":
        provider = ".".join(module.split(".")[2:4])
    return ctx.target_airflow == 3 and provider in PREINSTALLED_PROVIDERS


def _use(new: tuple[str, str]) -> str:
    """``use X from M`` (naming the provider package to install when Airflow 3 does not bring it)."""
    module, name = new
    text = f"use {name} from {module}"
    if module.startswith("airflow.providers."):
        parts = module.split(".")
        provider = ".".join(parts[2:4]) if parts[2] == "common" else parts[2]
        if provider not in PREINSTALLED_PROVIDERS:
            text += f" (apache-airflow-providers-{provider.replace('.', '-').replace('_', '-')})"
    return text


def _import_names(node: cst.ImportFrom) -> list[cst.ImportAlias] | None:
    return None if isinstance(node.names, cst.ImportStar) else list(node.names)


def _rewrite(node: cst.ImportFrom, table: dict, ctx) -> cst.ImportFrom | None:
    """The same import from the new module, when every imported name moves to one module that the
    project's target Airflow has."""
    names = _import_names(node)
    module = dotted(node.module)
    if not names:
        return None
    targets = [table.get((module, dotted(a.name))) for a in names]
    if any(t is None for t in targets) or len({t[0] for t in targets}) != 1:
        return None
    if not fix_target_available(targets[0][0], ctx):
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
        # A version fallback: the except branch runs only on Airflow 2.
        Valid("try:\n    from airflow.sdk import Asset\nexcept ImportError:\n    from airflow.datasets import Dataset as Asset\n"),
    ]
    INVALID = [
        Invalid("from airflow.datasets import Dataset\n", expected_fix="from airflow.sdk import Asset as Dataset\n"),
        # The replacement's provider is not one Airflow 3 brings: reported, not rewritten.
        Invalid("from airflow.hooks.S3_hook import S3Hook\n"),
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
        hints += [_use(REMOVED[(module, n)]) for n in removed if REMOVED[(module, n)] and n not in _REMOVED_HINT]
        fix = _rewrite(node, REMOVED, self.ctx)
        target = ""
        if module.startswith("airflow.contrib") and not hints:
            target = "; import it from its provider package (apache-airflow-providers-*)"
        elif hints:
            target = "; " + "; ".join(dict.fromkeys(hints))
        what = ", ".join(removed) if removed else module
        self.report(node, f"{what} from {module} was removed in Airflow 3 (importing it fails on Airflow 3){target}",
                    replacement=fix)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = dotted(alias.name)
            if module.startswith(_REMOVED_MODULES) or module in _GONE_MODULES:
                self.report(alias, f"{module} was removed in Airflow 3 (importing it fails on Airflow 3)")


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
        # Version fallbacks (Airflow's own provider code does this): left alone, never rewritten.
        Valid("try:\n    from airflow.sdk import dag\nexcept ImportError:\n    from airflow.decorators import dag\n"),
        Valid("from airflow.providers.common.compat import AIRFLOW_V_3_0_PLUS\nif AIRFLOW_V_3_0_PLUS:\n"
              "    from airflow.sdk import DAG\nelse:\n    from airflow.models import DAG\n"),
        Valid("from airflow.decorators import dag\n", target_airflow=2),
    ]
    INVALID = [
        Invalid("from airflow.operators.bash import BashOperator\n",
                expected_fix="from airflow.providers.standard.operators.bash import BashOperator\n"),
        Invalid("from airflow.decorators import dag, task\n",
                expected_fix="from airflow.sdk import dag, task\n"),
        Invalid("from airflow import DAG\n", expected_fix="from airflow.sdk import DAG\n"),
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
        fix = _rewrite(node, MOVED, self.ctx)
        where = ", ".join(f"{old} -> {new_mod}.{new}" for old, (new_mod, new) in moved)
        self.report(node, f"import moved in Airflow 3 (deprecated, will be removed): {where}", replacement=fix)


# Old keyword -> new keyword (None: removed, no replacement)
_DAG_ARGS = {"schedule_interval": "schedule", "timetable": "schedule", "concurrency": "max_active_tasks",
             "sla_miss_callback": None, "default_view": None, "orientation": None, "full_filepath": None,
             "fail_stop": "fail_fast"}
_TASK_ARGS = {"task_concurrency": "max_active_tis_per_dag", "sla": None, "provide_context": None}
# Per operator (last name component) -> {old keyword: new keyword or None}
_OPERATOR_ARGS = {
    "TriggerDagRunOperator": {"execution_date": "logical_date"},
    "BranchDateTimeOperator": {"use_task_execution_day": "use_task_logical_date"},
    "BranchDayOfWeekOperator": {"use_task_execution_day": "use_task_logical_date"},
    "DayOfWeekSensor": {"use_task_execution_day": "use_task_logical_date"},
}


class RemovedArgument(Rule):
    """A DAG or task argument that Airflow 3 removed: ``schedule_interval`` and ``timetable``
    (both are ``schedule`` now), ``concurrency`` (``max_active_tasks``), ``task_concurrency``
    (``max_active_tis_per_dag``), ``fail_stop`` (``fail_fast``), and ``sla``/``sla_miss_callback``,
    ``default_view``, ``orientation`` (gone); operators' ``provide_context`` (gone),
    ``TriggerDagRunOperator(execution_date=)`` (``logical_date``), ``use_task_execution_day``
    (``use_task_logical_date``); the Task SDK's ``Variable.get(default_var=)`` (``default``); and a
    dict passed as ``Dataset``/``Asset``'s second positional argument (``extra=`` now: the second
    positional parameter of ``Asset`` is ``uri``).

    The DAG fails to parse with an unexpected keyword argument (the dict of an ``Asset`` silently
    becomes its uri instead). ``--fix`` renames the keyword when there is an exact replacement.
    """

    CODE = "AST303"
    NAME = "airflow3-removed-argument"
    MESSAGE = "argument removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.sdk import DAG\nDAG('d', schedule='@daily', catchup=False)\n"),
        Valid("def f(schedule_interval=None):\n    return schedule_interval\nf(schedule_interval=1)\n"),
        Valid("REPORT = {'sla': 60, 'provide_context': 'docs'}\n"),
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
        Invalid("from airflow.sdk import DAG\nDAG('d', default_args={'provide_context': True})\n"),
        Invalid("from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator\n"
                "TriggerDagRunOperator(task_id='t', trigger_dag_id='x', execution_date='{{ ds }}')\n",
                expected_fix="from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator\n"
                             "TriggerDagRunOperator(task_id='t', trigger_dag_id='x', logical_date='{{ ds }}')\n"),
        Invalid("from airflow.providers.standard.operators.python import PythonOperator\n"
                "PythonOperator(task_id='t', python_callable=print, provide_context=True)\n"),
        Invalid("from airflow.sdk import Asset\nA = Asset('s3://b/k', {'owner': 'x'})\n",
                expected_fix="from airflow.sdk import Asset\nA = Asset('s3://b/k', extra={'owner': 'x'})\n"),
        Invalid("from airflow.sdk import Variable\nfrom airflow.sdk import task\n\n@task\ndef f():\n"
                "    return Variable.get('k', default_var='d')\n",
                expected_fix="from airflow.sdk import Variable\nfrom airflow.sdk import task\n\n@task\ndef f():\n"
                             "    return Variable.get('k', default='d')\n"),
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
            extra = _OPERATOR_ARGS.get(dotted(node.func).split(".")[-1], {})
            self._check_call(node, {**_TASK_ARGS, **extra})
        elif dotted(node.func) == "Variable.get" and keyword(node, "default_var") is not None and self._sdk_variable():
            self._check_call(node, {"default_var": "default"})
        elif dotted(node.func).split(".")[-1] in ("Asset", "Dataset"):
            self._check_asset(node)

    def _check_asset(self, call: cst.Call) -> None:
        """``Dataset("s3://b/k", {"owner": "x"})``: a dict as the second positional argument."""
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if len(positional) < 2 or keyword(call, "extra") is not None:
            return
        second = positional[1]
        value = second.value
        is_dict = isinstance(value, (cst.Dict, cst.DictComp)) or (isinstance(value, cst.Call) and dotted(value.func) == "dict")
        if is_dict:
            fix = second.with_changes(keyword=cst.Name("extra"), equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
            self.report(second, "a dict as the second positional argument of Asset/Dataset becomes its uri on "
                                "Airflow 3 (silently: the asset's extra is empty); pass it as extra=", replacement=fix)

    def _sdk_variable(self) -> bool:
        """Variable comes from the Task SDK (airflow.models.Variable.get still takes default_var)."""
        for stmt in self.walker.module.body:
            for small in getattr(stmt, "body", ()) if isinstance(stmt, cst.SimpleStatementLine) else ():
                if isinstance(small, cst.ImportFrom) and small.module is not None and \
                        dotted(small.module) == "airflow.sdk" and not isinstance(small.names, cst.ImportStar) and \
                        any(dotted(a.name) == "Variable" and a.asname is None for a in small.names):
                    return True
        return False

    def visit_Decorator(self, node: cst.Decorator) -> None:
        if isinstance(node.decorator, cst.Call) and is_decorator(node, ("dag",)):
            self._check_call(node.decorator, _DAG_ARGS)

    def _in_default_args(self) -> bool:
        """The dict being visited is a DAG's default_args (``default_args={...}`` or
        ``default_args = {...}``): its keys are task arguments."""
        stack = self.walker.stack
        if len(stack) < 2 or not isinstance(stack[-1], cst.Dict):
            return False
        holder = stack[-2]
        if isinstance(holder, cst.Arg):
            return holder.keyword is not None and holder.keyword.value == "default_args"
        if isinstance(holder, cst.Assign):
            return any("default_args" in dotted(t.target) for t in holder.targets)
        return False

    def visit_DictElement(self, node: cst.DictElement) -> None:
        key = string_value(node.key)
        if key in _TASK_ARGS and self._in_default_args():
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
# Attributes of context objects that Airflow 3 removed -> replacement (None: none exact).
REMOVED_ATTRIBUTES: dict[str, str | None] = {"execution_date": "logical_date", "external_trigger": None}
_ATTR_HINT = {"external_trigger": "check dag_run.run_type == \"manual\" instead"}
_ATTR = re.compile(r"(?<![\w.])(dag_run|ti|task_instance)\.(" + "|".join(REMOVED_ATTRIBUTES) + r")\b")
_JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_KEY = re.compile(r"(?<![\w.'\"])(" + "|".join(sorted(REMOVED_CONTEXT, key=len, reverse=True)) + r")(?![\w'\"(])")
_CONTEXT_NAMES = {"context", "kwargs", "ctx", "kw", "context_kwargs", "op_kwargs"}


def _replacement(key: str) -> str | None:
    """The replacement of a removed context key (``next_ds``) or attribute (``dag_run.execution_date``)."""
    if "." in key:
        owner, attr = key.split(".", 1)
        new = REMOVED_ATTRIBUTES.get(attr)
        return f"{owner}.{new}" if new else None
    return REMOVED_CONTEXT[key]


def replace_in_template(text: str) -> tuple[list[str], str]:
    """(removed keys found inside ``{{ }}``/``{% %}`` blocks, the text with the exact ones replaced)."""
    found: list[str] = []

    def block(m: re.Match) -> str:
        def key(k: re.Match) -> str:
            found.append(k.group(1))
            return REMOVED_CONTEXT[k.group(1)] or k.group(1)

        def attribute(k: re.Match) -> str:
            found.append(k.group(0))
            return _replacement(k.group(0)) or k.group(0)
        return _KEY.sub(key, _ATTR.sub(attribute, m.group(0)))

    return found, _JINJA_BLOCK.sub(block, text)


def context_message(keys: list[str]) -> str:
    parts = []
    for key in dict.fromkeys(keys):
        new = _replacement(key)
        hint = _ATTR_HINT.get(key.split(".")[-1]) if "." in key else None
        parts.append(f"{key} -> {new}" if new else f"{key} ({hint})" if hint else key)
    return "context key removed in Airflow 3: " + ", ".join(parts)


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
        Valid("def settings(**kwargs):\n    return kwargs['conf']\n"),
    ]
    INVALID = [
        Invalid("cmd = 'echo {{ execution_date }} {{ next_ds }}'\n",
                expected_fix="cmd = 'echo {{ logical_date }} {{ data_interval_end | ds }}'\n", unsafe_fix=True),
        Invalid("sql = \"select * from t where d = '{{ dag_run.execution_date }}'\"\n",
                expected_fix="sql = \"select * from t where d = '{{ dag_run.logical_date }}'\"\n", unsafe_fix=True),
        Invalid("from airflow.sdk import task\n\n@task\ndef f(dag_run=None):\n    return dag_run.external_trigger\n", line=5),
        Invalid("def on_failure(context):\n    return context['dag_run'].external_trigger\n", line=2),
        Invalid("def on_failure(context):\n    return context.get('next_ds')\n", line=2),
        Invalid("def f(**context):\n    return context['execution_date']\n",
                expected_fix="def f(**context):\n    return context['logical_date']\n", unsafe_fix=True),
        Invalid("cmd = '{{ yesterday_ds }}'\n", line=1),
        Invalid("from airflow.sdk import task\n\n@task\ndef f(prev_ds=None):\n    return prev_ds\n", line=4),
    ]

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if "{" not in node.value:
            return
        found, new_value = replace_in_template(node.value)
        if not found:
            return
        exact = all(_replacement(k) is not None for k in found)
        fix = node.with_changes(value=new_value) if exact else None
        # logical_date is None for manual and asset-triggered runs on Airflow 3: review the rewrite.
        self.report(node, self._message(found), replacement=fix, unsafe=True)

    def visit_Call(self, node: cst.Call) -> None:
        # context.get("next_ds")
        if not isinstance(node.func, cst.Attribute) or node.func.attr.value != "get" or not node.args:
            return
        if dotted(node.func.value).split(".")[-1] not in _CONTEXT_NAMES:
            return
        key = string_value(node.args[0].value)
        if key in REMOVED_CONTEXT and self._is_context(node.func.value, key):
            self.report(node.args[0].value, self._message([key]))

    def _is_context(self, mapping: cst.CSTNode, key: str) -> bool:
        """Whether ``mapping[key]`` reads Airflow's task context. ``conf`` is a common word: for it the
        mapping must be named ``context`` or be read inside a ``@task`` function."""
        if key != "conf" or dotted(mapping).split(".")[-1] == "context":
            return True
        return any(isinstance(n, cst.FunctionDef) and any(is_decorator(d, ("task",)) for d in n.decorators)
                   for n in self.walker.stack)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        attr = node.attr.value
        if attr not in REMOVED_ATTRIBUTES:
            return
        value = node.value
        owner = dotted(value).split(".")[-1]
        if isinstance(value, cst.Subscript) and len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Index):
            owner = string_value(value.slice[0].slice.value) or ""
        if owner == "dag_run" or (owner in ("ti", "task_instance") and attr == "execution_date"):
            self.report(node.attr, self._message([f"{owner}.{attr}"]))

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if dotted(node.value).split(".")[-1] not in _CONTEXT_NAMES or len(node.slice) != 1:
            return
        index = node.slice[0].slice
        if not isinstance(index, cst.Index):
            return
        key = string_value(index.value)
        if key in REMOVED_CONTEXT and self._is_context(node.value, key):
            new = REMOVED_CONTEXT[key]
            fix = None
            if new is not None and new.isidentifier() and isinstance(index.value, cst.SimpleString):
                quote = index.value.quote
                fix = index.value.with_changes(value=f"{index.value.prefix}{quote}{new}{quote}")
                self.report(index.value, self._message([key]), replacement=fix, unsafe=True)
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
        return context_message(keys)


RULES = [RemovedAirflowImport, DeprecatedAirflowImport, RemovedArgument, RemovedContextKey]


_RUNTIME_VARYING = frozenset({
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
    "pendulum.now", "pendulum.today", "pendulum.yesterday", "pendulum.tomorrow", "time.time", "uuid.uuid1",
    "uuid.uuid4", "random.random", "random.randint", "random.choice", "random.uniform", "random.randrange",
    "random.sample", "random.getrandbits",
})


class DynamicDagValue(Rule):
    """A value that changes at every parse (``datetime.now()``, ``pendulum.now()``,
    ``date.today()``, ``uuid.uuid4()``, ``random.random()``, ``time.time()``) passed to a DAG,
    ``@dag``, ``@task`` or any operator or sensor argument.

    Airflow 3 versions DAGs: every parse that changes the serialized DAG creates a new DAG version
    in the metadata database (``dag_version``, ``serialized_dag``), so such a value makes a new
    version every 30 seconds, and the tables grow without end. Use a fixed value, or a template
    (``"{{ ds }}"``, ``"{{ logical_date }}"``) that Airflow renders when the task runs.
    ``start_date`` is reported by AST201.
    """

    CODE = "AST305"
    NAME = "airflow3-dynamic-dag-value"
    MESSAGE = "value that changes at every parse in a DAG or task argument"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.providers.standard.operators.bash import BashOperator\n"
              "BashOperator(task_id='t', bash_command='echo {{ ds }}')\n"),
        Valid("from datetime import datetime\nfrom airflow.sdk import task\n\n@task\ndef f(when=None):\n"
              "    return when or datetime.now()\n"),
        Valid("from datetime import datetime\nSTAMP = datetime.now()\nprint(dict(when=datetime.now()))\n"),
        Valid("from datetime import datetime\nfrom airflow.sdk import DAG\nDAG('d', start_date=datetime.now())\n"),
    ]
    INVALID = [
        Invalid("from datetime import datetime\nfrom airflow.providers.standard.sensors.date_time import DateTimeSensor\n"
                "DateTimeSensor(task_id='wait', target_time=datetime.now().isoformat())\n", line=3),
        Invalid("import pendulum\nfrom airflow.sdk import DAG, Param\n"
                "DAG('d', params={'day': Param(pendulum.now().to_date_string())})\n", line=3),
        Invalid("import datetime\nfrom airflow.sdk import dag\n\n@dag(params={'d': str(datetime.date.today())})\n"
                "def d():\n    pass\n", line=4),
    ]

    def __init__(self, ctx, walker) -> None:
        super().__init__(ctx, walker)
        self.names: dict[str, str] = {}  # local name -> qualified name, from the imports

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            name = dotted(alias.name)
            local = dotted(alias.asname.name) if alias.asname else name.split(".")[0]
            self.names[local] = name if alias.asname else local

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        module = dotted(node.module)
        for alias in node.names:
            name = dotted(alias.name)
            self.names[dotted(alias.asname.name) if alias.asname else name] = f"{module}.{name}"

    def _qualified(self, expr: cst.CSTNode) -> str:
        name = dotted(expr)
        head, _, rest = name.partition(".")
        if head not in self.names:
            return ""
        return self.names[head] + ("." + rest if rest else "")

    def _is_airflow_constructor(self, call: cst.Call) -> bool:
        qualified = self._qualified(call.func)
        if not qualified.startswith("airflow."):
            return False
        last = qualified.split(".")[-1]
        return last in ("DAG", "dag", "task") or last.endswith(("Operator", "Sensor")) or ".task." in qualified

    def _varying(self, expr: cst.CSTNode) -> list[tuple[cst.CSTNode, str]]:
        """Every runtime-varying call inside ``expr`` (not inside a lambda), in source order."""
        found = []
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Lambda):
                continue  # runs later, not at parse time
            if isinstance(node, cst.Call):
                qualified = self._qualified(node.func)
                if qualified in _RUNTIME_VARYING:
                    found.append((node, ".".join(qualified.split(".")[-2:])))
                    continue
            stack += reversed(node.children)
        return found

    def visit_Call(self, node: cst.Call) -> None:
        if not self.parse_time or not self._is_airflow_constructor(node):
            return
        for arg in node.args:
            if arg.keyword is None or arg.keyword.value in ("start_date", "end_date"):
                continue
            for hit in self._varying(arg.value):
                self.report(hit[0], f"{hit[1]}() changes at every parse; in a DAG or task argument it makes "
                                    f"a new DAG version at every parse on Airflow 3 (the metadata database grows "
                                    f"without end); use a fixed value or a template such as \"{{{{ ds }}}}\"")


RULES.append(DynamicDagValue)


#: Extensions Airflow renders as template files in the operators' templated fields (template_ext).
TEMPLATE_EXTENSIONS = (".sql", ".sh", ".bash", ".hql", ".j2")
TEMPLATE_REF = re.compile(r"""["']([^"'\n]+(?:""" + "|".join(re.escape(e) for e in TEMPLATE_EXTENSIONS) + r"""))["']""")


def template_search_path(dag_file: Path, searchpath: list[str]) -> list[Path]:
    """Where Airflow looks for a DAG's template files: the DAG file's folder, then ``template_searchpath``."""
    folder = dag_file.parent
    return [folder] + [folder / p for p in searchpath]


class RemovedContextKeyInTemplateFile(Rule):
    """A template file that an operator renders (``sql="queries/report.sql"``,
    ``bash_command="scripts/load.sh"``) and that uses a context key Airflow 3 removed:
    ``{{ execution_date }}``, ``{{ next_ds }}``, ``{{ dag_run.execution_date }}``,
    ``{{ prev_ds }}``, ``{{ yesterday_ds }}``...

    The template file is found the way Airflow finds it: next to the DAG file, then in the DAG's
    ``template_searchpath``. Airflow 3 renders a removed key as undefined (an empty string, or an
    error with ``StrictUndefined``), so the query or script runs with a wrong value. Replace the key
    in the template file: ``execution_date`` -> ``logical_date``, ``next_ds`` ->
    ``data_interval_end | ds``, ``prev_ds`` -> ``data_interval_start | ds`` (no exact
    equivalent). Nothing is rewritten: the file may be shared by other DAGs.
    """

    CODE = "AST306"
    NAME = "airflow3-removed-context-key-in-template-file"
    MESSAGE = "template file uses a context key removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        # No such file next to the DAG: nothing to check.
        Valid("from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator\n"
              "SQLExecuteQueryOperator(task_id='q', conn_id='pg', sql='no_such_query.sql')\n"),
        # A trailing space: Airflow runs the command instead of rendering a file.
        Valid("from airflow.providers.standard.operators.bash import BashOperator\n"
              "BashOperator(task_id='t', bash_command='no_such_script.sh ')\n"),
    ]
    INVALID = [
        # sql/daily_report.sql is one of FILES, next to the example DAG file.
        Invalid("from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator\n"
                "SQLExecuteQueryOperator(task_id='q', conn_id='pg', sql='sql/daily_report.sql')\n", line=2),
    ]
    FILES = {"sql/daily_report.sql": "select *\nfrom events\nwhere day = '{{ execution_date | ds }}'\n"}

    def __init__(self, ctx, walker) -> None:
        super().__init__(ctx, walker)
        self.searchpath: list[str] = []

    def _collect_searchpath(self, call: cst.Call) -> None:
        arg = keyword(call, "template_searchpath")
        if arg is None:
            return
        values = [arg.value] if not isinstance(arg.value, (cst.List, cst.Tuple)) else [e.value for e in arg.value.elements]
        self.searchpath += [v for v in (string_value(x) for x in values) if v]

    def visit_Call(self, node: cst.Call) -> None:
        if is_dag_call(node) or dotted(node.func).split(".")[-1] == "dag":
            self._collect_searchpath(node)
            return
        if keyword(node, "task_id") is None:
            return
        for arg in node.args:
            value = string_value(arg.value) if arg.keyword is not None else None
            if value and value.endswith(TEMPLATE_EXTENSIONS):
                self._check_file(arg.value, value)

    def _check_file(self, node: cst.CSTNode, name: str) -> None:
        for folder in template_search_path(Path(self.ctx.path), self.searchpath):
            path = folder / name
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            where = []
            for number, line in enumerate(text.splitlines(), 1):
                found, _ = replace_in_template(line)
                where += [(number, key) for key in found]
            if where:
                keys = [key for _, key in where]
                lines = ", ".join(str(n) for n in dict.fromkeys(n for n, _ in where))
                self.report(node, f"template file {name} (line {lines}): " + context_message(keys))
            return  # Airflow renders the first file found


RULES.append(RemovedContextKeyInTemplateFile)
