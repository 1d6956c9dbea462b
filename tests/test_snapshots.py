"""DAG010 snapshot: --astro-snapshot-update records each DAG's structure; a normal run fails a DAG that
differs from its snapshot, with a readable list of the changes. Off unless the folder exists."""

from __future__ import annotations

import json

import pytest

DAGS = '''
from datetime import datetime
try:
    from airflow.sdk import DAG
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

for name in ("etl", "report"):
    with DAG(name, start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False, params={"limit": 10},
             tags=["t"], default_args={"retries": 2}):
        extract = BashOperator(task_id="extract", bash_command="echo {{ ds }} {{ params.limit }}")
        load = BashOperator(task_id="load", bash_command="echo load")
        extract >> load
'''


@pytest.fixture
def project(pytester: pytest.Pytester, write_files):
    write_files(pytester.path, {"dags/pipelines.py": DAGS,
                                "pyproject.toml": '[tool.pytest-astro.policies]\nselect = ["DAG010"]\n'})
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--astro-dags", *args)


def test_off_without_the_folder_then_recorded_and_compared(project: pytest.Pytester):
    run(project).assert_outcomes(passed=1)  # cached without snapshots
    folder = project.path / "tests" / "dag_snapshots"
    assert not folder.exists()

    run(project, "--astro-snapshot-update").assert_outcomes(passed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["etl.json", "report.json"]
    text = (folder / "etl.json").read_text()
    assert str(project.path) not in text and "fileloc" not in text  # nothing that says where it was parsed
    snapshot = json.loads(text)
    assert sorted(snapshot["tasks"]) == ["extract", "load"]
    assert snapshot["tasks"]["extract"]["downstream_task_ids"] == ["load"]
    run(project).assert_outcomes(passed=1)  # unchanged: passes, from the cache or not

    source = (project.path / "dags/pipelines.py")
    source.write_text(source.read_text()
                      .replace('params={"limit": 10}', 'params={"limit": 20}')
                      .replace('schedule="@daily"', 'schedule="0 4 * * *"')
                      .replace("extract >> load",
                               'check = BashOperator(task_id="check", bash_command="true")\n'
                               "        extract >> load >> check"))
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "dags/pipelines.py:10: DAG010 etl: differs from tests/dag_snapshots/etl.json:",
        "  task added: 'check'",
        "  dependency added: load >> check",
        "  params: limit: 10 -> 20",
        "  schedule: *0 4 * * **",
    ])
    result.stdout.fnmatch_lines(["*hint: if the change is meant, record it: pytest --astro-dags "
                                 "--astro-snapshot-update, and commit the snapshot file with the change*"])
    result.stdout.fnmatch_lines(["dags/pipelines.py:10: DAG010 report: differs from tests/dag_snapshots/report.json:"])

    run(project, "--astro-snapshot-update").assert_outcomes(passed=1)
    run(project).assert_outcomes(passed=1)


def test_a_dag_without_a_snapshot_fails(project: pytest.Pytester):
    (project.path / "tests" / "dag_snapshots").mkdir(parents=True)
    result = run(project, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DAG010 etl: no snapshot recorded yet (tests/dag_snapshots/etl.json)*"])


def test_folder_is_a_setting(project: pytest.Pytester):
    (project.path / "pyproject.toml").write_text('[tool.pytest-astro]\nsnapshots_folder = "snap"\n'
                                                 '[tool.pytest-astro.policies]\nselect = ["DAG010"]\n')
    run(project, "--astro-snapshot-update", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert sorted(p.name for p in (project.path / "snap").iterdir()) == ["etl.json", "report.json"]
