"""The built-in DAG policies. DAG0xx are on by default, DAG1xx are opt-in, DAG900 runs the
project's own cluster policies when it has an ``airflow_local_settings.py``.

Each runs on the plain ``DagSummary`` (and what the sandbox recorded in ``dag.checks``); none
imports Airflow.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
from functools import lru_cache

from pytest_astro.policies.api import Policy, Violation
from pytest_astro.results import DagSummary
from pytest_astro.source import read_source

_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly",
            "@annually", "@midnight"}
_DYNAMIC_CALLS = {"now", "utcnow", "today", "days_ago", "yesterday", "tomorrow"}


def _explicit(dag: DagSummary, *names: str) -> bool | None:
    """Whether the DAG's constructor was given one of ``names`` (None: not recorded)."""
    kwargs = dag.checks.get("kwargs")
    if kwargs is None:
        return None
    return any(n in kwargs for n in names)


class HasTasks(Policy):
    code, name, default = "DAG001", "has_tasks", True
    description = "the DAG has at least one task"
    hint = "add tasks to the DAG, or delete it"
    example = "with DAG('etl', ...): pass"

    def check(self, dag, context):
        return [] if dag.task_ids else [Violation("the DAG has no tasks")]


class Tags(Policy):
    code, name, default = "DAG002", "tags", True
    description = "the DAG has tags (from the approved list, when one is configured)"
    hint = "add tags=[...] to the DAG"
    options = {"allowed": [], "min": 1}
    example = "DAG('etl', tags=[]) or tags=['misc'] when allowed = ['etl', 'reports']"

    def check(self, dag, context):
        allowed = list(context.options["allowed"] or [])
        out = []
        if len(dag.tags) < int(context.options["min"]):
            out.append(Violation(f"the DAG has {len(dag.tags)} tag(s), at least {context.options['min']} required"
                                 + (f" (approved: {', '.join(allowed)})" if allowed else "")))
        if allowed:
            unknown = [t for t in dag.tags if not any(fnmatch.fnmatchcase(t, a) for a in allowed)]
            if unknown:
                out.append(Violation(f"tag(s) {', '.join(map(repr, unknown))} not in the approved list "
                                     f"({', '.join(allowed)})"))
        return out


class Retries(Policy):
    code, name, default = "DAG003", "retries", True
    description = "every task retries at least N times (default 2; default_args['retries'] or the task's own)"
    hint = "set default_args={'retries': N} on the DAG (or retries=N on the task)"
    options = {"min": 2}
    example = "default_args={} (tasks retry 0 times)"

    def check(self, dag, context):
        minimum = int(context.options["min"])
        low = {t: r for t, r in dag.task_retries.items() if r < minimum}
        if not low:
            return []
        where = ("default_args has no 'retries'" if dag.retries is None
                 else f"default_args['retries'] is {dag.retries}" if dag.retries < minimum else None)
        out = [Violation(f"retries={r} (minimum {minimum})" + (f"; {where}" if where else ""), task_id=t)
               for t, r in sorted(low.items())]
        return out


class UniqueIds(Policy):
    code, name, default = "DAG004", "unique_ids", True
    description = "the dag_id is unique in the project, and task_ids are unique in the DAG"
    hint = "rename one of them: Airflow keeps only one DAG per dag_id"
    example = "DAG('etl') in dags/a.py and in dags/b.py"

    def check(self, dag, context):
        out = []
        others = [d for d in context.all_dags.get(dag.dag_id, []) if d is not dag]
        if others:
            places = ", ".join(f"{d.file}:{d.line}" if d.line else d.file for d in others)
            out.append(Violation(f"dag_id {dag.dag_id!r} is also defined in {places}"))
        seen: set[str] = set()
        for task_id in dag.task_ids:
            if task_id in seen:
                out.append(Violation("task_id defined twice in the DAG", task_id=task_id))
            seen.add(task_id)
        return out


