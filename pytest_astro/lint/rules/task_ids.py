"""AST203: a task id that Airflow would add twice to one DAG, computed the way Airflow computes it.

A task's id in its DAG is its ``task_id`` prefixed by its task group (``g.x``), unless the group
has ``prefix_group_id=False``. The group is the ``task_group=`` argument, else the innermost
``with TaskGroup(...)`` block or ``@task_group`` function the operator is made in, even when it
passes ``dag=`` (``airflow.sdk.bases.operator.BaseOperatorMeta`` in Airflow 3,
``BaseOperator.__init__`` in Airflow 2). The rule compares ids only where it knows them, or knows
that two of them are equal (two literals made in one run of one group); elsewhere it stays silent.
"""

from __future__ import annotations

from typing import NamedTuple

from pytest_astro.lint.core import (FileContext, Invalid, Rule, Valid, cst, dotted, has_star_kwargs, is_dag_call,
                                    is_decorator, keyword, string_value)
from pytest_astro.lint.prefilter import SourceFacts


class Scope(NamedTuple):
    """Where an operator made here puts its id: ``prefix + task_id`` is unique under ``key``."""

    key: object  # the DAG's key, or a group's own key when the group's id is unknown
    prefix: str  # what Airflow puts before the task_id ("" under a group whose id is unknown)
    depth: int  # frames from here on run once per scope: a loop among them repeats the id
    dag: object  # the key of the DAG (None: unknown)
    dag_depth: int  # the depth of the DAG's own scope

    def root(self) -> Scope:
        """The DAG's own scope (where a ``prefix_group_id=False`` group puts its tasks)."""
        return Scope(self.dag, "", self.dag_depth, self.dag, self.dag_depth)


def dag_scope(key: object, depth: int) -> Scope:
    return Scope(key, "", depth, key, depth)


class Frame(NamedTuple):
    kind: str  # "dag", "group", "func", "loop" or "none"
    scope: Scope | None  # of a "dag" or "group" frame
    runs: int | None = None  # a loop's iterations (None: unknown)
    boundary: bool = False  # a function body: the caller's DAG and group context are not known here
    key: object = None


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


def _is_task_group_call(expr: cst.CSTNode) -> bool:
    return isinstance(expr, cst.Call) and dotted(expr.func).split(".")[-1] == "TaskGroup"


def _prefixes(call: cst.Call) -> bool | None:
    """The group's ``prefix_group_id`` (True when not given; None when not a literal)."""
    arg = keyword(call, "prefix_group_id")
    if arg is None:
        return True
    if isinstance(arg.value, cst.Name) and arg.value.value in ("True", "False"):
        return arg.value.value == "True"
    return None


def _group_id(call: cst.Call) -> str | None:
    arg = keyword(call, "group_id")
    if arg is None and call.args and call.args[0].keyword is None and not call.args[0].star:
        arg = call.args[0]
    return None if arg is None else string_value(arg.value)


_OP = "from airflow.providers.standard.operators.empty import EmptyOperator\n"
_AF2 = "from datetime import datetime\nfrom airflow import DAG\nfrom airflow.utils.task_group import TaskGroup\n" + _OP
_DAG = "dag = DAG(dag_id='d', schedule=None, start_date=datetime(2024, 1, 1))\n"


