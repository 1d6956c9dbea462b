"""AST101-AST204: imports and DAG definitions that make parsing slow or DAGs behave unexpectedly."""

from __future__ import annotations

import posixpath

from pytest_astro.lint.core import (FileContext, Invalid, Rule, Valid, call_name, cst, dotted, has_star_kwargs,
                                    is_dag_call, is_decorator, keyword, string_value)

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
    ]
    INVALID = [
        Invalid("from datetime import datetime, timedelta\nfrom airflow.sdk import DAG\n"
                "DAG('d', start_date=datetime.now() - timedelta(days=1))\n", line=3),
        Invalid("import pendulum\nfrom airflow.sdk import dag\n\n@dag(start_date=pendulum.today('UTC').add(days=-1))\ndef d():\n    pass\n"),
        Invalid("from airflow.utils.dates import days_ago\ndefault_args = {'start_date': days_ago(2)}\n", line=2),
    ]

    def _check(self, node: cst.CSTNode, value: cst.CSTNode) -> None:
        name = _dynamic_call(value)
        if name:
            self.report(node, f"start_date uses {name}(), which changes at every parse; "
                              f"use a fixed date such as pendulum.datetime(2024, 1, 1, tz=\"UTC\")")

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None and node.keyword.value == "start_date":
            self._check(node, node.value)

    def visit_DictElement(self, node: cst.DictElement) -> None:
        if string_value(node.key) == "start_date":
            self._check(node, node.value)


class MissingCatchup(Rule):
    """A DAG without an explicit ``catchup=``.

    The default comes from ``[scheduler] catchup_by_default``: ``True`` on Airflow 2 and
    ``False`` on Airflow 3, so the same file backfills every interval since ``start_date`` on one
    version and not on the other, and an environment variable can change it. Write
    ``catchup=False`` (or ``True``) in the DAG's arguments.
    """

    CODE = "AST202"
    NAME = "missing-catchup"
    MESSAGE = "DAG without an explicit catchup="
    VALID = [
        Valid("from airflow.sdk import DAG\nwith DAG('d', schedule='@daily', catchup=False):\n    pass\n"),
        Valid("from airflow.sdk import dag\n\n@dag(schedule=None, catchup=True)\ndef d():\n    pass\n"),
        Valid("from airflow.sdk import DAG\nARGS = dict(catchup=False)\nDAG('d', **ARGS)\n"),
    ]
    INVALID = [
        Invalid("from airflow.sdk import DAG\nwith DAG('d', schedule='@daily'):\n    pass\n", line=2),
        Invalid("from airflow.sdk import dag\n\n@dag(schedule='@daily')\ndef d():\n    pass\n", line=3),
        Invalid("from airflow.sdk import dag\n\n@dag\ndef d():\n    pass\n", line=3),
    ]
    _TEXT = "DAG without an explicit catchup= (default: True on Airflow 2, False on 3); add catchup=False or catchup=True"

    def visit_Call(self, node: cst.Call) -> None:
        if is_dag_call(node) and keyword(node, "catchup") is None and not has_star_kwargs(node):
            self.report(node, self._TEXT)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        for decorator in node.decorators:
            if not is_decorator(decorator, ("dag",)):
                continue
            expr = decorator.decorator
            if isinstance(expr, cst.Call) and (keyword(expr, "catchup") is not None or has_star_kwargs(expr)):
                continue
            self.report(decorator, self._TEXT)


class DuplicateTaskId(Rule):
    """The same literal ``task_id`` twice in one DAG (or one task group), or a literal
    ``task_id`` inside a loop.

    Airflow refuses the whole file (``DuplicateTaskIdFound``) at parse time. Give every task a
    distinct id; in a loop, build it from the loop variable (``task_id=f"load_{table}"``).
    """

    CODE = "AST203"
    NAME = "duplicate-task-id"
    MESSAGE = "duplicate task_id"
    VALID = [
        Valid("from airflow.sdk import DAG, TaskGroup\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
              "with DAG('d', catchup=False):\n    with TaskGroup('a'):\n        EmptyOperator(task_id='x')\n"
              "    with TaskGroup('b'):\n        EmptyOperator(task_id='x')\n"),
        Valid("from airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
              "with DAG('one'):\n    EmptyOperator(task_id='x')\nwith DAG('two'):\n    EmptyOperator(task_id='x')\n"),
        Valid("from airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
              "with DAG('d'):\n    for t in ['a', 'b']:\n        EmptyOperator(task_id=f'load_{t}')\n"),
        # One DAG per iteration: the same task_id in each is fine.
        Valid("from airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
              "for r in ['eu', 'us']:\n    with DAG(f'report_{r}'):\n        EmptyOperator(task_id='build')\n"),
    ]
    INVALID = [
        Invalid("from airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
                "with DAG('d'):\n    EmptyOperator(task_id='x')\n    EmptyOperator(task_id='x')\n", line=5),
        Invalid("from airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
                "with DAG('d'):\n    for t in ['a', 'b']:\n        EmptyOperator(task_id='load')\n", line=5),
        Invalid("from airflow.sdk import dag, task\n\n@dag\ndef d():\n    @task(task_id='same')\n    def a(): ...\n"
                "    @task(task_id='same')\n    def b(): ...\n    a() >> b()\n\nd()\n", line=7),
    ]

    def __init__(self, ctx: FileContext, walker) -> None:
        super().__init__(ctx, walker)
        self.seen: set[tuple[int, str]] = set()

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is None or node.keyword.value != "task_id" or not self.parse_time:
            return
        value = string_value(node.value)
        if value is None:
            return
        if self.walker.loop_depth:
            self.report(node, f"task_id {value!r} inside a loop is the same on every iteration "
                              f"(DuplicateTaskIdFound); build it from the loop variable")
            return
        key = (id(self.walker.scope), value)
        if key in self.seen:
            self.report(node, f"task_id {value!r} is used more than once in this DAG "
                              f"(Airflow refuses the file: DuplicateTaskIdFound); give each task its own id")
        self.seen.add(key)


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

    def check_file(self) -> None:
        name = posixpath.basename(self.ctx.relpath)
        is_test = (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py") and name.endswith(".py")
        if is_test and self.ctx.in_dags_folder and not self.ctx.airflow_ignored:
            self.report(None, line=1)


RULES = [HeavyImport, DynamicStartDate, MissingCatchup, DuplicateTaskId, TestFileInDagsFolder]
