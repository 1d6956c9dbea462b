"""AST101-AST204: imports and DAG definitions that make parsing slow or DAGs behave unexpectedly."""

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


def _iterations(loop: cst.CSTNode) -> int | None:
    """How many times a ``for`` loop runs, when the source says (a literal collection or
    ``range(<int>)``); None when unknown."""
    if not isinstance(loop, cst.For):
        return None
    it = loop.iter
    if isinstance(it, (cst.List, cst.Tuple, cst.Set)):
        return None if any(isinstance(e, cst.StarredElement) for e in it.elements) else len(it.elements)
    if isinstance(it, cst.Dict):
        return None if any(isinstance(e, cst.StarredDictElement) for e in it.elements) else len(it.elements)
    if isinstance(it, cst.Call) and dotted(it.func) == "range" and len(it.args) == 1 and \
            isinstance(it.args[0].value, cst.Integer):
        return int(it.args[0].value.value, 0)
    return None


class DuplicateTaskId(Rule):
    """The same literal ``task_id`` twice in one DAG (or one task group), or a literal
    ``task_id`` inside a loop that runs more than once.

    Airflow refuses the whole file (``DuplicateTaskIdFound``) at parse time. Give every task a
    distinct id; in a loop, build it from the loop variable (``task_id=f"load_{table}"``).
    Task ids are unique per DAG: the DAG of an operator is its ``dag=`` argument, else the
    enclosing ``with DAG(...)``, ``@dag`` function or task group. Operators whose DAG the
    source does not tell (created outside any DAG and attached with ``dag.add_task``, or given
    ``task_group=``) are not checked. ``@task`` functions are not checked either: Airflow
    renames a repeated decorated task (``load__1``).
    """

    CODE = "AST203"
    NAME = "duplicate-task-id"
    MESSAGE = "duplicate task_id"
    _OP = "from airflow.providers.standard.operators.empty import EmptyOperator\n"
    VALID = [
        Valid("from airflow.sdk import DAG, TaskGroup\n" + _OP +
              "with DAG('d', catchup=False):\n    with TaskGroup('a'):\n        EmptyOperator(task_id='x')\n"
              "    with TaskGroup('b'):\n        EmptyOperator(task_id='x')\n"),
        Valid("from airflow.sdk import DAG\n" + _OP +
              "with DAG('one'):\n    EmptyOperator(task_id='x')\nwith DAG('two'):\n    EmptyOperator(task_id='x')\n"),
        Valid("from airflow.sdk import DAG\n" + _OP +
              "with DAG('d'):\n    for t in ['a', 'b']:\n        EmptyOperator(task_id=f'load_{t}')\n"),
        # One DAG per iteration: the same task_id in each is fine.
        Valid("from airflow.sdk import DAG\n" + _OP +
              "for r in ['eu', 'us']:\n    with DAG(f'report_{r}'):\n        EmptyOperator(task_id='build')\n"),
        # Airflow's example_branch_datetime_operator.py: three DAGs, dag= on each operator.
        Valid("from airflow.sdk import DAG\n" + _OP +
              "dag1 = DAG('one')\nEmptyOperator(task_id='x', dag=dag1)\n"
              "dag2 = DAG('two')\nEmptyOperator(task_id='x', dag=dag2)\n"
              "with DAG('three') as dag3:\n    pass\nEmptyOperator(task_id='x', dag=dag3)\n"),
        Valid("from airflow.sdk import DAG\n" + _OP +
              "with DAG('one') as one:\n    EmptyOperator(task_id='x')\nwith DAG('two') as two:\n"
              "    EmptyOperator(task_id='y', dag=one)\n    EmptyOperator(task_id='y')\n"),
        # DAG.add_task: the source does not say which DAG the operator is in until later.
        Valid("from airflow.sdk import DAG\n" + _OP +
              "a = DAG('a')\nb = DAG('b')\nt1 = EmptyOperator(task_id='x')\nt2 = EmptyOperator(task_id='x')\n"
              "a.add_task(t1)\nb.add_task(t2)\n"),
        # Decorated tasks: Airflow suffixes a repeated id (same__1).
        Valid("from airflow.sdk import dag, task\n\n@dag\ndef d():\n    @task(task_id='same')\n    def a(): ...\n"
              "    @task(task_id='same')\n    def b(): ...\n    a() >> b()\n\nd()\n"),
        Valid("from airflow.sdk import DAG\n" + _OP +
              "with DAG('d'):\n    for t in get_tables():\n        EmptyOperator(task_id='load')\n"),
        Valid("from airflow.sdk import DAG\n" + _OP +
              "a, b = DAG('a'), DAG('b')\nfor d in [a, b]:\n    EmptyOperator(task_id='x', dag=d)\n"),
    ]
    INVALID = [
        Invalid("from airflow.sdk import DAG\n" + _OP +
                "with DAG('d'):\n    EmptyOperator(task_id='x')\n    EmptyOperator(task_id='x')\n", line=5),
        Invalid("from airflow.sdk import DAG\n" + _OP +
                "with DAG('d'):\n    for t in ['a', 'b']:\n        EmptyOperator(task_id='load')\n", line=5),
        Invalid("from airflow.sdk import DAG\n" + _OP +
                "dag = DAG('d')\nEmptyOperator(task_id='x', dag=dag)\nEmptyOperator(task_id='x', dag=dag)\n", line=5),
        Invalid("from airflow.sdk import DAG\n" + _OP +
                "dag = DAG('d')\nwith dag:\n    EmptyOperator(task_id='x')\nEmptyOperator(task_id='x', dag=dag)\n",
                line=6),
        Invalid("from airflow.sdk import dag\n" + _OP +
                "\n@dag\ndef d():\n    EmptyOperator(task_id='x')\n    EmptyOperator(task_id='x')\n\nd()\n", line=7),
        # A DAG factory: one call adds both tasks to the same DAG.
        Invalid("from airflow.sdk import DAG\n" + _OP +
                "def add_tasks(dag):\n    EmptyOperator(task_id='x', dag=dag)\n    EmptyOperator(task_id='x', dag=dag)\n\n"
                "add_tasks(DAG('d'))\n", line=5),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return ctx.imported_at_parse_time and "task_id" in facts.words and facts.task_id_may_repeat

    def __init__(self, ctx: FileContext, walker) -> None:
        super().__init__(ctx, walker)
        self.seen: set[tuple] = set()
        #: (kind, key, runs): kind "dag"/"group"/"func"/"loop"/"none"; runs: a loop's iterations
        self.frames: list[tuple[str, object, int | None]] = [("func", "module", None)]
        #: variable name -> (the DAG's key, frame depth where it was bound)
        self.dags: dict[str, tuple[object, int]] = {}

    def _bind(self, name: str, key: object) -> None:
        self.dags[name] = (key, len(self.frames))

    # -- scopes -------------------------------------------------------------------------------
    def visit_With(self, node: cst.With) -> None:
        frame: tuple[str, object, int | None] = ("none", None, None)
        for item in node.items:
            expr = item.item
            if isinstance(expr, cst.Call) and is_dag_call(expr):
                frame = ("dag", id(node), None)
                if item.asname is not None and isinstance(item.asname.name, cst.Name):
                    self._bind(item.asname.name.value, id(node))
            elif isinstance(expr, cst.Call) and dotted(expr.func).split(".")[-1] == "TaskGroup":
                prefix = keyword(expr, "prefix_group_id")
                if prefix is None or (isinstance(prefix.value, cst.Name) and prefix.value.value == "True"):
                    frame = ("group", id(node), None)
            elif isinstance(expr, cst.Name) and expr.value in self.dags:
                frame = ("dag", self.dags[expr.value][0], None)
        self.frames.append(frame)

    def leave_With(self, node: cst.With) -> None:
        self.frames.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Call) and is_dag_call(node.value):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    self._bind(target.target.value, id(node.value))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if any(is_decorator(d, ("dag",)) for d in node.decorators):
            self.frames.append(("dag", id(node), None))
        elif any(is_decorator(d, ("task_group",)) for d in node.decorators):
            self.frames.append(("group", id(node), None))
        else:
            self.frames.append(("func", id(node), None))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.pop()

    def visit_For(self, node: cst.For) -> None:
        self.frames.append(("loop", None, _iterations(node)))

    def leave_For(self, node: cst.For) -> None:
        self.frames.pop()

    def visit_While(self, node: cst.While) -> None:
        self.frames.append(("loop", None, None))

    def leave_While(self, node: cst.While) -> None:
        self.frames.pop()

    # -- operators ----------------------------------------------------------------------------
    def _dag_of(self, call: cst.Call) -> tuple[object, int] | None:
        """(key of the DAG or group the operator joins, frame depth of that scope); None: unknown."""
        explicit = keyword(call, "dag")
        if explicit is not None:
            name = dotted(explicit.value)
            if name in self.dags:
                return self.dags[name]
            if not name:
                return None
            # A parameter or an imported DAG: one object for one run of the enclosing function, unless
            # a loop may rebind it (for dag in dags: ...): then we cannot tell.
            func = max(i for i, frame in enumerate(self.frames) if frame[0] == "func")
            if any(kind == "loop" for kind, _, _ in self.frames[func:]):
                return None
            return ("name", self.frames[func][1], name), func + 1
        for depth in range(len(self.frames) - 1, -1, -1):
            kind, key, _ = self.frames[depth]
            if kind in ("dag", "group"):
                return key, depth + 1
            if kind == "func":
                return None  # a plain function: its DAG is decided by whoever calls it
        return None

    def visit_Call(self, node: cst.Call) -> None:
        if not self.parse_time:
            return
        arg = keyword(node, "task_id")
        if arg is None or keyword(node, "task_group") is not None or has_star_kwargs(node):
            return
        callee = dotted(node.func).split(".")[-1]
        if not callee[:1].isupper() or callee in ("DAG", "TaskGroup"):
            return  # @task(...) / .override(...): Airflow makes repeated decorated ids unique
        value = string_value(arg.value)
        scope = self._dag_of(node)
        if value is None or scope is None:
            return
        key, depth = scope
        runs = [r for kind, _, r in self.frames[depth:] if kind == "loop"]
        if any(r is None for r in runs):
            return  # a loop of unknown length may run once
        if any(r >= 2 for r in runs):
            self.report(arg, f"task_id {value!r} inside a loop is the same on every iteration "
                             f"(DuplicateTaskIdFound); build it from the loop variable")
            return
        if (key, value) in self.seen:
            self.report(arg, f"task_id {value!r} is used more than once in this DAG "
                             f"(Airflow refuses the file: DuplicateTaskIdFound); give each task its own id")
        self.seen.add((key, value))


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


RULES = [HeavyImport, DynamicStartDate, MissingCatchup, DuplicateTaskId, TestFileInDagsFolder]
