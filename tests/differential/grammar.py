"""A grammar of DAG files: valid and invalid constructs, drawn by a ``Picker``, rendered to bytes.

A ``Case`` is plain data (DAGs, tasks, groups, loops, edges, a file-level fault, an encoding);
``draw_case(picker)`` builds one from a picker's choices and ``Case.render()`` writes the file.
Two pickers draw the same grammar:

- ``HypothesisPicker`` (tests/test_differential.py): hypothesis shrinks a disagreement to a
  minimal file by itself. Every choice is ordered so that its first option (or smallest number, or
  "no") is the simplest file, which is where hypothesis shrinks to.
- ``RandomPicker`` (bench/differential.py): ``random.Random(f"{seed}:{index}")``, so case ``index``
  of seed ``seed`` is regenerated alone, without replaying the cases before it, and thousands of
  cases are drawn without hypothesis's per-example bookkeeping.

Which constructs are valid is not decided here: stock Airflow decides, case by case.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# pickers


class RandomPicker:
    """Choices from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, options: Sequence[Any]) -> Any:
        return self.rng.choice(list(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class HypothesisPicker:
    """Choices drawn from hypothesis's ``st.data()``: they shrink towards the first option, the
    lowest number and "no"."""

    def __init__(self, data: Any):
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def choice(self, options: Sequence[Any]) -> Any:
        return self.data.draw(self.st.sampled_from(list(options)))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))

    def chance(self, p: float) -> bool:
        # 0 (where hypothesis shrinks to) is "no"
        return self.data.draw(self.st.integers(0, 99)) >= 100 - round(p * 100)


# ---------------------------------------------------------------------------------------------
# the case model

TASK_KINDS = ("empty", "bash", "python", "taskflow", "taskflow_again")
DAG_STYLES = ("with", "dag_arg", "taskflow")
ENCODINGS = ("utf-8", "crlf", "utf-8-bom", "latin-1", "latin-1-no-cookie")
SCHEDULES = ("None", '"@daily"', '"0 6 * * *"', '"not a cron expression"')
#: file-level faults, simplest first; each is one construct of the grammar
FAULTS = ("none", "syntax", "indent", "missing_module", "missing_name", "raise", "sys_exit",
          "cross_dag_edge", "no_marker", "relative_import")
#: module-level idioms that must not change a verdict: `if __name__ == "__main__":` (Airflow
#: imports the file under another name), reading the file's own source through __file__
IDIOMS = ("main_guard", "reads_own_file")
#: DAGs made in a loop: kept in globals(), only in a `with` block (Airflow registers them), or
#: made by a @dag function called in the loop
DAG_LOOPS = ("globals", "with", "taskflow")
RAISES = ("ValueError('bad config')", "KeyError('warehouse')", "RuntimeError('boom')", "1 / 0",
          "None.attribute", "undefined_name", "CustomError('custom')", "AirflowException('refused')",
          "TypeError('wrong')")
EXITS = ("sys.exit()", "sys.exit(0)", "sys.exit(1)", "sys.exit('bye')", "raise SystemExit(2)")
# Characters for ids. Airflow allows word characters (any script), '-' and '.'; it rejects the rest.
ASCII_ID = "abcxyz_019"
UNICODE_ID = "éüßøΩδжд中文ك٣"  # letters and digits of other scripts: \w
VALID_PUNCT = "-."
INVALID_ID = " /!#:@😀"


@dataclass
class Task:
    kind: str
    task_id: str
    group: int | None = None  # index into Dag.groups


@dataclass
class Loop:
    kind: str  # "chain" (a long chain), "fan" (a wide fan-out), "plain" (no edges)
    size: int
    prefix: str


@dataclass
class Dag:
    style: str
    dag_id: str
    anonymous: bool = False  # `with DAG(...):` with no `as` / `f()` with the DAG not kept
    schedule: str = "None"
    owner: bool = False  # default_args={"owner": MAINTAINER} (non-ASCII)
    tasks: list[Task] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    raise_in_body: bool = False  # the @dag function raises while Airflow calls it at parse time