def find_cycle(task_ids: list[str], edges: list[list[str]]) -> list[str] | None:
    """One cycle of the graph (``[a, b, ..., a]``), or None. Iterative: a DAG may chain tens of
    thousands of tasks, far deeper than Python's recursion limit."""
    down: dict[str, list[str]] = {t: [] for t in task_ids}
    for up, dn in edges:
        down.setdefault(up, []).append(dn)
        down.setdefault(dn, [])
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in down:
        if root in state:
            continue
        path = [root]  # the current depth-first path
        where = {root: 0}  # node -> its index in path
        todo = [iter(down[root])]  # per node of the path: the successors not yet visited
        state[root] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                done = path.pop()
                del where[done]
                state[done] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[where[nxt]:] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                where[nxt] = len(path)
                path.append(nxt)
                todo.append(iter(down[nxt]))
    return None


class NoCycles(Policy):
    code, name, default = "DAG005", "no_cycles", True
    description = "the task graph has no cycle (Airflow refuses a cyclic DAG)"
    hint = "remove one of the dependencies in the cycle"
    example = "a >> b >> a"

    def check(self, dag, context):
        if dag.checks.get("cycle"):  # a DAG Airflow refused (see items.py): the message is recorded
            return [Violation(dag.checks["cycle"])]
        cycle = find_cycle(dag.task_ids, dag.edges)
        return [Violation("cycle: " + " >> ".join(cycle))] if cycle else []


class Serializes(Policy):
    code, name, default = "DAG006", "serializes", True
    description = "the DAG serializes (and deserializes) as the DAG processor does it for the scheduler"
    hint = ("register custom timetables in a plugin (plugins/), keep params and operator arguments "
            "JSON-serializable")
    example = "schedule=MyTimetable() that no plugin registers"

    def check(self, dag, context):
        result = dag.checks.get("serialize")
        if result is None:
            errors = [e for e in dag.checks.get("errors", []) if e.startswith("serialize")]
            return [Violation(f"could not be checked: {errors[0]}")] if errors else []
        return [] if result.get("ok") else [Violation(f"serialization failed: {result.get('error')}")]


#: a name of ``_DYNAMIC_CALLS`` as a whole word: an ASCII source without one calls none of them
_DYNAMIC_NAME = re.compile(r"\b(?:%s)\b" % "|".join(sorted(_DYNAMIC_CALLS)))


@lru_cache(maxsize=256)
def _module_ast(path: str, mtime: float) -> tuple[ast.Module | None, dict[int, list[ast.Call]]]:
    """The file's syntax tree, and its calls by line (walked once per file, not once per DAG);
    ``(None, {})`` when it cannot be read or parsed, or cannot call any of ``_DYNAMIC_CALLS``."""
    try:
        source = read_source(path)
        # Parsing is most of this check's cost, and most files never name now(), today()...: a
        # call's name is a whole identifier in the source (non-ASCII sources are parsed: Python
        # folds identifiers with NFKC, so other spellings can name the same function)
        if source.isascii() and not _DYNAMIC_NAME.search(source):
            return None, {}
        tree = ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None, {}
    calls: dict[int, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls.setdefault(node.lineno, []).append(node)
    return tree, calls


def static_start_date(path: str, line: int | None) -> str | None:
    """The call that computes a DAG's start_date at parse time (``datetime.now()``, ...), read from
    the source of the DAG's constructor call on ``line`` of ``path``; None when there is none.

    The parse sandbox records it (``checks["start_date_static"]``), so a run from the cache does not
    parse every DAG file's source again."""
    call, tree = _call_at(path, line)
    expr = _start_date_expr(call, tree) if call is not None and tree is not None else None
    return _dynamic_call(expr, tree) if expr is not None and tree is not None else None


def _call_at(path: str, line: int | None) -> tuple[ast.Call | None, ast.Module | None]:
    """The call expression on the DAG's line (``DAG(...)``, or the ``@dag(...)`` decorator of the
    function called there)."""
    try:
        tree, calls_by_line = _module_ast(path, os.stat(path).st_mtime)
    except OSError:
        return None, None
    if tree is None or not line:
        return None, tree
    calls = calls_by_line.get(line, [])
    for call in calls:
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        if name in ("DAG", "dag"):
            return call, tree
    for call in calls:  # my_dag() where `@dag(...) def my_dag()`
        if isinstance(call.func, ast.Name):
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name == call.func.id:
                    for deco in node.decorator_list:
                        if isinstance(deco, ast.Call):
                            return deco, tree
    return None, tree


def _dynamic_call(expr: ast.AST | None, tree: ast.Module, depth: int = 0) -> str | None:
    if expr is None or depth > 3:
        return None
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in _DYNAMIC_CALLS:
                return ast.unparse(node)
        if isinstance(node, ast.Name):  # a module-level NAME = ... in the same file
            for stmt in tree.body:
                if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id
                                                         for t in stmt.targets)):
                    if found := _dynamic_call(stmt.value, tree, depth + 1):
                        return found
    return None


