"""Run single tasks and whole DAGs in tests (pytest-astro's astro_tasks and astro_run_dag fixtures)."""

import pytest


def test_transform_sums_what_extract_returned(dagbag, astro_tasks):
    # a TaskFlow task's function, called with its upstream result; no database
    transform = dagbag.dags["example_taskflow"].get_task("transform")
    assert astro_tasks.run(transform, xcoms={"extract": [1, 2, 3]}) == 6


def test_extract_command_for_a_date(dagbag, astro_tasks):
    # a classic operator's templated fields, rendered for one logical date
    extract = dagbag.dags["classic_etl"].get_task("extract")
    rendered = astro_tasks.render(extract, logical_date="2024-03-01")
    assert rendered["bash_command"] == "echo extracting 2024-03-01"


def test_count_rows_runs(dagbag, astro_tasks):
    # an operator's execute, with a minimal context
    assert astro_tasks.run(dagbag.dags["classic_etl"].get_task("count_rows")) == 42


@pytest.mark.astro_db
def test_whole_dag_runs(dagbag, astro_run_dag):
    # the whole DAG with Airflow's dag.test(), on a throwaway SQLite database made for this session
    outcome = astro_run_dag(dagbag.dags["example_taskflow"], logical_date="2024-03-01")
    assert outcome.state == "success", outcome.failed_tasks
    assert outcome.task_states == {"extract": "success", "transform": "success", "load": "success"}