@dataclass
class Case:
    dags: list[Dag]
    encoding: str = "utf-8"
    legacy_imports: bool = False  # airflow.operators.* / airflow.decorators paths instead of current
    idioms: list[str] = field(default_factory=list)
    dag_loop: tuple[str, int, str] | None = None  # (one of DAG_LOOPS, how many DAGs, dag_id prefix)
    fault: str = "none"
    fault_detail: str = ""
    fault_at_top: bool = False
    airflow_major: int = 3

    def render(self) -> bytes:
        """The file's bytes, in its encoding."""
        return encode(render_source(self), self.encoding)

    def constructs(self) -> list[str]:
        """The constructs this case exercises (for the counts by construct)."""
        return sorted(constructs(self))


# ---------------------------------------------------------------------------------------------
# drawing


def draw_id(p: Any, index: int, max_len: int = 250) -> str:
    """An id: mostly valid (ASCII, other scripts, '-' and '.'), sometimes not (a space, a slash, an
    emoji, empty, longer than Airflow's 250 characters). ``index`` keeps ids of one DAG apart."""
    if p.chance(0.06):
        kind = p.choice(("invalid", "empty", "too_long"))
    else:  # (repeated options: drawn more often by the random picker)
        kind = p.choice(("ascii", "unicode", "punct", "ascii", "unicode", "punct", "max_len"))
    if kind == "empty":
        return ""
    if kind in ("max_len", "too_long"):
        return "x" * (max_len + (kind == "too_long"))
    alphabet = {"ascii": ASCII_ID, "unicode": UNICODE_ID, "punct": ASCII_ID + VALID_PUNCT,
                "invalid": INVALID_ID}[kind]
    body = "".join(p.choice(alphabet) for _ in range(p.integer(1, 4)))
    return f"t{index}{body}" if kind != "invalid" else f"t{index}{body}x"


def draw_tasks(p: Any, dag: Dag, max_tasks: int) -> None:
    for i in range(p.integer(0, max_tasks)):
        kinds = TASK_KINDS if dag.style != "dag_arg" else TASK_KINDS[:3]
        kind = p.choice(kinds)
        task_id = draw_id(p, i) if p.chance(0.7) else f"task_{i}"
        if dag.tasks and p.chance(0.08):  # a duplicate task id within the DAG
            task_id = p.choice([t.task_id for t in dag.tasks])
        group = p.integer(0, len(dag.groups) - 1) if dag.groups and p.chance(0.5) else None
        dag.tasks.append(Task(kind, task_id, group))
    n = len(dag.tasks)
    for _ in range(p.integer(0, n)):
        if n >= 2:
            a = p.integer(0, n - 2)
            dag.edges.append((a, p.integer(a + 1, n - 1)))
    if n and p.chance(0.1):  # a cycle: a back edge (or a task upstream of itself)
        b = p.integer(0, n - 1)
        dag.edges.append((b, p.integer(0, b)))


def draw_dag(p: Any, index: int, opts: dict) -> Dag:
    style = p.choice(DAG_STYLES)
    dag_id = draw_id(p, index) if p.chance(0.6) else f"dag_{index}"
    dag = Dag(style=style, dag_id=dag_id, anonymous=style != "dag_arg" and p.chance(0.3),
              schedule=p.choice(SCHEDULES) if p.chance(0.5) else "None", owner=p.chance(0.3))
    for g in range(p.integer(0, 2) if p.chance(0.3) else 0):
        dag.groups.append(draw_id(p, g) if p.chance(0.5) else f"group_{g}")
    draw_tasks(p, dag, opts.get("max_tasks", 6))
    if p.chance(0.25):
        kind = p.choice(("plain", "chain", "fan"))
        big = opts.get("max_loop", 1500)
        size = p.integer(1, 20) if not p.chance(0.3) else p.integer(21, big)
        dag.loops.append(Loop(kind, size, p.choice(("step_", "t0", "task_0"))))
    dag.raise_in_body = style == "taskflow" and p.chance(0.05)
    return dag


