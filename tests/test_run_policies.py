"""DAG009 next_run (on by default) and DAG112 unbounded_mapping (opt-in), on Airflow 3 and 2 alike."""

from __future__ import annotations

import pytest

PROJECT = {
    "pyproject.toml": """
        [tool.pytest-astro.policies]
        extend-select = ["DAG112"]
    """,
    "dags/schedules.py": """
        from datetime import datetime
        import pendulum
        try:
            from airflow.sdk import DAG, task
        except ImportError:  # Airflow 2
            from airflow import DAG
            from airflow.decorators import task

        ARGS = dict(start_date=datetime(2024, 1, 1), catchup=False, tags=["t"], default_args={"retries": 2})

        def one_task():
            @task
            def work():
                pass
            work()

        with DAG("never", schedule="0 0 30 2 *", **ARGS):  # February 30th
            one_task()

        with DAG("leap_days_only", schedule="0 0 29 2 *", **ARGS):
            one_task()

        with DAG("ended", schedule="@daily", end_date=datetime(2024, 6, 1), **ARGS):
            one_task()

        with DAG("yearly", schedule="@yearly", **ARGS):
            one_task()

        with DAG("manual", schedule=None, **ARGS):
            one_task()

        with DAG("hourly_local", schedule="@hourly", **{**ARGS, "start_date": pendulum.datetime(2024, 1, 1, tz="Europe/Amsterdam")}):
            one_task()
    """,
    "dags/mapping.py": """
        from datetime import datetime
        try:
            from airflow.sdk import DAG, task
            from airflow.providers.standard.operators.bash import BashOperator
        except ImportError:  # Airflow 2
            from airflow import DAG
            from airflow.decorators import task
            from airflow.operators.bash import BashOperator

        with DAG("mapping", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"],
                 default_args={"retries": 2}):
            @task
            def list_files():
                return ["a.csv", "b.csv"]

            @task
            def load(path, table):
                return path

            @task(max_active_tis_per_dagrun=4)
            def limited(path):
                return path

            files = list_files()
            load.partial(table="orders").expand(path=files)                      # unbounded
            BashOperator.partial(task_id="echo").expand(bash_command=files.map(lambda f: f"echo {f}"))
            limited.expand(path=files)                                            # limited
            load.expand(path=["x.csv", "y.csv"], table=["t"])                     # a literal list
    """,
}


@pytest.fixture
def project(pytester: pytest.Pytester, write_files):
    write_files(pytester.path, PROJECT)
    return pytester


def test_schedules_without_a_next_run_fail(project: pytest.Pytester):
    result = project.runpytest("--astro-dags", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    for line in [
        "dags/schedules.py:17: DAG009 never: schedule '0 0 30 2 [*]': computing the next run, the timetable "
        "raised CroniterBadDateError: *",
        "dags/schedules.py:20: DAG009 leap_days_only: schedule '0 0 29 2 [*]': the next run is due *-02-29, more "
        "than 366 days after *",
        "dags/schedules.py:23: DAG009 ended: schedule '@daily': no next run, end_date 2024-06-01* has passed *",
        "dags/mapping.py:10: DAG112 mapping: task 'load': mapped over upstream output (path= from 'list_files') "
        "with no limit on its instances (hint: set max_active_tis_per_dagrun=N*",
        "dags/mapping.py:10: DAG112 mapping: task 'echo': mapped over upstream output (bash_command= from "
        "'list_files') with no limit on its instances*",
    ]:
        result.stdout.fnmatch_lines([line])
    out = result.stdout.str()
    for quiet in ("DAG009 yearly", "DAG009 manual", "DAG009 hourly_local", "task 'limited'", "task 'load__1'"):
        assert quiet not in out


def test_policies_can_be_ignored_and_exempted(project: pytest.Pytester):
    (project.path / "pyproject.toml").write_text(
        '[tool.pytest-astro.policies]\nignore = ["DAG009"]\nextend-select = ["DAG112"]\n'
        '[[tool.pytest-astro.policies.exempt]]\ndags = ["mapping"]\nreason = "fan-out is bounded upstream"\n')
    project.runpytest("--astro-dags", "-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_horizon_is_an_option_and_mapping_is_opt_in(project: pytest.Pytester):
    (project.path / "pyproject.toml").write_text('[tool.pytest-astro.policies.next_run]\nhorizon-days = 2000\n')
    result = project.runpytest("--astro-dags", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert "leap_days_only" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*DAG009 never*"])
    result.stdout.fnmatch_lines(["*DAG009 ended*"])
    assert "DAG112" not in result.stdout.str()
