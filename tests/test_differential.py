"""Differential test: generated DAG files judged by pytest-astro and by a stock ``DagBag`` agree.

For every file drawn from the grammar in tests/differential/grammar.py (operators, TaskFlow, task
groups, loops, several DAGs per file, encodings, long chains and wide fans, unicode and invalid
ids, duplicate task ids, cycles, syntax and import errors, exceptions and ``sys.exit`` at import):

- our parse verdict (``pytest --astro-dags``) equals stock Airflow's: passed or failed, the
  exception class, and for a passing file its dag_ids and task ids;
- no item of ours ends in an internal error (parse or policy: every policy is selected);
- every lint finding that says Airflow refuses the file (AST000, AST203) is a stock import error;
- ``pytest-astro lint --fix`` never changes the stock verdict of a file.

Hypothesis draws the files (``PYTEST_ASTRO_DIFFERENTIAL_EXAMPLES``, default 250, and
``PYTEST_ASTRO_DIFFERENTIAL_SEED``). Both sides cost ``import airflow`` per process, so the test
runs hypothesis twice with the same seed: the first pass only draws the files, which are then
judged together in one batch; the second pass replays the same draws against those verdicts.
With ``PYTEST_ASTRO_DIFFERENTIAL_SHRINK=1`` a disagreement makes hypothesis shrink it to a minimal
file (each smaller candidate is judged alone, a few seconds each, so it takes minutes). Known, routed disagreements are listed in tests/differential/known.py,
each tracked by a strict-xfail regression case below. bench/differential.py runs thousands.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_astro.project import airflow_major
from tests.differential.grammar import Case, HypothesisPicker, draw_case
from tests.differential.known import triage
from tests.differential.oracles import Outcome, compare, migrate, run_batch

hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("PYTEST_ASTRO_DIFFERENTIAL_EXAMPLES", "250"))
SEED = int(os.environ.get("PYTEST_ASTRO_DIFFERENTIAL_SEED", "20261130"))
#: shrink a disagreement to a minimal file (each candidate is judged alone: minutes); off in CI,
#: where the failure shows the whole generated file
SHRINK = os.environ.get("PYTEST_ASTRO_DIFFERENTIAL_SHRINK", "") not in ("", "0")
OPTS = {"max_loop": 1500}  # chains and fans up to 1,500 tasks here; bench/differential.py goes further
MAJOR = airflow_major()


@pytest.fixture(scope="session")
def stock_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AIRFLOW_HOME with a migrated SQLite metadata database, for the stock side."""
    return migrate(tmp_path_factory.mktemp("stock-airflow-home"))


class Raw:
    """A hand-written file for the regression cases: bytes as they are on disk."""

    def __init__(self, data: bytes, label: str):
        self.data, self.label = data, label

    def render(self) -> bytes:
        return self.data

    def constructs(self) -> list[str]:
        return [self.label]


class Judge:
    """Both sides' verdicts per file content; files not judged yet are judged in one batch."""

    def __init__(self, home: Path, workdir: Path):
        self.home, self.workdir = home, workdir
        self.outcomes: dict[bytes, Outcome] = {}
        self.run_errors: list[str] = []
        self.batches = self.fixed = 0

    def judge(self, cases: list) -> None:
        todo = list({c.render(): c for c in cases if c.render() not in self.outcomes}.values())
        if not todo:
            return
        self.batches += 1
        result = run_batch(todo, self.workdir / f"batch{self.batches}", self.home)
        self.run_errors += result.internal
        self.fixed += result.fixed
        for case, outcome in zip(todo, result.outcomes):
            self.outcomes[case.render()] = outcome

    def __getitem__(self, case) -> Outcome:
        self.judge([case])
        return self.outcomes[case.render()]


def explain(case, outcome: Outcome, lines: list[str]) -> str:
    text = case.render().decode("utf-8", "backslashreplace")
    return (f"{len(lines)} problem(s) on a generated file ({', '.join(outcome.constructs)}):\n"
            + "\n".join(f"  {line}" for line in lines) + f"\n--- the file ---\n{text}")