def draw_case(p: Any, airflow_major: int = 3, opts: dict | None = None) -> Case:
    """One DAG file of the grammar. ``opts``: ``max_tasks`` (explicit tasks per DAG), ``max_loop``
    (largest loop: the long chains and wide fans), ``max_dags``."""
    opts = opts or {}
    dags = [draw_dag(p, i, opts) for i in range(p.integer(1, opts.get("max_dags", 3)))]
    if len(dags) >= 2 and p.chance(0.15):  # the same dag_id twice in one file
        dags[-1].dag_id = dags[0].dag_id
    case = Case(dags=dags, airflow_major=airflow_major,
                encoding=p.choice(ENCODINGS) if p.chance(0.4) else "utf-8",
                legacy_imports=p.chance(0.2), idioms=[i for i in IDIOMS if p.chance(0.1)])
    if p.chance(0.1):
        case.dag_loop = (p.choice(DAG_LOOPS), p.integer(1, 5), draw_id(p, 9))
    if p.chance(0.4):
        case.fault = p.choice(FAULTS[1:])
        case.fault_at_top = p.chance(0.5)
        if case.fault == "raise":
            case.fault_detail = p.choice(RAISES)
        elif case.fault == "sys_exit":
            case.fault_detail = p.choice(EXITS)
    return case


# ---------------------------------------------------------------------------------------------
# rendering


def lit(text: str, latin1: bool) -> str:
    """A Python string literal for ``text`` that the file's encoding can hold."""
    if not latin1:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + "".join(c if ord(c) < 256 and c not in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x10000
                         else f"\\U{ord(c):08x}" for c in text) + '"'


def imports(case: Case) -> list[str]:
    if case.legacy_imports:
        return ["from airflow import DAG", "from airflow.decorators import dag, task",
                "from airflow.utils.task_group import TaskGroup",
                "from airflow.operators.bash import BashOperator",
                "from airflow.operators.python import PythonOperator",
                "from airflow.operators.empty import EmptyOperator"]
    core = (["from airflow.sdk import DAG, TaskGroup, dag, task"] if case.airflow_major >= 3 else
            ["from airflow import DAG", "from airflow.decorators import dag, task",
             "from airflow.utils.task_group import TaskGroup"])
    return core + ["from airflow.providers.standard.operators.bash import BashOperator",
                   "from airflow.providers.standard.operators.python import PythonOperator",
                   "from airflow.providers.standard.operators.empty import EmptyOperator"]


def fault_lines(case: Case) -> list[str]:
    f = case.fault
    if f == "syntax":
        return ["def broken(:", "    pass"]
    if f == "indent":
        return ["x = 1", "    y = 2"]
    if f == "missing_module":
        return ["import snowflake_toolkit_not_installed"]
    if f == "relative_import":
        return ["from . import helpers"]
    if f == "missing_name":
        return ["from airflow.providers.standard.operators.bash import BashOperatorr"]
    if f == "raise":
        d = case.fault_detail
        return [d if d in ("1 / 0", "None.attribute", "undefined_name") else f"raise {d}"]
    if f == "sys_exit":
        return [case.fault_detail]
    return []


def task_lines(dag: Dag, d: int, t: int, task: Task, latin1: bool) -> list[str]:
    dag_kw = f", dag=dag_{d}" if dag.style == "dag_arg" else ""
    tid = lit(task.task_id, latin1)
    var = f"t_{d}_{t}"
    if task.kind == "empty":
        return [f"{var} = EmptyOperator(task_id={tid}{dag_kw})"]
    if task.kind == "bash":
        return [f'{var} = BashOperator(task_id={tid}, bash_command="echo hi"{dag_kw})']
    if task.kind == "python":
        return [f"{var} = PythonOperator(task_id={tid}, python_callable=_callable{dag_kw})"]
    if task.kind == "taskflow":
        return [f"@task(task_id={tid})", f"def fn_{d}_{t}():", f"    return {t}", f"{var} = fn_{d}_{t}()"]
    # taskflow_again: the same @task function called twice (Airflow makes the second id unique)
    return [f"@task(task_id={tid})", f"def fn_{d}_{t}():", f"    return {t}",
            f"{var} = fn_{d}_{t}()", f"{var}_b = fn_{d}_{t}()"]


