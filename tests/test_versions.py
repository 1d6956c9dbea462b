"""Airflow 2 and 3: the upgrade check, and the runtime-version mismatch warning."""

from __future__ import annotations

from tests.conftest import AIRFLOW_MAJOR

OLD_DAG = '''
from datetime import datetime
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG("old", start_date=datetime(2024, 1, 1), schedule_interval="@daily", catchup=False,
         default_args={"retries": 2}, tags=["x"]):
    BashOperator(task_id="a", bash_command="echo {{ execution_date }}")
'''

MODERN_DAG = '''
from datetime import datetime
from airflow.providers.standard.operators.bash import BashOperator
from airflow import DAG

with DAG("modern", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False,
         default_args={"retries": 2}, tags=["x"]):
    BashOperator(task_id="a", bash_command="echo {{ logical_date }}")
'''


def test_upgrade_check_lists_what_breaks_on_airflow_3(pytester, write_files):
    write_files(pytester.path, {"Dockerfile": "FROM quay.io/astronomer/astro-runtime:12.9.0\n",
                                "dags/old.py": OLD_DAG, "dags/modern.py": MODERN_DAG})
    result = pytester.runpytest("--astro-dags", "--astro-upgrade-check", "-rf")
    # even modern.py: `from airflow import DAG` moved to airflow.sdk
    result.stdout.fnmatch_lines(["FAILED dags/modern.py::airflow3 - 1 change(s) needed*"])
    result.stdout.fnmatch_lines([
        "4 change(s) needed before this file runs on Airflow 3*",
        "dags/old.py:3:1: AST302 import moved in Airflow 3*BashOperator -> airflow.providers.standard.operators.bash*",
        "dags/old.py:5:*: AST303 schedule_interval= was removed in Airflow 3*",
        "dags/old.py:7:*: AST304 context key removed in Airflow 3: execution_date -> logical_date",
    ])


def test_runtime_mismatch_is_a_warning(pytester, write_files):
    # the image of the other major version than the one installed here
    image = "astrocrpublic.azurecr.io/runtime:3.1-1" if AIRFLOW_MAJOR == 2 else "quay.io/astronomer/astro-runtime:12.9.0"
    write_files(pytester.path, {"Dockerfile": f"FROM {image}\n", "dags/modern.py": MODERN_DAG,
                                "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n"})
    result = pytester.runpytest("--astro-dags")
    result.stdout.fnmatch_lines([f"astro: warning: the Dockerfile's image {image} runs Airflow {5 - AIRFLOW_MAJOR}, "
                                 f"but Airflow {AIRFLOW_MAJOR}.* is installed here*"])
