"""AST101-AST204 (AST203 in task_ids.py): imports and DAG definitions that make parsing slow or DAGs
behave unexpectedly."""

from __future__ import annotations

import posixpath

from pytest_astro.lint.core import (FileContext, Invalid, Rule, Valid, call_name, cst, dotted, has_star_kwargs,
                                    is_dag_call, is_decorator, keyword, string_value)
from pytest_astro.lint.prefilter import SourceFacts

#: Modules that take hundreds of milliseconds (or seconds) to import.
DEFAULT_HEAVY_IMPORTS = frozenset({
    "pandas", "numpy", "torch", "tensorflow", "keras", "sklearn", "pyspark", "scipy", "matplotlib",
    "seaborn", "plotly", "polars", "transformers", "xgboost", "lightgbm", "statsmodels", "cv2", "dask",
    "jax", "nltk", "spacy",
})


class HeavyImport(Rule):
    """A heavy library imported at module level (``pandas``, ``numpy``, ``torch``, ...).

    The import runs at every parse of the file and often costs more than the rest of the parse
    together; with many DAG files it is the main reason parsing hits ``dagbag_import_timeout``.
    Import it inside the task that uses it. For type hints, import under ``if TYPE_CHECKING:``.
    The list is configurable: ``heavy-imports`` (replace) or ``extend-heavy-imports`` (add) in
    ``[tool.pytest-astro.lint]``.
    """

    CODE = "AST101"
    NAME = "heavy-import-at-module-level"
    MESSAGE = "heavy import at module level"
    VALID = [
        Valid("from airflow.sdk import task\n\n@task\ndef f():\n    import pandas as pd\n    return pd.DataFrame()\n"),
        Valid("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas as pd\n"),
        Valid("import pandas_gbq_helpers\nimport json\n"),
    ]
    INVALID = [
        Invalid("import pandas as pd\n", line=1),
        Invalid("from sklearn.linear_model import LinearRegression\n"),
        Invalid("import json, numpy\n"),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        heavy = ctx.heavy_imports or DEFAULT_HEAVY_IMPORTS
        return ctx.imported_at_parse_time and facts.has_any(heavy) and \
            not facts.parse_time_import_heads.isdisjoint(heavy)

    def _heavy(self) -> frozenset[str]:
        return self.ctx.heavy_imports or DEFAULT_HEAVY_IMPORTS

    def _check(self, node: cst.CSTNode, module: str) -> None:
        if self.parse_time and module.split(".")[0] in self._heavy():
            self.report(node, f"'{module}' is imported at every parse of this file; import it inside the task that uses it")

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            self._check(alias, dotted(alias.name))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        self._check(node, dotted(node.module))


_DYNAMIC = {"now", "utcnow", "today", "days_ago"}


def _dynamic_call(expr: cst.CSTNode) -> str | None:
    """The dotted name of a now()/today()/days_ago() call inside ``expr``, if any."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Call):
            name = call_name(node)
            if name.split(".")[-1] in _DYNAMIC:
                return name
            stack.append(node.func)
            stack.extend(a.value for a in node.args)
        elif isinstance(node, cst.BinaryOperation):
            stack += [node.left, node.right]
        elif isinstance(node, cst.Attribute):
            stack.append(node.value)
        elif isinstance(node, cst.UnaryOperation):
            stack.append(node.expression)
    return None


def _takes_start_date(call: cst.Call) -> bool:
    """A DAG, ``@dag``, ``dict(...)`` (default_args) or operator call: whose start_date Airflow reads."""
    last = dotted(call.func).split(".")[-1]
    return is_dag_call(call) or last in ("dag", "dict") or last.endswith(("Operator", "Sensor")) or \
        keyword(call, "task_id") is not None


class DynamicStartDate(Rule):
    """A ``start_date`` computed from the current time (``datetime.now()``, ``pendulum.now()``,
    ``pendulum.today()``, ``days_ago()``).

    The value changes at every parse, so the scheduler sees a moving start date: runs may never
    be created, or be created at unexpected times, and the serialized DAG changes on every parse.
    Use a fixed date, e.g. ``pendulum.datetime(2024, 1, 1, tz="UTC")``.
    """

    CODE = "AST201"
    NAME = "dynamic-start-date"
    MESSAGE = "dynamic start_date"
    VALID = [
        Valid("import pendulum\nfrom airflow.sdk import DAG\nDAG('d', start_date=pendulum.datetime(2024, 1, 1, tz='UTC'))\n"),
        Valid("from datetime import datetime\nEND = datetime.now()\n"),
        # Not a DAG's or task's start_date: an API call inside a task.
        Valid("from datetime import datetime\nfrom airflow.sdk import task\n\n@task\ndef f(api):\n"
              "    return api.events(start_date=datetime.now())\n"),
        Valid("from datetime import datetime\nreport = build_report(start_date=datetime.now())\n"),
    ]
    INVALID = [
        Invalid("from datetime import datetime, timedelta\nfrom airflow.sdk import DAG\n"
                "DAG('d', start_date=datetime.now() - timedelta(days=1))\n", line=3),
        Invalid("import pendulum\nfrom airflow.sdk import dag\n\n@dag(start_date=pendulum.today('UTC').add(days=-1))\ndef d():\n    pass\n"),
        Invalid("from airflow.utils.dates import days_ago\ndefault_args = {'start_date': days_ago(2)}\n", line=2),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return "start_date" in facts.words and facts.has_any(_DYNAMIC)

    def _check(self, node: cst.CSTNode, value: cst.CSTNode) -> None:
        name = _dynamic_call(value)
        if name:
            self.report(node, f"start_date uses {name}(), which changes at every parse; "
                              f"use a fixed date such as pendulum.datetime(2024, 1, 1, tz=\"UTC\")")

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is None or node.keyword.value != "start_date" or not self.walker.parse_time:
            return
        call = self.walker.stack[-1] if self.walker.stack else None
        if isinstance(call, cst.Call) and _takes_start_date(call):
            self._check(node, node.value)

    def visit_DictElement(self, node: cst.DictElement) -> None:
        if string_value(node.key) == "start_date" and self.walker.parse_time:
            self._check(node, node.value)


_TIME_SCHEDULES = frozenset({
    "timedelta", "relativedelta", "CronTriggerTimetable", "CronDataIntervalTimetable", "DeltaDataIntervalTimetable",
    "DeltaTriggerTimetable", "MultipleCronTriggerTimetable", "AssetOrTimeSchedule", "DatasetOrTimeSchedule",
    "CronPartitionTimetable", "EventsTimetable",
})
_EVENT_SCHEDULES = frozenset({"Asset", "Dataset", "AssetAll", "AssetAny", "DatasetAll", "DatasetAny", "AssetAlias",
                              "DatasetAlias"})
_NO_INTERVALS = frozenset({"@once", "@continuous"})


def schedule_kind(value: cst.CSTNode | None, target: int | None, constants: dict[str, str]) -> str:
    """What a DAG's ``schedule=`` (``value``; None when not given) means for catchup:
    ``"time"`` (runs per time interval: catchup decides whether past ones run), ``"none"`` (no
    intervals: None, ``@once``, ``@continuous``, assets) or ``"unknown"`` (we cannot tell)."""
    if value is None:
        # Airflow 3: no schedule; Airflow 2: daily.
        return {3: "none", 2: "time"}.get(target, "unknown")  # type: ignore[arg-type]
    if isinstance(value, cst.Name):
        if value.value == "None":
            return "none"
        text = constants.get(value.value)
        if text is None:
            return "unknown"
        return "none" if text in _NO_INTERVALS else "time"
    text = string_value(value)
    if text is not None:
        return "none" if text in _NO_INTERVALS else "time"
    if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
        return "none"  # a list of assets
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.BitOr, cst.BitAnd)):
        return "none"  # Asset(...) | Asset(...)
    if isinstance(value, cst.Call):
        last = dotted(value.func).split(".")[-1]
        if last in _TIME_SCHEDULES:
            return "time"
        if last in _EVENT_SCHEDULES:
            return "none"
    return "unknown"


class MissingCatchup(Rule):
    """A DAG that runs on a time schedule without an explicit ``catchup=``.

    The default comes from ``[scheduler] catchup_by_default``: ``True`` on Airflow 2 and
    ``False`` on Airflow 3, so the same file backfills every interval since ``start_date`` on one
    version and not on the other, and an environment variable can change it. Write
    ``catchup=False`` (or ``True``) in the DAG's arguments. DAGs without time intervals
    (``schedule=None``, ``"@once"``, ``"@continuous"``, asset or dataset schedules, and a ``@dag``
    without ``schedule`` on Airflow 3) are not reported: catchup does nothing for them. When the
    schedule cannot be told from the source (a name imported from elsewhere), the rule is silent.
    """

    CODE = "AST202"
    NAME = "missing-catchup"
    MESSAGE = "DAG without an explicit catchup="
    VALID = [
        Valid("from airflow.sdk import DAG\nwith DAG('d', schedule='@daily', catchup=False):\n    pass\n"),
        Valid("from airflow.sdk import dag\n\n@dag(schedule=None, catchup=True)\ndef d():\n    pass\n"),
        Valid("from airflow.sdk import DAG\nARGS = dict(catchup=False)\nDAG('d', **ARGS)\n"),
        Valid("from airflow.sdk import DAG\nwith DAG('d', schedule=None):\n    pass\n"),
        Valid("from airflow.sdk import Asset, dag\n\n@dag(schedule=[Asset('s3://b/k')])\ndef d():\n    pass\n"),
        Valid("from airflow.datasets import Dataset\nfrom airflow import DAG\n"
              "with DAG('d', schedule=Dataset('a') | Dataset('b')):\n    pass\n", target_airflow=2),
        # Airflow 3: a @dag without schedule has none.
        Valid("from airflow.sdk import dag\n\n@dag\ndef d():\n    pass\n"),
        Valid("from airflow.sdk import DAG\nfrom settings import SCHEDULE\nDAG('d', schedule=SCHEDULE)\n"),
    ]
    INVALID = [
        Invalid("from airflow.sdk import DAG\nwith DAG('d', schedule='@daily'):\n    pass\n", line=2),
        Invalid("from datetime import timedelta\nfrom airflow.sdk import dag\n\n@dag(schedule=timedelta(hours=1))\n"
                "def d():\n    pass\n", line=4),
        Invalid("from airflow.sdk import DAG\nCRON = '0 3 * * *'\nDAG('d', schedule=CRON)\n", line=3),
        # Airflow 2: no schedule means daily.
        Invalid("from airflow.decorators import dag\n\n@dag\ndef d():\n    pass\n", line=3, target_airflow=2),
    ]
    _TEXT = "DAG without an explicit catchup= (default: True on Airflow 2, False on 3); add catchup=False or catchup=True"

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return facts.dag_without_catchup

    def __init__(self, ctx: FileContext, walker) -> None:
        super().__init__(ctx, walker)
        self.constants: dict[str, str] = {}
        for stmt in walker.module.body:  # module-level NAME = "string" constants
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign) and len(small.targets) == 1 and \
                            isinstance(small.targets[0].target, cst.Name):
                        text = string_value(small.value)
                        if text is not None:
                            self.constants[small.targets[0].target.value] = text

    def _check(self, node: cst.CSTNode, call: cst.Call | None) -> None:
        if call is not None and (keyword(call, "catchup") is not None or has_star_kwargs(call)):
            return
        arg = None
        if call is not None:
            arg = keyword(call, "schedule") or keyword(call, "schedule_interval") or keyword(call, "timetable")
        if schedule_kind(arg.value if arg else None, self.ctx.target_airflow, self.constants) == "time":
            self.report(node, self._TEXT)

    def visit_Call(self, node: cst.Call) -> None:
        if is_dag_call(node):
            self._check(node, node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        for decorator in node.decorators:
            if is_decorator(decorator, ("dag",)):
                expr = decorator.decorator
                self._check(decorator, expr if isinstance(expr, cst.Call) else None)


class TestFileInDagsFolder(Rule):
    """A test module (``test_*.py``, ``*_test.py``, ``conftest.py``) inside the dags folder.

    Airflow's DAG processor parses it like any DAG file (importing pytest and test fixtures on the
    scheduler), and DAG-only deploys ship it to every Deployment. Move it to ``tests/``, or list
    it in ``.airflowignore``.
    """

    CODE = "AST204"
    NAME = "test-file-in-dags-folder"
    MESSAGE = "test file inside the dags folder: Airflow parses it and DAG deploys ship it; move it to tests/ or add it to .airflowignore"
    VALID = [
        Valid("def test_x():\n    assert True\n", path="tests/dags/test_etl.py"),
        Valid("X = 1\n", path="dags/testing_utils.py"),
    ]
    INVALID = [
        Invalid("def test_x():\n    assert True\n", path="dags/test_etl.py", line=1),
        Invalid("import pytest\n", path="dags/sub/conftest.py"),
        Invalid("", path="dags/etl_test.py"),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        name = posixpath.basename(ctx.relpath)
        is_test = (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py") and name.endswith(".py")
        return is_test and ctx.in_dags_folder and not ctx.airflow_ignored

    def check_file(self) -> None:
        if self.may_report(SourceFacts(""), self.ctx):  # the file's path is all this rule looks at
            self.report(None, line=1)


RULES = [HeavyImport, DynamicStartDate, MissingCatchup, TestFileInDagsFolder]
