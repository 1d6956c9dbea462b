"""AST301-AST303: Airflow 3 migration (imports, arguments), for projects on Astro Runtime 3.x
(Airflow 3). Context keys (AST304, AST306) live in airflow3_context.py, values that change at every
parse (AST305) in airflow3_values.py, methods and plugin extensions (AST307, AST308) in
airflow3_methods.py.

These rules run only when the project targets Airflow 3: the Dockerfile's ``FROM`` image is Astro
Runtime 3.x (or ``apache/airflow:3.*``), or ``target-airflow = 3`` is set in
``[tool.pytest-astro.lint]``, or ``--target-airflow 3`` is given. The target version wins over a
selection: ``--select AST3`` on an Airflow 2 project runs none of them.
Fixes are offered only where the rewrite is exact (same object, new import path or name) and
imports only what Airflow 3 has.
"""

from __future__ import annotations

from pytest_astro.lint.core import (FileContext, Invalid, Rule, Valid, cst, dotted, is_dag_call,
                                    is_decorator, keyword, string_value)
from pytest_astro.lint.prefilter import SourceFacts
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
    ("airflow.utils.decorators", "apply_defaults"): None,
    ("airflow.utils.context", "get_current_context"): ("airflow.sdk", "get_current_context"),
    ("airflow.sensors.time_delta", "WaitSensor"): (f"{_STD}.sensors.time_delta", "WaitSensor"),
    ("airflow.datasets", "DatasetEvent"): None,
}
_REMOVED_HINT = {
    "SubDagOperator": "use a TaskGroup",
    "days_ago": "use a fixed date such as pendulum.datetime(2024, 1, 1, tz=\"UTC\")",
    "apply_defaults": "remove it and its decorator uses: operators apply their defaults themselves",
    "DatasetEvent": "it is private in Airflow 3: annotate with dict[str, Any]",
}
#: Whole packages Airflow 3 removed, beyond airflow.contrib -> where their classes went.
_MODULE_HINTS = {
    "airflow.kubernetes": "import it from the cncf.kubernetes provider (airflow.providers.cncf.kubernetes, "
                          "apache-airflow-providers-cncf-kubernetes)",
    "airflow.operators.presto_check_operator": "use the SQL*CheckOperator classes of "
                                               "airflow.providers.common.sql.operators.sql",
    "airflow.www": "the webserver is gone: FAB security classes are in airflow.providers.fab "
                   "(apache-airflow-providers-fab)",
    "airflow.api_connexion": "the Airflow 2 REST API is gone: use the Airflow 3 API (airflow.api_fastapi)",
}
_REMOVED_MODULES = ("airflow.contrib", "airflow.operators.dummy", "airflow.operators.subdag", "airflow.kubernetes",
                    "airflow.operators.presto_check_operator", "airflow.www", "airflow.api_connexion")

#: Providers that Airflow 3 itself requires: a fix may import from them on any Airflow 3 project.
PREINSTALLED_PROVIDERS = frozenset({"standard", "common.sql", "common.io", "common.compat", "smtp"})


#: Whole modules Airflow 3 removed (``import airflow.operators.bash_operator`` fails).
_GONE_MODULES = frozenset(m for m, _ in REMOVED if m not in (
    "airflow.utils.dates", "airflow.utils.decorators", "airflow.utils.context", "airflow.sensors.time_delta"))


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

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        if "airflow" not in facts.words:
            return False
        return any(module.startswith(_REMOVED_MODULES) or any((module, name) in REMOVED for name in names)
                   for module, names in facts.imports_from) or \
            any(module.startswith(_REMOVED_MODULES) or module in _GONE_MODULES for module in facts.imported_modules)

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
        package = next((p for p in _MODULE_HINTS if module == p or module.startswith(p + ".")), None)
        if module.startswith("airflow.contrib") and not hints:
            target = "; import it from its provider package (apache-airflow-providers-*)"
        elif package is not None and not hints:
            target = "; " + _MODULE_HINTS[package]
        elif hints:
            target = "; " + "; ".join(dict.fromkeys(hints))
        what = ", ".join(removed or [dotted(a.name) for a in names]) or module
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

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return "airflow" in facts.words and any((module, name) in MOVED for module, names in facts.imports_from
                                                for name in names)

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


#: Every argument AST303 reports is named by one of these words.
_ARGUMENT_WORDS = frozenset({*_DAG_ARGS, *_TASK_ARGS, *(k for args in _OPERATOR_ARGS.values() for k in args),
                             "default_var", "Asset", "Dataset", "datasets", "none_failed_or_skipped",
                             "NONE_FAILED_OR_SKIPPED"})
