"""Every finding true: projects shaped like the ones where `pytest-astro lint` used to be wrong
(issue 19), linted with the real command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_lint import RUNTIME2, RUNTIME3, lines, run_cli

TASK_ONLY_IMPORT = '''
import pendulum
from airflow.sdk import dag, task


@dag(schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def docs_ingest():
    from include.tasks.dag_body import SOURCES  # runs at parse time: the @dag body

    @task
    def extract():
        # runs when the task runs, never when Airflow parses the file
        from include.tasks.extract import astro_sdk_docs
        return astro_sdk_docs.extract(SOURCES)

    extract()


docs_ingest()
'''

FILES = {
    "Dockerfile": RUNTIME3,
    "dags/docs_ingest.py": TASK_ONLY_IMPORT,
    "dags/reports.py": "from airflow.sdk import DAG\nfrom include.reports import build\n",
    "include/__init__.py": "",
    "include/tasks/__init__.py": "",
    "include/tasks/extract/__init__.py": "",
    "include/tasks/extract/astro_sdk_docs.py": "import pandas\n\ndef extract(sources):\n    return pandas.DataFrame(sources)\n",
    "include/tasks/dag_body.py": "import numpy\nSOURCES = ['a']\n",
    # reached through a relative import of a module the DAG file imports at module level
    "include/reports/__init__.py": "from .build import build\n",
    "include/reports/build.py": "from ..shared import CONFIG\n\ndef build():\n    return CONFIG\n",
    "include/shared.py": "import requests\nCONFIG = requests.get('https://config').json()\n",
    # imported by no DAG file
    "include/streamlit/streamlit_app.py": (
        "import requests\nfrom airflow.hooks.base import BaseHook\nfrom airflow.providers.postgres.hooks.postgres import PostgresHook\n"
        "HOST = BaseHook.get_connection('pg').host\nDB = PostgresHook('pg')\nDATA = open('data.csv').read()\n"),
}


@pytest.fixture
def project(tmp_path: Path, write_files) -> Path:
    return write_files(tmp_path, FILES)


def found(proc) -> set[tuple[str, str]]:
    return {(line.split(":")[0], line.split()[1]) for line in lines(proc)}


def test_parse_time_rules_only_on_modules_imported_at_parse_time(project: Path) -> None:
    proc = run_cli("lint", "--select", "AST0,AST1", cwd=project)
    assert found(proc) == {
        ("include/tasks/dag_body.py", "AST101"),  # imported in the @dag body: parse time
        ("include/shared.py", "AST005"),  # dags/reports.py -> include.reports -> .build -> ..shared
    }, proc.stdout
    # Named on the command line (as pre-commit does with one changed file): the same verdicts.
    one = run_cli("lint", "--select", "AST0,AST1", "include/streamlit/streamlit_app.py",
                  "include/tasks/extract/astro_sdk_docs.py", "include/shared.py", cwd=project)
    assert found(one) == {("include/shared.py", "AST005")}, one.stdout


# Import statements in every shape: the reachability pass reads imports with a regular expression
# before parsing a file, and must never miss one.
IMPORT_SHAPES = ["import include.streamlit.streamlit_app\n", "import json, include.streamlit.streamlit_app as app\n",
                 "if True: import include.streamlit.streamlit_app\n", "x = 1; from include.streamlit import streamlit_app\n",
                 "from include.streamlit import (\n    streamlit_app,\n)\n",
                 "from \\\n    include.streamlit import streamlit_app\n", "import \\\n    include.streamlit.streamlit_app\n"]


@pytest.mark.parametrize("shape", IMPORT_SHAPES)
def test_a_new_import_makes_a_module_reachable(project: Path, write_files, shape: str) -> None:
    assert run_cli("lint", "--select", "AST0", "include/streamlit/streamlit_app.py", cwd=project).returncode == 0
    write_files(project, {"dags/dashboard.py": "from airflow.sdk import DAG\n" + shape,
                          "include/streamlit/__init__.py": ""})
    codes = {code for _, code in found(run_cli("lint", "--select", "AST0", "include/streamlit/streamlit_app.py",
                                               cwd=project))}
    assert codes >= {"AST002", "AST003", "AST006"}


BRANCH_DATETIME = '''
import pendulum
from airflow.providers.standard.operators.datetime import BranchDateTimeOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

dag1 = DAG(dag_id="branch_1", start_date=pendulum.datetime(2021, 1, 1, tz="UTC"), catchup=False, schedule="@daily")
empty_task_11 = EmptyOperator(task_id="date_in_range", dag=dag1)
empty_task_21 = EmptyOperator(task_id="date_outside_range", dag=dag1)
cond1 = BranchDateTimeOperator(task_id="datetime_branch", follow_task_ids_if_true=["date_in_range"],
                               follow_task_ids_if_false=["date_outside_range"], target_upper=pendulum.time(0, 0, 0),
                               target_lower=pendulum.time(15, 0, 0), dag=dag1)
cond1 >> [empty_task_11, empty_task_21]

dag2 = DAG(dag_id="branch_2", start_date=pendulum.datetime(2021, 1, 1, tz="UTC"), catchup=False, schedule="@daily")
empty_task_12 = EmptyOperator(task_id="date_in_range", dag=dag2)
empty_task_22 = EmptyOperator(task_id="date_outside_range", dag=dag2)
cond2 = BranchDateTimeOperator(task_id="datetime_branch", follow_task_ids_if_true=["date_in_range"],
                               follow_task_ids_if_false=["date_outside_range"], target_upper=pendulum.time(0, 0, 0),
                               target_lower=pendulum.time(15, 0, 0), dag=dag2)
cond2 >> [empty_task_12, empty_task_22]
'''

SCHEDULES = '''
from airflow.sdk import DAG, Asset, dag

with DAG("manual", schedule=None):
    pass

with DAG("on_asset", schedule=[Asset("s3://bucket/key")]):
    pass

@dag
def bare():
    pass

bare()
'''

FALLBACK = '''
try:
    from airflow.sdk import dag, task
except ImportError:
    from airflow.decorators import dag, task

try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:
    from airflow.operators.bash import BashOperator
'''

# Found by the differential run (issue 19): the second task joins the group despite dag=, so its id is g.x
GROUPED = '''
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.utils.task_group import TaskGroup

dag = DAG(dag_id="grouped", schedule=None, start_date=datetime(2024, 1, 1))
EmptyOperator(task_id="x", dag=dag)
with TaskGroup(group_id="g", dag=dag):
    EmptyOperator(task_id="x", dag=dag)
'''


def test_no_false_findings_on_valid_dag_shapes(project: Path, write_files) -> None:
    write_files(project, {"dags/example_branch_datetime_operator.py": BRANCH_DATETIME,
                          "dags/schedules.py": SCHEDULES, "dags/fallback.py": FALLBACK, "dags/grouped.py": GROUPED})
    proc = run_cli("lint", "dags/example_branch_datetime_operator.py", "dags/schedules.py", "dags/fallback.py",
                   cwd=project)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stdout
    # (its Airflow 2 imports are AST302's true findings on this Airflow 3 project)
    proc = run_cli("lint", "--select", "AST0,AST1,AST2", "dags/grouped.py", cwd=project)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stdout


def test_fix_never_touches_a_version_fallback(project: Path, write_files) -> None:
    write_files(project, {"dags/fallback.py": FALLBACK + "from airflow.operators.python import PythonOperator\n"})
    proc = run_cli("lint", "--fix", "--unsafe-fixes", "dags/fallback.py", cwd=project)
    fixed = (project / "dags/fallback.py").read_text()
    assert fixed.startswith(FALLBACK.lstrip("\n")), fixed  # both branches as written
    assert fixed.endswith("from airflow.providers.standard.operators.python import PythonOperator\n")
    assert proc.stdout == ""


def test_an_airflow2_project_gets_no_airflow3_rewrites(project: Path, write_files) -> None:
    write_files(project, {"Dockerfile": RUNTIME2, "dags/old.py": "from airflow.decorators import dag, task\n"})
    for select in ("AST", "AST3", "AST302"):
        proc = run_cli("lint", "--fix", "--select", select, "dags/old.py", cwd=project)
        assert proc.returncode == 0 and (project / "dags/old.py").read_text() == "from airflow.decorators import dag, task\n"


TEMPLATED = '''
import pendulum
from airflow.sdk import DAG
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.bash import BashOperator

with DAG("report", schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         template_searchpath=["/nonexistent", "../include/sql"]):
    SQLExecuteQueryOperator(task_id="load", conn_id="pg", sql="daily.sql")
    BashOperator(task_id="run", bash_command="scripts/run.sh")
    BashOperator(task_id="literal", bash_command="scripts/run.sh ")
'''


def test_template_files_the_operators_render(project: Path, write_files) -> None:
    write_files(project, {
        "dags/report.py": TEMPLATED,
        "include/sql/daily.sql": "select 1\nwhere d = '{{ execution_date }}'\nand n = '{{ next_ds }}'\n",
        "dags/scripts/run.sh": "echo {{ dag_run.execution_date }}\n"})
    out = lines(run_cli("lint", "--select", "AST306", "dags/report.py", cwd=project))
    assert out == [
        "dags/report.py:8:63: AST306 template file daily.sql (line 2, 3): context key removed in Airflow 3: "
        "execution_date -> logical_date, next_ds -> data_interval_end | ds",
        "dags/report.py:9:46: AST306 template file scripts/run.sh (line 1): context key removed in Airflow 3: "
        "dag_run.execution_date -> dag_run.logical_date",
    ]
    # The template is part of the cache key: fixing it (and nothing else) clears the finding.
    (project / "dags/scripts/run.sh").write_text("echo {{ dag_run.logical_date }}\n")
    out = lines(run_cli("lint", "--select", "AST306", "dags/report.py", cwd=project))
    assert [line.split(":")[1] for line in out] == ["8"]