class DuplicateTaskId(Rule):
    """The same task id twice in one DAG, or a literal ``task_id`` inside a loop that runs more
    than once.

    Airflow refuses the whole file (``DuplicateTaskIdFound``) at parse time. Give every task a
    distinct id; in a loop, build it from the loop variable (``task_id=f"load_{table}"``).
    Task ids are unique per DAG: the DAG of an operator is its ``dag=`` argument, else the
    enclosing ``with DAG(...)`` or ``@dag`` function. Its id in the DAG is the one Airflow
    computes: prefixed by its task group (``task_group=``, else the enclosing ``with TaskGroup``
    or ``@task_group`` function, even when the operator passes ``dag=``), nested groups included,
    unless the group has ``prefix_group_id=False``. Operators whose DAG or group the source does
    not tell (attached later with ``dag.add_task``, made in a function that may run inside some
    other group, a group id built at run time) are compared only where the ids are surely equal.
    ``@task`` functions are not checked: Airflow renames a repeated decorated task (``load__1``).
    """

    CODE = "AST203"
    NAME = "duplicate-task-id"
    MESSAGE = "duplicate task_id"
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
        # A loop of unknown length may run once.
        Valid("import os\nfrom airflow.sdk import DAG\n" + _OP +
              "with DAG('d'):\n    for t in os.environ.get('TABLES', 'a').split(','):\n        EmptyOperator(task_id='load')\n"),
        Valid("from airflow.sdk import DAG\n" + _OP +
              "a, b = DAG('a'), DAG('b')\nfor d in [a, b]:\n    EmptyOperator(task_id='x', dag=d)\n"),
        # A task made with dag= inside a TaskGroup still joins the group: its id is g.x (issue 19).
        Valid(_AF2 + _DAG + "EmptyOperator(task_id='x', dag=dag)\n"
              "with TaskGroup(group_id='g', dag=dag):\n    EmptyOperator(task_id='x', dag=dag)\n"),
        Valid(_AF2 + _DAG + "tg = TaskGroup('g', dag=dag)\n"
              "EmptyOperator(task_id='x', task_group=tg, dag=dag)\nEmptyOperator(task_id='x', dag=dag)\n"),
        Valid("from airflow.sdk import DAG, TaskGroup\n" + _OP +
              "with DAG('d'):\n    EmptyOperator(task_id='x')\n    with TaskGroup('a'):\n"
              "        EmptyOperator(task_id='x')\n        with TaskGroup('b'):\n            EmptyOperator(task_id='x')\n"),
        Valid("from airflow.sdk import DAG, task_group\n" + _OP +
              "@task_group\ndef grp():\n    EmptyOperator(task_id='x')\n\n"
              "with DAG('d'):\n    EmptyOperator(task_id='x')\n    grp()\n"),
        # Airflow 3: with no DAG in context (no dag=, no `with DAG`), the task joins neither the DAG nor the group.
        Valid(_AF2 + _DAG + "with TaskGroup('g', dag=dag):\n    EmptyOperator(task_id='x')\n"
              "    EmptyOperator(task_id='x')\n"),
        # tg no longer names the group g when the second task is made.
        Valid(_AF2 + _DAG + "tg = TaskGroup('g', dag=dag)\nEmptyOperator(task_id='x', task_group=tg, dag=dag)\n"
              "tg = TaskGroup('h', dag=dag) if dag.tags else dag.task_group\n"
              "EmptyOperator(task_id='x', task_group=tg, dag=dag)\n"),
        # A function may be called inside a task group: its tasks' ids are not known.
        Valid(_AF2 + _DAG + "def more():\n    return EmptyOperator(task_id='x', dag=dag)\n\n"
              "EmptyOperator(task_id='x', dag=dag)\nwith TaskGroup('g', dag=dag):\n    more()\n"),
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
        # The group's prefix makes the id g.x, which the first task already has.
        Invalid(_AF2 + _DAG + "EmptyOperator(task_id='g.x', dag=dag)\n"
                "with TaskGroup(group_id='g', dag=dag):\n    EmptyOperator(task_id='x', dag=dag)\n", line=8),
        Invalid(_AF2 + _DAG + "EmptyOperator(task_id='x', dag=dag)\n"
                "with TaskGroup(group_id='g', prefix_group_id=False, dag=dag):\n    EmptyOperator(task_id='x', dag=dag)\n",
                line=8),
        Invalid(_AF2 + _DAG + "with dag:\n    EmptyOperator(task_id='c.x')\n    with TaskGroup('a'):\n"
                "        with TaskGroup('b', prefix_group_id=False):\n            with TaskGroup('c'):\n"
                "                EmptyOperator(task_id='x')\n", line=11),
        Invalid(_AF2 + _DAG + "tg = TaskGroup('g', dag=dag)\n"
                "EmptyOperator(task_id='x', task_group=tg, dag=dag)\nEmptyOperator(task_id='g.x', dag=dag)\n", line=8),
        Invalid("from airflow.sdk import DAG, task_group\n" + _OP +
                "@task_group\ndef grp():\n    EmptyOperator(task_id='x')\n    EmptyOperator(task_id='x')\n\n"
                "with DAG('d'):\n    grp()\n", line=6),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return ctx.imported_at_parse_time and "task_id" in facts.words and facts.task_id_may_repeat

    def __init__(self, ctx: FileContext, walker) -> None:
        super().__init__(ctx, walker)
        self.seen: set[tuple] = set()
        self.frames: list[Frame] = [Frame("func", None, boundary=True, key="module")]
        #: variable name -> (the DAG's key, frame depth where it was bound)
        self.dags: dict[str, tuple[object, int]] = {}
        #: variable name -> the scope of the task group bound to it
        self.groups: dict[str, Scope] = {}

    # -- scopes -------------------------------------------------------------------------------
    def _context(self) -> tuple[Scope | None, Scope | None, int]:
        """(the innermost group, the innermost DAG, the index of the function frame that bounds the
        search): what Airflow's TaskGroupContext and DagContext hold for code at this point."""
        group = dag = None
        for index in range(len(self.frames) - 1, -1, -1):
            frame = self.frames[index]
            if frame.kind == "group" and group is None:
                group = frame.scope
            elif frame.kind == "dag" and dag is None:
                dag = frame.scope
            if frame.boundary:
                if frame.kind == "group" and dag is None:
                    dag = frame.scope.root()  # a @task_group function: the DAG of each call
                return group, dag, index
        raise AssertionError("the module frame is a boundary")

    def _named_dag(self, expr: cst.CSTNode) -> Scope | None:
        """The scope of the DAG a ``dag=`` argument names (None: unknown)."""
        name = dotted(expr)
        if name in self.dags:
            return dag_scope(*self.dags[name])
        if not name:
            return None
        # A parameter or an imported DAG: one object for one run of the enclosing function, unless
        # a loop may rebind it (for dag in dags: ...): then we cannot tell.
        func = max(i for i, frame in enumerate(self.frames) if frame.kind == "func")
        if any(frame.kind == "loop" for frame in self.frames[func:]):
            return None
        return dag_scope(("name", self.frames[func].key, name), func + 1)

    def _group_scope(self, call: cst.Call, node: cst.CSTNode) -> Scope:
        """The scope of the tasks that a ``TaskGroup(...)`` call made here holds."""
        group, ctx_dag, boundary = self._context()
        explicit = keyword(call, "dag")
        dag = self._named_dag(explicit.value) if explicit is not None else (group or ctx_dag)
        if keyword(call, "parent_group") is not None or dag is None or (group and group.dag != dag.dag):
            # An unknown parent or DAG, or DAGs mixed (Airflow refuses those with another error): a DAG
            # key that no operator's DAG matches, so that its tasks are never compared.
            return Scope(("group", id(node)), "", len(self.frames), ("unknown", id(node)), len(self.frames))
        prefixes = _prefixes(call)
        if prefixes is False:
            return dag.root()
        parent = group or (dag.root() if boundary == 0 or self.frames[boundary].kind != "func" else None)
        group_id = _group_id(call)
        if prefixes and parent is not None and group_id is not None and parent.key == dag.dag:
            return parent._replace(prefix=f"{parent.prefix}{group_id}.")
        # The id is not known, but two tasks of one run of this group share its prefix.
        return Scope(("group", id(node)), "", len(self.frames), dag.dag, dag.dag_depth)

    def _push_with(self, node: cst.With) -> Frame:
        frame = Frame("none", None)
        for item in node.items:
            expr, name = item.item, item.asname.name if item.asname is not None else None
            if isinstance(expr, cst.Call) and is_dag_call(expr):
                frame = Frame("dag", dag_scope(id(node), len(self.frames)))
                if isinstance(name, cst.Name):
                    self._bind_dag(name.value, id(node))
            elif _is_task_group_call(expr):
                frame = Frame("group", self._group_scope(expr, node))
                if isinstance(name, cst.Name):
                    self._bind_group(name.value, frame.scope)
            elif isinstance(expr, cst.Name) and expr.value in self.dags:
                frame = Frame("dag", dag_scope(*self.dags[expr.value]))
            elif isinstance(expr, cst.Name) and expr.value in self.groups:
                frame = Frame("group", self.groups[expr.value])
            elif isinstance(name, cst.Name):
                self._unbind(name.value)
        return frame

    def _unbind(self, name: str) -> None:
        """The name now holds something else: what it named before no longer applies."""
        self.dags.pop(name, None)
        self.groups.pop(name, None)

    def _bind_dag(self, name: str, key: object) -> None:
        self.dags[name] = (key, len(self.frames))
        self.groups.pop(name, None)

    def _bind_group(self, name: str, scope: Scope) -> None:
        self.groups[name] = scope
        self.dags.pop(name, None)

    def visit_With(self, node: cst.With) -> None:
        self.frames.append(self._push_with(node))

    def leave_With(self, node: cst.With) -> None:
        self.frames.pop()

    def visit_Assign(self, node: cst.Assign) -> None:
        names = [t.target.value for t in node.targets if isinstance(t.target, cst.Name)]
        if isinstance(node.value, cst.Call) and is_dag_call(node.value):
            for name in names:
                self._bind_dag(name, id(node.value))
        elif _is_task_group_call(node.value):
            scope = self._group_scope(node.value, node.value)
            for name in names:
                self._bind_group(name, scope)
        else:
            for name in names:
                self._unbind(name)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        depth = len(self.frames)
        if any(is_decorator(d, ("dag",)) for d in node.decorators):
            self.frames.append(Frame("dag", dag_scope(id(node), depth), boundary=True, key=id(node)))
        elif any(is_decorator(d, ("task_group",)) for d in node.decorators):
            # Each call makes a new group (renamed on a repeat: grp__1) in the caller's DAG.
            scope = Scope(("group", id(node)), "", depth, ("call", id(node)), depth)
            self.frames.append(Frame("group", scope, boundary=True, key=id(node)))
        else:
            self.frames.append(Frame("func", None, boundary=True, key=id(node)))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.frames.pop()

    def visit_For(self, node: cst.For) -> None:
        self.frames.append(Frame("loop", None, _iterations(node)))

    def leave_For(self, node: cst.For) -> None:
        self.frames.pop()

    def visit_While(self, node: cst.While) -> None:
        self.frames.append(Frame("loop", None, None))

    def leave_While(self, node: cst.While) -> None:
        self.frames.pop()

    # -- operators ----------------------------------------------------------------------------
    def _scope_of(self, call: cst.Call) -> Scope | None:
        """Where the operator made by ``call`` puts its id (None: unknown)."""
        group, ctx_dag, boundary = self._context()
        explicit = keyword(call, "dag")
        dag = self._named_dag(explicit.value) if explicit is not None else ctx_dag
        named = keyword(call, "task_group")
        if named is not None:
            group = self.groups.get(dotted(named.value))
            if group is None:
                return None
        if group is not None:
            # It joins the group even when it passes dag=; with no DAG at all (Airflow 3) it joins neither.
            return group if dag is not None and dag.dag == group.dag else None
        if dag is None:
            return None
        if boundary and self.frames[boundary].kind == "func":
            # A plain function may be called inside a task group: ids compare within one call only.
            func = self.frames[boundary]
            return Scope(("call", func.key, dag.dag), "", max(dag.depth, boundary + 1), dag.dag, dag.dag_depth)
        return dag

    def visit_Call(self, node: cst.Call) -> None:
        if not self.parse_time:
            return
        arg = keyword(node, "task_id")
        if arg is None or has_star_kwargs(node):
            return
        callee = dotted(node.func).split(".")[-1]
        if not callee[:1].isupper() or callee in ("DAG", "TaskGroup"):
            return  # @task(...) / .override(...): Airflow makes repeated decorated ids unique
        value = string_value(arg.value)
        scope = self._scope_of(node)
        if value is None or scope is None:
            return
        runs = [frame.runs for frame in self.frames[scope.depth:] if frame.kind == "loop"]
        if any(r is None for r in runs):
            return  # a loop of unknown length may run once
        if any(r >= 2 for r in runs):
            self.report(arg, f"task_id {value!r} inside a loop is the same on every iteration "
                             f"(DuplicateTaskIdFound); build it from the loop variable")
            return
        task_id = scope.prefix + value
        if (scope.key, task_id) in self.seen:
            named = f"task_id {value!r}" + (f" (in the DAG: {task_id!r})" if scope.prefix else "")
            self.report(arg, f"{named} is used more than once in this DAG "
                             f"(Airflow refuses the file: DuplicateTaskIdFound); give each task its own id")
        self.seen.add((scope.key, task_id))


RULES = [DuplicateTaskId]