def _start_date_expr(call: ast.Call, tree: ast.Module) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == "start_date":
            return kw.value
    for kw in call.keywords:
        if kw.arg == "default_args":
            value = kw.value
            if isinstance(value, ast.Name):
                for stmt in tree.body:
                    if isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == value.id for t in stmt.targets):
                        value = stmt.value
            if isinstance(value, ast.Dict):
                for k, v in zip(value.keys, value.values):
                    if isinstance(k, ast.Constant) and k.value == "start_date":
                        return v
    return None


class StaticStartDate(Policy):
    code, name, default = "DAG007", "start_date", True
    description = "start_date is a fixed date (not computed from now()), and set when the DAG has a time schedule"
    hint = "use a fixed date, e.g. start_date=pendulum.datetime(2024, 1, 1, tz='UTC')"
    example = "start_date=datetime.now() - timedelta(days=1)"

    def check(self, dag, context):
        out = []
        if "start_date_static" in dag.checks:  # read by the sandbox when it parsed the file
            found = dag.checks["start_date_static"]
        else:
            found = static_start_date(str(context.project.root / dag.file), dag.line)
        if found:
            out.append(Violation(f"start_date is computed at parse time ({found}): it moves on every parse, "
                                 "so runs are skipped or never scheduled"))
        elif (recorded := dag.checks.get("start_date") or {}).get("dynamic"):
            out.append(Violation(f"start_date looks computed from the current time: {recorded['dynamic']}"))
        timed = dag.schedule not in (None, "assets", "@once", "@continuous") and dag.timetable not in ("Never",)
        if dag.start_date is None and timed:
            out.append(Violation(f"schedule {dag.schedule!r} but no start_date"))
        return out


class Schedule(Policy):
    code, name, default = "DAG008", "schedule", True
    description = "schedule is given explicitly, and is a known preset (and one of the allowed, when configured)"
    hint = "pass schedule= explicitly (None for manual runs): the default differs between Airflow 2 and 3"
    options = {"allowed": []}
    example = "DAG('etl', start_date=...)  # no schedule="

    def check(self, dag, context):
        out = []
        if _explicit(dag, "schedule", "schedule_interval", "timetable") is False:
            out.append(Violation("no explicit schedule= (Airflow 3 defaults to None, Airflow 2 to a daily run)"))
        if isinstance(dag.schedule, str) and dag.schedule.startswith("@") and dag.schedule not in _PRESETS:
            out.append(Violation(f"unknown schedule preset {dag.schedule!r}"))
        allowed = context.options["allowed"]
        if allowed and str(dag.schedule) not in [str(a) for a in allowed]:
            out.append(Violation(f"schedule {dag.schedule!r} is not one of {', '.join(map(str, allowed))}"))
        return out