def loop_lines(dag: Dag, d: int, loop: Loop, latin1: bool) -> list[str]:
    dag_kw = f", dag=dag_{d}" if dag.style == "dag_arg" else ""
    tid = f"{lit(loop.prefix, latin1)} + str(i)"
    if loop.kind == "fan":
        return [f"src_{d} = EmptyOperator(task_id={lit(loop.prefix + 'src', latin1)}{dag_kw})",
                f"src_{d} >> [EmptyOperator(task_id={tid}{dag_kw}) for i in range({loop.size})]"]
    lines = [f"prev_{d} = None", f"for i in range({loop.size}):",
             f"    step = EmptyOperator(task_id={tid}{dag_kw})"]
    if loop.kind == "chain":
        lines += [f"    if prev_{d} is not None:", f"        prev_{d} >> step", f"    prev_{d} = step"]
    return lines


def dag_body(dag: Dag, d: int, latin1: bool) -> list[str]:
    """The statements that make the DAG's tasks, groups, loops and edges (not indented)."""
    lines: list[str] = []
    for t, task in enumerate(dag.tasks):
        if task.group is None:
            lines += task_lines(dag, d, t, task, latin1)
    for g, group_id in enumerate(dag.groups):
        dag_kw = f", dag=dag_{d}" if dag.style == "dag_arg" else ""
        lines.append(f"with TaskGroup(group_id={lit(group_id, latin1)}{dag_kw}):")
        members = [(t, task) for t, task in enumerate(dag.tasks) if task.group == g]
        body = [line for t, task in members for line in task_lines(dag, d, t, task, latin1)]
        lines += ["    " + line for line in body or ["pass"]]
    for loop in dag.loops:
        lines += loop_lines(dag, d, loop, latin1)
    lines += [f"t_{d}_{a} >> t_{d}_{b}" for a, b in dag.edges]
    if dag.raise_in_body:
        lines.append("raise ValueError('raised inside the @dag function')")
    return lines


def dag_lines(dag: Dag, d: int, latin1: bool) -> list[str]:
    args = [f"dag_id={lit(dag.dag_id, latin1)}", f"schedule={dag.schedule}",
            "start_date=datetime(2024, 1, 1)"]
    if dag.owner:
        args.append('default_args={"owner": MAINTAINER}')
    body = dag_body(dag, d, latin1)
    if dag.style == "dag_arg":
        return [f"dag_{d} = DAG({', '.join(args)})", *body]
    if dag.style == "with":
        head = f"with DAG({', '.join(args)}):" if dag.anonymous else f"with DAG({', '.join(args)}) as dag_{d}:"
        return [head, *("    " + line for line in body or ["pass"])]
    call = f"make_{d}()" if dag.anonymous else f"dag_{d} = make_{d}()"
    return [f"@dag({', '.join(args)})", f"def make_{d}():", *("    " + line for line in body or ["pass"]),
            call]


def dag_loop_lines(case: Case, latin1: bool) -> list[str]:
    if case.dag_loop is None:
        return []
    mode, count, prefix = case.dag_loop
    args = f"dag_id={lit(prefix, latin1)} + str(n), schedule=None, start_date=datetime(2024, 1, 1)"
    task = "EmptyOperator(task_id='only')"
    if mode == "globals":
        return [f"for n in range({count}):", f"    globals()['looped_' + str(n)] = made = DAG({args})",
                f"    EmptyOperator(task_id='only', dag=made)"]
    if mode == "with":
        return [f"for n in range({count}):", f"    with DAG({args}):", f"        {task}"]
    return [f"for n in range({count}):", f"    @dag({args})", "    def looped():", f"        {task}",
            "    looped()"]


def idiom_lines(case: Case) -> list[str]:
    lines = []
    if "reads_own_file" in case.idioms:
        lines += ["with open(__file__, 'rb') as own_source:", "    OWN_SOURCE = own_source.read()"]
    if "main_guard" in case.idioms:
        lines += ["if __name__ == '__main__':", "    raise SystemExit('imported as __main__')"]
    return lines


