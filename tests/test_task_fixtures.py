"""Fixtures that run things in users' tests: astro_tasks (no database) and astro_run_dag (dag.test()).

Real pytest sessions (pytester) on a small real project, on Airflow 3 and 2 alike: the DAG file
imports what exists on both.
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import AIRFLOW_MAJOR, EXAMPLES

PROJECT = {
    "pyproject.toml": """
        [tool.pytest-astro.variables]
        target_table = "analytics.orders"

        [tool.pytest-astro.policies]
        select = []
    """,
    "dags/orders.py": """
        from datetime import datetime
        from airflow import DAG
        try:
            from airflow.sdk import task
            from airflow.providers.standard.operators.bash import BashOperator
            from airflow.providers.standard.operators.python import PythonOperator
        except ImportError:  # Airflow 2
            from airflow.decorators import task
            from airflow.operators.bash import BashOperator
            from airflow.operators.python import PythonOperator

        def _announce(ti, params, **context):
            ti.xcom_push(key="region", value=params["region"])
            return f"announced {params['region']} for {context['ds']}"

        with DAG("orders", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False,
                 params={"region": "emea", "limit": 10}) as dag:
            @task
            def extract(params=None):
                return list(range(params["limit"]))

            @task
            def total(values, ds=None):
                return {"rows": len(values), "sum": sum(values), "day": ds}

            load = BashOperator(
                task_id="load",
                bash_command="echo load {{ var.value.target_table }} {{ ds }} {{ params.region }} "
                             "{{ ti.xcom_pull(task_ids='total')['rows'] }}",
                env={"DAY": "{{ ds_nodash }}"},
            )
            announce = PythonOperator(task_id="announce", python_callable=_announce)
            total(extract()) >> load >> announce
    """,
    "tests/test_orders.py": """
        import os
        import pytest

        def test_taskflow_function_with_upstream_value(dagbag, astro_tasks):
            dag = dagbag.dags["orders"]
            out = astro_tasks.run(dag.get_task("total"), logical_date="2024-03-01", xcoms={"extract": [1, 2, 3]})
            assert out == {"rows": 3, "sum": 6, "day": "2024-03-01"}

        def test_taskflow_function_reads_params(dagbag, astro_tasks):
            dag = dagbag.dags["orders"]
            assert astro_tasks.run(dag.get_task("extract")) == list(range(10))
            assert astro_tasks.run(dag.get_task("extract"), params={"limit": 2}) == [0, 1]

        def test_render_templated_fields(dagbag, astro_tasks):
            load = dagbag.dags["orders"].get_task("load")
            rendered = astro_tasks.render(load, logical_date="2024-03-01", params={"region": "apac"},
                                          xcoms={"total": {"rows": 7}})
            assert rendered["bash_command"] == "echo load analytics.orders 2024-03-01 apac 7"
            assert rendered["env"] == {"DAY": "20240301"}
            # the task in the DAG is left as it was
            assert load.bash_command.startswith("echo load {{ var.value.target_table }}")

        def test_operator_execute_with_context(dagbag, astro_tasks):
            announce = dagbag.dags["orders"].get_task("announce")
            context = astro_tasks.context(announce, logical_date="2024-05-06", conf={"region": "amer"})
            assert astro_tasks.run(announce, context) == "announced amer for 2024-05-06"
            assert context["ti"].pushed == {"region": "amer"}
            assert context["data_interval_start"].isoformat().startswith("2024-05-0")

        @pytest.mark.astro_db
        def test_whole_dag(dagbag, astro_run_dag):
            outcome = astro_run_dag(dagbag.dags["orders"], logical_date="2024-03-01", conf={"limit": 3})
            assert outcome.state == "success", outcome.task_states
            assert outcome.task_states == {"extract": "success", "total": "success", "load": "success",
                                           "announce": "success"}

        def test_whole_dag_needs_the_mark(dagbag, astro_run_dag):
            astro_run_dag(dagbag.dags["orders"])

        def test_users_airflow_home_untouched():
            assert not os.listdir(os.environ["USERS_AIRFLOW_HOME"])
    """,
}


@pytest.fixture
def project(pytester: pytest.Pytester, write_files, monkeypatch):
    write_files(pytester.path, PROJECT)
    home = pytester.path / "users_airflow_home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))  # what pytest-astro must never write into
    monkeypatch.setenv("USERS_AIRFLOW_HOME", str(home))
    return pytester


def test_tasks_run_and_render_without_a_database(project: pytest.Pytester):
    result = project.runpytest_subprocess("--astro-dags", "-p", "no:cacheprovider", "tests/", "-k",
                                          "not whole_dag", "-rA")
    result.assert_outcomes(passed=5)
    assert "cannot be called outside" not in result.stdout.str()


def test_whole_dag_runs_on_a_throwaway_database(project: pytest.Pytester):
    result = project.runpytest_subprocess("--astro-dags", "-p", "no:cacheprovider", "tests/", "-k",
                                          "whole_dag or untouched", "-rA")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_whole_dag_needs_the_mark*",
        "*astro_run_dag runs the DAG with Airflow's dag.test(), which needs a database: mark the test with "
        "@pytest.mark.astro_db (it gets a throwaway SQLite file, never your AIRFLOW_HOME)*",
    ])
    result.stdout.fnmatch_lines(["PASSED tests/test_orders.py::test_whole_dag"])
    assert not list(project.path.rglob("airflow.db"))


def test_airflow_imported_too_early_is_refused(project: pytest.Pytester, write_files):
    write_files(project.path, {"conftest.py": "import airflow.settings  # before pytest-astro's sandbox\n"})
    result = project.runpytest_subprocess("--astro-dags", "-p", "no:cacheprovider", "tests/", "-k",
                                          "test_whole_dag and not mark")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*astro_run_dag: Airflow's database is *users_airflow_home/airflow.db*, not "
                                 "pytest-astro's throwaway SQLite file*"])
    assert not (project.path / "users_airflow_home" / "airflow.db").exists()


def test_fixtures_need_astro_dags(project: pytest.Pytester):
    project.makepyfile(test_plain="def test_it(astro_tasks):\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "test_plain.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the astro_tasks fixture needs `pytest --astro-dags`*"])


@pytest.mark.skipif(AIRFLOW_MAJOR < 3, reason="examples/astro-project is the Runtime 3 project")
def test_example_project_uses_them(pytester: pytest.Pytester):
    shutil.copytree(EXAMPLES / "astro-project", pytester.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    result = pytester.runpytest_subprocess("--astro-dags", "-p", "no:cacheprovider", "tests/test_tasks.py", "-v")
    result.assert_outcomes(passed=4)