class Owner(Policy):
    code, name = "DAG101", "owner"
    description = "every task has an owner, not Airflow's default 'airflow'"
    hint = "set default_args={'owner': 'your-team'}"
    options = {"forbidden": ["airflow", ""], "allowed": []}
    example = "default_args={} (owner 'airflow')"

    def check(self, dag, context):
        forbidden, allowed = context.options["forbidden"], context.options["allowed"]
        return [Violation(f"owner {owner!r}" + (" is not allowed" if owner not in forbidden else " (the default)"),
                          task_id=task)
                for task, owner in sorted(dag.task_owners.items())
                if owner in forbidden or (allowed and owner not in allowed)]


class Catchup(Policy):
    code, name = "DAG102", "catchup"
    description = "catchup is set explicitly on the DAG"
    hint = "pass catchup=False (or True): the default differs between Airflow 2 (True) and 3 (False)"
    example = "DAG('etl', schedule='@daily', start_date=...)  # no catchup="

    def check(self, dag, context):
        if _explicit(dag, "catchup") is False:
            return [Violation(f"catchup is not set explicitly (now {dag.catchup})")]
        return []


class StartDateTimezone(Policy):
    code, name = "DAG103", "start_date_timezone"
    description = "start_date is timezone-aware"
    hint = "use pendulum.datetime(2024, 1, 1, tz='UTC') (or datetime(..., tzinfo=...))"
    example = "start_date=datetime(2024, 1, 1)"

    def check(self, dag, context):
        recorded = dag.checks.get("start_date") or {}
        if recorded.get("naive"):
            return [Violation(f"start_date {dag.start_date} was given without a timezone "
                              f"(Airflow assumes {dag.start_date_tz or 'the default timezone'})")]
        return []


class MaxTasks(Policy):
    code, name = "DAG104", "max_tasks"
    description = "the DAG has at most N tasks (default 100)"
    hint = "split the DAG, or raise max in [tool.pytest-astro.policies.max_tasks]"
    options = {"max": 100}
    example = "a DAG with 500 tasks"

    def check(self, dag, context):
        n, limit = len(dag.task_ids), int(context.options["max"])
        return [Violation(f"{n} tasks (at most {limit})")] if n > limit else []


class ParseTime(Policy):
    code, name = "DAG105", "parse_time"
    description = "the DAG's file imports within a budget (default 2 s)"
    hint = "move slow work (imports of heavy libraries, I/O) from module level into tasks"
    options = {"max_seconds": 2.0}
    example = "a module-level pandas import and a large file read"

    def check(self, dag, context):
        seconds, budget = context.result.seconds, float(context.options["max_seconds"])
        return [Violation(f"{dag.file} took {seconds:.2f} s to import (budget {budget:g} s)")] if seconds > budget else []


class Description(Policy):
    code, name = "DAG106", "description"
    description = "the DAG has a description or doc_md"
    hint = "add description='...' or doc_md=__doc__"
    example = "DAG('etl', ...)  # no description, no doc_md"

    def check(self, dag, context):
        return [] if (dag.description or dag.has_doc_md) else [Violation("no description and no doc_md")]


class DagrunTimeout(Policy):
    code, name = "DAG107", "dagrun_timeout"
    description = "dagrun_timeout is set"
    hint = "add dagrun_timeout=timedelta(hours=...)"
    options = {"max_seconds": 0}
    example = "DAG('etl', ...)  # no dagrun_timeout"

    def check(self, dag, context):
        if dag.dagrun_timeout is None:
            return [Violation("no dagrun_timeout: a stuck run blocks the next ones forever")]
        limit = float(context.options["max_seconds"] or 0)
        if limit and dag.dagrun_timeout > limit:
            return [Violation(f"dagrun_timeout {dag.dagrun_timeout:g} s is more than {limit:g} s")]
        return []