def render_source(case: Case) -> str:
    """The file's text (``\\n`` line ends; ``encode`` applies the case's encoding)."""
    latin1 = case.encoding.startswith("latin-1")
    if case.fault == "no_marker":  # no "airflow" and no "d-a-g" in the text: Airflow skips the file
        return "x = 1 / 0\n"
    lines = ["# -*- coding: latin-1 -*-"] if case.encoding == "latin-1" else []
    lines += ['"""A generated DAG file (maintainer: José Müller)."""', "import sys",
              "from datetime import datetime", *imports(case)]
    if case.fault == "raise" and "AirflowException" in case.fault_detail:
        lines.append("from airflow.exceptions import AirflowException")
    lines += ["", 'MAINTAINER = "José Müller"', "", "", "class CustomError(Exception):", "    pass", "",
              "", "def _callable():", "    return 1", ""]
    if case.fault_at_top:
        lines += fault_lines(case)
    for d, dag in enumerate(case.dags):
        lines += ["", *dag_lines(dag, d, latin1)]
    lines += dag_loop_lines(case, latin1) + idiom_lines(case)
    if case.fault == "cross_dag_edge" and len(case.dags) >= 2:
        # a task of one DAG upstream of a task of another
        kept = all(not dg.anonymous and (dg.tasks or dg.loops) for dg in case.dags[:2])
        lines.append("dag_0.tasks[0] >> dag_1.tasks[0]" if kept else "pass")
    if not case.fault_at_top:
        lines += fault_lines(case)
    return "\n".join(lines) + "\n"


def encode(text: str, encoding: str) -> bytes:
    if encoding == "crlf":
        return text.replace("\n", "\r\n").encode("utf-8")
    if encoding == "utf-8-bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if encoding.startswith("latin-1"):
        return text.encode("latin-1")
    return text.encode("utf-8")


def constructs(case: Case) -> set[str]:
    """Labels of what the case exercises, for counting."""
    out = {f"encoding:{case.encoding}", f"fault:{case.fault}"}
    if case.fault == "no_marker":
        return out
    out.add("legacy_imports" if case.legacy_imports else "current_imports")
    out |= set(case.idioms)
    if case.dag_loop:
        out.add(f"dag_loop:{case.dag_loop[0]}")
    if len(case.dags) > 1:
        out.add("several_dags")
        if len({dg.dag_id for dg in case.dags}) < len(case.dags):
            out.add("dag_id_twice_in_file")
        ids = [{t.task_id for t in dg.tasks} for dg in case.dags]
        if any(a & b for i, a in enumerate(ids) for b in ids[i + 1:]):
            out.add("task_id_shared_across_dags")
    for dg in case.dags:
        out.add(f"style:{dg.style}" + (":anonymous" if dg.anonymous else ""))
        out |= {f"task:{t.kind}" for t in dg.tasks}
        out |= {f"loop:{lp.kind}" + (":long" if lp.size > 20 else "") for lp in dg.loops}
        if dg.groups:
            out.add("task_group")
        classic = [t.task_id for t in dg.tasks if not t.kind.startswith("taskflow")]
        if len(set(classic)) < len(classic):
            out.add("duplicate_task_id")
        elif len({t.task_id for t in dg.tasks}) < len(dg.tasks):
            out.add("duplicate_taskflow_id")  # Airflow renames a TaskFlow task whose id is taken
        if any(b <= a for a, b in dg.edges):
            out.add("back_edge")
        if dg.raise_in_body:
            out.add("raise_in_dag_body")
        if dg.schedule != "None":
            out.add(f"schedule:{dg.schedule.strip(chr(34))}")
        for text in [dg.dag_id, *(t.task_id for t in dg.tasks), *dg.groups]:
            if any(c in UNICODE_ID for c in text):
                out.add("unicode_id")
            if not text or len(text) > 250 or any(c in INVALID_ID for c in text):
                out.add("invalid_id")
    return out