_OLD_TRIGGER_RULE, _NEW_TRIGGER_RULE = "none_failed_or_skipped", "none_failed_min_one_success"


class RemovedArgument(Rule):
    """A DAG or task argument that Airflow 3 removed: ``schedule_interval`` and ``timetable``
    (both are ``schedule`` now), ``concurrency`` (``max_active_tasks``), ``task_concurrency``
    (``max_active_tis_per_dag``), ``fail_stop`` (``fail_fast``), and ``sla``/``sla_miss_callback``,
    ``default_view``, ``orientation`` (gone); operators' ``provide_context`` (gone),
    ``TriggerDagRunOperator(execution_date=)`` (``logical_date``), ``use_task_execution_day``
    (``use_task_logical_date``); the Task SDK's ``Variable.get(default_var=)`` (``default``); and a
    dict passed as ``Dataset``/``Asset``'s second positional argument (``extra=`` now: the second
    positional parameter of ``Asset`` is ``uri``); ``DatasetOrTimeSchedule(datasets=)`` (``assets``);
    the trigger rule ``none_failed_or_skipped`` (``none_failed_min_one_success``).

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
        Invalid("from airflow.providers.standard.operators.empty import EmptyOperator\n"
                "EmptyOperator(task_id='t', trigger_rule='none_failed_or_skipped')\n",
                expected_fix="from airflow.providers.standard.operators.empty import EmptyOperator\n"
                             "EmptyOperator(task_id='t', trigger_rule='none_failed_min_one_success')\n"),
        Invalid("from airflow.sdk import task\nfrom airflow.utils.trigger_rule import TriggerRule\n\n"
                "@task(trigger_rule=TriggerRule.NONE_FAILED_OR_SKIPPED)\ndef f():\n    pass\n",
                expected_fix="from airflow.sdk import task\nfrom airflow.utils.trigger_rule import TriggerRule\n\n"
                             "@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)\ndef f():\n    pass\n"),
        Invalid("from airflow.timetables.assets import AssetOrTimeSchedule\n"
                "S = AssetOrTimeSchedule(timetable=None, datasets=[])\n", line=2,
                expected_fix="from airflow.timetables.assets import AssetOrTimeSchedule\n"
                             "S = AssetOrTimeSchedule(timetable=None, assets=[])\n"),
        Invalid("from airflow.sdk import Variable\nfrom airflow.sdk import task\n\n@task\ndef f():\n"
                "    return Variable.get('k', default_var='d')\n",
                expected_fix="from airflow.sdk import Variable\nfrom airflow.sdk import task\n\n@task\ndef f():\n"
                             "    return Variable.get('k', default='d')\n"),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return facts.has_any(_ARGUMENT_WORDS)

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

    def _check_trigger_rule(self, call: cst.Call) -> None:
        arg = keyword(call, "trigger_rule")
        if arg is None:
            return
        value = arg.value
        if string_value(value) == _OLD_TRIGGER_RULE and isinstance(value, cst.SimpleString):
            fix = value.with_changes(value=f"{value.prefix}{value.quote}{_NEW_TRIGGER_RULE}{value.quote}")
        elif isinstance(value, cst.Attribute) and value.attr.value == _OLD_TRIGGER_RULE.upper() and \
                dotted(value.value).split(".")[-1] == "TriggerRule":
            fix = value.with_changes(attr=cst.Name(_NEW_TRIGGER_RULE.upper()))
        else:
            return
        self.report(value, f"the trigger rule {_OLD_TRIGGER_RULE} was removed in Airflow 3 (the DAG fails to "
                           f"parse); use {_NEW_TRIGGER_RULE}, its new name", replacement=fix)

    def visit_Call(self, node: cst.Call) -> None:
        self._check_trigger_rule(node)
        if is_dag_call(node):
            self._check_call(node, _DAG_ARGS)
        elif keyword(node, "task_id") is not None:
            extra = _OPERATOR_ARGS.get(dotted(node.func).split(".")[-1], {})
            self._check_call(node, {**_TASK_ARGS, **extra})
        elif dotted(node.func) == "Variable.get" and keyword(node, "default_var") is not None and self._sdk_variable():
            self._check_call(node, {"default_var": "default"})
        elif dotted(node.func).split(".")[-1] in ("AssetOrTimeSchedule", "DatasetOrTimeSchedule"):
            self._check_call(node, {"datasets": "assets"})
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


RULES = [RemovedAirflowImport, DeprecatedAirflowImport, RemovedArgument]