def for_each_case(body):
    """A hypothesis test that calls ``body(case)`` on each drawn case: the same draws every time."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if SHRINK else [])

    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True, phases=phases,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def generated(data):
        body(draw_case(HypothesisPicker(data), MAJOR, OPTS))

    return generated


def test_generated_files_agree_with_stock_airflow(stock_home: Path, tmp_path: Path, record_property):
    judge = Judge(stock_home, tmp_path)
    drawn: list[Case] = []
    for_each_case(drawn.append)()  # pass 1: draw only
    judge.judge(drawn)  # one batch: both sides import Airflow once
    assert not judge.run_errors, judge.run_errors

    def check(case: Case) -> None:
        outcome = judge[case]
        disagreements, internal, _ = triage(outcome)
        assert not disagreements and not internal, explain(case, outcome, disagreements + internal)

    for_each_case(check)()  # pass 2: the same draws against the verdicts; a failure shrinks
    compared = {c.render() for c in drawn}
    assert len(compared) >= EXAMPLES // 2, "the grammar drew too few distinct files"
    passing = sum(judge.outcomes[data].stock["ok"] for data in compared)
    # both kinds are compared: a grammar that only makes broken (or only good) files proves little
    assert 0.2 * len(compared) < passing < 0.9 * len(compared), (passing, len(compared))
    if MAJOR >= 3:  # the legacy imports get AST302 fixes: the --fix check compared something
        assert judge.fixed > 0
    record_property("differential", f"{len(compared)} files compared ({passing} passing on stock), "
                                    f"{judge.fixed} changed by lint --fix, on Airflow {MAJOR}")


LATIN1 = '''# -*- coding: latin-1 -*-
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="latin1", schedule=None, start_date=datetime(2024, 1, 1), default_args={"owner": "José"}):
    EmptyOperator(task_id="t")
'''.encode("latin-1")

SAME_TASK_ID_IN_TWO_DAGS = b'''from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

dag_1 = DAG(dag_id="one", schedule=None, start_date=datetime(2024, 1, 1))
dag_2 = DAG(dag_id="two", schedule=None, start_date=datetime(2024, 1, 1))
EmptyOperator(task_id="same", dag=dag_1)
EmptyOperator(task_id="same", dag=dag_2)
'''

SAME_TASKFLOW_ID_TWICE = b'''from datetime import datetime
from airflow import DAG
from airflow.decorators import task

with DAG(dag_id="taskflow_ids", schedule=None, start_date=datetime(2024, 1, 1)):
    @task(task_id="same")
    def first():
        return 1

    @task(task_id="same")
    def second():
        return 2

    first() >> second()
'''

LONG_CHAIN = b'''from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="long_chain", schedule=None, start_date=datetime(2024, 1, 1)):
    prev = None
    for i in range(3000):
        step = EmptyOperator(task_id="step_" + str(i))
        if prev is not None:
            prev >> step
        prev = step
'''

CYCLE_THEN_BAD_CRON = b'''from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="cyclic", schedule=None, start_date=datetime(2024, 1, 1)):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a

with DAG(dag_id="bad_cron", schedule="not a cron expression", start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="t")
'''

DAG_ID_TWICE = b'''from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="twice", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="first")

with DAG(dag_id="twice", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="second")
'''

SAME_TASK_ID_IN_A_GROUP_WITH_DAG_ARG = b'''from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.utils.task_group import TaskGroup

dag = DAG(dag_id="grouped", schedule=None, start_date=datetime(2024, 1, 1))
EmptyOperator(task_id="x", dag=dag)
with TaskGroup(group_id="g", dag=dag):
    EmptyOperator(task_id="x", dag=dag)
'''

GOOD = b'''from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="d", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="a")
    EmptyOperator(task_id="b")
'''
DUPLICATE = GOOD.replace(b'task_id="b"', b'task_id="a"')

#: the hand-written files, judged together in one batch
FILES = {"latin1": LATIN1, "same_task_id_in_two_dags": SAME_TASK_ID_IN_TWO_DAGS,
         "same_taskflow_id_twice": SAME_TASKFLOW_ID_TWICE, "long_chain": LONG_CHAIN,
         "cycle_then_bad_cron": CYCLE_THEN_BAD_CRON, "dag_id_twice": DAG_ID_TWICE, "good": GOOD,
         "duplicate": DUPLICATE, "same_task_id_in_a_group_with_dag_arg": SAME_TASK_ID_IN_A_GROUP_WITH_DAG_ARG}


@pytest.fixture(scope="module")
def regressions(stock_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    judge = Judge(stock_home, tmp_path_factory.mktemp("regressions"))
    raws = {name: Raw(data, name) for name, data in FILES.items()}
    judge.judge(list(raws.values()))
    assert not judge.run_errors, judge.run_errors
    return {name: judge[raw] for name, raw in raws.items()}


def test_the_oracles_see_what_they_compare(regressions: dict[str, Outcome]):
    """The comparison can fail: each side's verdict is really read (a check of the harness)."""
    ok, bad = regressions["good"], regressions["duplicate"]
    assert ok.stock == {"ok": True, "error": None, "text": "", "dags": {"d": ["a", "b"]}, "refusals": [],
                        "made": {"d": [["a", "b"]]}}
    assert ok.ours["ok"] and ok.ours["dags"] == {"d": [["a", "b"]]} and ok.disagreements == []
    assert bad.stock["error"] == "DuplicateTaskIdFound" and not bad.ours["ok"]
    assert "DuplicateTaskIdFound" in bad.ours["errors"]
    # the lint's claim on the duplicate (AST203) is a stock refusal: no disagreement either
    assert bad.disagreements == []


def routed(test_file: str, field: str, owner: str, reason: str):
    """A regression case for a disagreement found here and routed to ``owner``: strict xfail, so its
    fix shows up as an XPASS failure (then make it ``fixed`` and drop its entry in known.py)."""
    return pytest.param(test_file, field, id=f"{test_file}-{field}",
                        marks=pytest.mark.xfail(strict=True, reason=f"{owner}: {reason}"))


