"""AST305: values that change at every parse passed to a DAG or task, for projects on Astro
Runtime 3.x (Airflow 3), where every change of the serialized DAG is a new DAG version.
"""

from __future__ import annotations

from pytest_astro.lint.core import FileContext, ImportTrackingRule, Invalid, Valid, cst
from pytest_astro.lint.prefilter import SourceFacts

_RUNTIME_VARYING = frozenset({
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
    "pendulum.now", "pendulum.today", "pendulum.yesterday", "pendulum.tomorrow", "time.time", "uuid.uuid1",
    "uuid.uuid4", "random.random", "random.randint", "random.choice", "random.uniform", "random.randrange",
    "random.sample", "random.getrandbits",
})


#: Every call AST305 reports is named by one of these words.
_VARYING_WORDS = frozenset(q.split(".")[-1] for q in _RUNTIME_VARYING)


class DynamicDagValue(ImportTrackingRule):
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

    def _qualified(self, expr: cst.CSTNode) -> str:
        return self.imported.qualified(expr)

    def _is_airflow_constructor(self, call: cst.Call) -> bool:
        qualified = self._qualified(call.func)
        if not qualified.startswith("airflow."):
            return False
        last = qualified.split(".")[-1]
        return last in ("DAG", "dag", "task") or last.endswith(("Operator", "Sensor")) or ".task." in qualified

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return facts.has_any(_VARYING_WORDS)

    def visit_Call(self, node: cst.Call) -> None:
        # From the varying call up to the Airflow constructors whose arguments hold it: varying calls
        # are rare, constructors with arguments are everywhere.
        if not self.parse_time:
            return
        qualified = self._qualified(node.func)
        if qualified not in _RUNTIME_VARYING:
            return
        stack = self.walker.stack
        for depth in range(len(stack) - 1, 0, -1):
            holder = stack[depth]
            if isinstance(holder, cst.Lambda) or (isinstance(holder, cst.Call) and
                                                  self._qualified(holder.func) in _RUNTIME_VARYING):
                return  # runs later; or inside another varying call (that one is reported)
            call = stack[depth - 1]
            if isinstance(holder, cst.Arg) and isinstance(call, cst.Call) and holder.keyword is not None and \
                    holder.keyword.value not in ("start_date", "end_date") and self._is_airflow_constructor(call):
                name = ".".join(qualified.split(".")[-2:])
                self.report(node, f"{name}() changes at every parse; in a DAG or task argument it makes "
                                  f"a new DAG version at every parse on Airflow 3 (the metadata database grows "
                                  f"without end); use a fixed value or a template such as \"{{{{ ds }}}}\"")


RULES = [DynamicDagValue]
