"""Coverage of parse-time DAG code: lines run in the isolated sandbox children are counted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FILES = {
    "dags/etl.py": (
        "from datetime import datetime\n"
        "from airflow import DAG\n"
        "from include.naming import dag_name\n"
        "NAME = dag_name('etl')\n"
        "with DAG(NAME, start_date=datetime(2024, 1, 1), schedule=None):\n"
        "    pass\n"
    ),
    "include/__init__.py": "",
    "include/naming.py": (
        "def dag_name(base):\n"
        "    return 'team_' + base  # runs only when a DAG file is parsed\n"
        "\n"
        "def never_called():\n"
        "    return 1\n"
    ),
    "tests/test_unit.py": "def test_nothing_imported_from_dags():\n    assert True\n",
    "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n",
}


def _lines(report: dict, name: str) -> tuple[list[int], list[int]]:
    entry = next(v for k, v in report["files"].items() if k.endswith(name))
    return entry["executed_lines"], entry["missing_lines"]


@pytest.mark.parametrize("runner", ["coverage-run", "pytest-cov"])
def test_parse_time_lines_are_counted(pytester, write_files, runner):
    write_files(pytester.path, FILES)
    if runner == "coverage-run":
        cmd = [sys.executable, "-m", "coverage", "run", "--source=dags,include", "-m", "pytest", "--astro-dags",
               "-p", "no:cacheprovider"]
    else:
        cmd = [sys.executable, "-m", "pytest", "--astro-dags", "--cov=dags", "--cov=include", "--cov-report="]
    run = subprocess.run(cmd, cwd=pytester.path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    subprocess.run([sys.executable, "-m", "coverage", "json", "-o", "cov.json"], cwd=pytester.path, check=True,
                   capture_output=True)
    report = json.loads((pytester.path / "cov.json").read_text())
    executed, missing = _lines(report, "include/naming.py")
    assert 2 in executed  # only ever run inside a sandbox child
    assert 5 in missing
    executed, _ = _lines(report, "dags/etl.py")
    assert executed == [1, 2, 3, 4, 5, 6]