def fixed(test_file: str, field: str):
    """A regression case for a disagreement found here and since fixed."""
    return pytest.param(test_file, field, id=f"{test_file}-{field}")


@pytest.mark.parametrize(("test_file", "field"), [
    # AST000 said a latin-1 file with a PEP 263 coding cookie is not valid UTF-8; stock parses it
    fixed("latin1", "disagreements"),
    # every policy item of a latin-1 file failed with IndexError at policies/config.py:177
    fixed("latin1", "internal"),
    # AST203 counted task ids per file, not per DAG: the same task id in two DAGs (dag=) is valid
    fixed("same_task_id_in_two_dags", "disagreements"),
    # AST203 flagged two @task(task_id='same') in one DAG; Airflow renames the second (same__1)
    fixed("same_taskflow_id_twice", "disagreements"),
    # no_cycles failed with RecursionError on a chain of 3,000 tasks (recursive depth-first search)
    fixed("long_chain", "internal"),
    # AST203 ignores the group of a task made with dag= inside `with TaskGroup(..., dag=dag)`: its id
    # is g.x, not x (bench/differential.py, seed 1, cases 582 and 968 on Airflow 3)
    fixed("same_task_id_in_a_group_with_dag_arg", "disagreements"),
])
def test_routed_regression(regressions: dict[str, Outcome], test_file: str, field: str):
    """No disagreement (verdicts, lint claims, --fix) or internal error of ours on the file."""
    assert getattr(regressions[test_file], field) == []


def test_every_dag_airflow_refuses_is_reported(regressions: dict[str, Outcome]):
    """Stock bags both DAGs and keeps the error of the last, in a varying order: we report both."""
    outcome = regressions["cycle_then_bad_cron"]
    both = ["AirflowDagCycleException", "AirflowTimetableInvalid"]
    assert outcome.stock["error"] in both and sorted(outcome.stock["refusals"]) == both, outcome.stock
    assert outcome.ours["errors"] == both, outcome.ours  # in the order of their lines
    assert outcome.disagreements == [] and outcome.internal == []


def test_a_dag_id_made_twice_in_a_file_is_reported_once(regressions: dict[str, Outcome]):
    """Stock bags both DAGs and keeps either (a varying order): we report the last one made, once."""
    outcome = regressions["dag_id_twice"]
    assert outcome.stock["made"] == {"twice": [["first"], ["second"]]} or \
        outcome.stock["made"] == {"twice": [["second"], ["first"]]}, outcome.stock
    assert outcome.ours["dags"] == {"twice": [["second"]]}, outcome.ours
    assert outcome.disagreements == [] and outcome.internal == []


def test_the_comparison_is_exact_where_stock_varies():
    """Where stock's pick varies, any of its picks is accepted, and nothing else."""
    cycle, cron = "AirflowDagCycleException", "AirflowTimetableInvalid"
    failing = {"ok": False, "error": cron, "refusals": [cron, cycle], "dags": {}, "made": {}}
    assert compare(failing, {"ok": False, "errors": [cycle, cron], "dags": {}}) is None
    assert compare({**failing, "error": cycle}, {"ok": False, "errors": [cycle, cron], "dags": {}}) is None
    # one of the refused DAGs left out, one reported twice, or another class: each is a disagreement
    assert compare(failing, {"ok": False, "errors": [cron], "dags": {}}) == "refused DAGs"
    assert compare(failing, {"ok": False, "errors": [cron, cron], "dags": {}}) == "refused DAGs"
    assert compare(failing, {"ok": False, "errors": [cycle, cron, "ValueError"], "dags": {}}) == "refused DAGs"
    assert compare(failing, {"ok": False, "errors": [cycle], "dags": {}}) == "exception class"
    # one error recorded: exactly that one
    single = {"ok": False, "error": "ValueError", "refusals": ["ValueError"], "dags": {}, "made": {}}
    assert compare(single, {"ok": False, "errors": ["ValueError"], "dags": {}}) is None
    assert compare(single, {"ok": False, "errors": ["ValueError", cycle], "dags": {}}) == "refused DAGs"

    twice = {"ok": True, "error": None, "refusals": [], "dags": {"x": ["first"]},
             "made": {"x": [["first"], ["second"]]}}
    assert compare(twice, {"ok": True, "errors": [], "dags": {"x": [["second"]]}}) is None
    assert compare(twice, {"ok": True, "errors": [], "dags": {"x": [["first"]]}}) is None
    assert compare(twice, {"ok": True, "errors": [], "dags": {"x": [["third"]]}}) == "task ids"
    assert compare(twice, {"ok": True, "errors": [], "dags": {"x": [["first"], ["second"]]}}) == \
        "a dag_id reported twice"
    assert compare(twice, {"ok": True, "errors": [], "dags": {"y": [["first"]]}}) == "dag_ids"
