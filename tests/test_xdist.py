"""`pytest --astro-dags -n 2` (pytest-xdist): the same verdicts, and the batch is parsed once."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DAG

pytest.importorskip("xdist")

# Each import of this file appends a line to parses.log: it counts how often the batch was parsed.
COUNTED = '''
from datetime import datetime
from pathlib import Path
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with open(Path(__file__).parents[1] / "parses.log", "a") as log:
    log.write("parsed\\n")

with DAG("counted", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="t")
'''


def _verdicts(path) -> dict:
    report = json.loads(path.read_text())
    return {"files": {f["file"]: (f["ok"], sorted(d["dag_id"] for d in f["dags"])) for f in report["files"]},
            "tests": report["tests"]}


def test_two_workers_same_results_one_parse(pytester, write_files):
    write_files(pytester.path, {
        "dags/a.py": DAG.format(dag_id="a"),
        "dags/b.py": DAG.format(dag_id="b"),
        "dags/counted.py": COUNTED,
        "dags/broken.py": "from airflow import DAG\nraise RuntimeError('broken on purpose')\n",
        "pyproject.toml": "[tool.pytest-astro.policies]\nselect = ['DAG001']\n",
    })
    serial = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "-p", "no:xdist",
                                           "--astro-report", "serial.json")
    (pytester.path / "parses.log").unlink()
    parallel = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "-n", "2",
                                             "--astro-report", "parallel.json")
    assert serial.ret == parallel.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = serial.parseoutcomes()
    assert outcomes == {"failed": 1, "passed": 3}  # one item per DAG file
    assert parallel.parseoutcomes() == outcomes
    # the controller's report and summary hold the workers' batch
    assert _verdicts(pytester.path / "parallel.json") == _verdicts(pytester.path / "serial.json")
    parallel.stdout.fnmatch_lines(["*4 DAG files (0 unchanged, from cache), 1 failed to parse*"])
    # two workers, one parse of the batch (each worker parsing it would log two lines)
    assert (pytester.path / "parses.log").read_text() == "parsed\n"
    assert not list((pytester.path / ".pytest_cache" / "pytest-astro" / "xdist").glob("*.json"))