class MaxActiveRuns(Policy):
    code, name = "DAG108", "max_active_runs"
    description = "max_active_runs is set explicitly (at most max, when configured)"
    hint = "add max_active_runs=1 (or what the DAG supports)"
    options = {"max": 0}
    example = "DAG('etl', ...)  # no max_active_runs"

    def check(self, dag, context):
        out = []
        if _explicit(dag, "max_active_runs") is False:
            out.append(Violation(f"max_active_runs is not set (the configured default is {dag.max_active_runs})"))
        limit = int(context.options["max"] or 0)
        if limit and (dag.max_active_runs or 0) > limit:
            out.append(Violation(f"max_active_runs {dag.max_active_runs} is more than {limit}"))
        return out


class FailureCallback(Policy):
    code, name = "DAG109", "failure_callback"
    description = "an on_failure_callback is set (on the DAG or in default_args)"
    hint = "add on_failure_callback=... (e.g. a notifier) to the DAG or to default_args"
    example = "DAG('etl', ...)  # nobody hears about failures"

    def check(self, dag, context):
        return [] if dag.has_failure_callback else [Violation("no on_failure_callback on the DAG or in default_args")]


class Pools(Policy):
    code, name = "DAG110", "pools"
    description = "pools the tasks use exist (airflow_settings.yaml; default_pool always does)"
    hint = "add the pool to airflow_settings.yaml (airflow.pools) and to the Deployment, or fix its name"
    options = {"known": []}
    example = "PythonOperator(..., pool='warehous_pool')"

    def check(self, dag, context):
        known = context.pools | set(context.options["known"]) | {"default_pool"}
        task_pools = dag.checks.get("task_pools") or {}
        if task_pools:
            return [Violation(f"pool {pool!r} is not defined", task_id=task)
                    for task, pool in sorted(task_pools.items()) if pool not in known]
        return [Violation(f"pool {pool!r} is not defined") for pool in dag.pools if pool not in known]


class Connections(Policy):
    code, name = "DAG111", "connections"
    description = "connection ids the operators use are defined (airflow_settings.yaml, .env, AIRFLOW_CONN_*, config)"
    hint = "add the connection to airflow_settings.yaml (airflow.connections) or [tool.pytest-astro.connections]"
    options = {"known": []}
    example = "SQLExecuteQueryOperator(..., conn_id='warehouse_typo')"

    def check(self, dag, context):
        known = context.connections | set(context.options["known"])
        return [Violation(f"connection {conn!r} is not defined", task_id=task)
                for task, conns in sorted((dag.checks.get("conn_ids") or {}).items())
                for conn in conns if conn not in known]


class ClusterPolicy(Policy):
    code, name, default = "DAG900", "cluster_policy", True
    description = "the project's own dag_policy/task_policy (airflow_local_settings.py) accept the DAG"
    hint = "change the DAG so that the cluster policy accepts it (the message is the policy's own)"
    example = "AirflowClusterPolicyViolation: DAG etl has no owner"

    def check(self, dag, context):
        recorded = dag.checks.get("cluster_policy")
        if recorded is None:
            return []
        source = recorded.get("source", "airflow_local_settings.py")
        if recorded.get("load_error"):
            return [Violation(f"{source} could not be loaded: {recorded['load_error']}", file=source, line=None)]
        out = []
        for v in recorded.get("violations", []):
            what = ("skips the DAG: the scheduler would not load it" if v["type"] == "AirflowClusterPolicySkipDag"
                    else "refuses it")
            out.append(Violation(f"{v['policy']} in {source} {what}: {v['type']}: {v['message']}",
                                 task_id=v.get("task_id")))
        return out


from pytest_astro.policies.runs import NextRun, UnboundedMapping  # noqa: E402 - they import api only
from pytest_astro.policies.snapshots import Snapshot  # noqa: E402

BUILTIN_POLICIES: list[Policy] = [
    HasTasks(), Tags(), Retries(), UniqueIds(), NoCycles(), Serializes(), StaticStartDate(), Schedule(),
    NextRun(), Snapshot(), Owner(), Catchup(), StartDateTimezone(), MaxTasks(), ParseTime(), Description(),
    DagrunTimeout(), MaxActiveRuns(), FailureCallback(), Pools(), Connections(), UnboundedMapping(), ClusterPolicy(),
]
