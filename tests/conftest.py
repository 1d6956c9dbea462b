"""Shared fixtures: real project trees for real pytest sessions (pytester) and real CLI runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_astro.project import airflow_major

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
AIRFLOW_MAJOR = airflow_major()
#: the good example project for the installed Airflow (Runtime 3 idioms, or Runtime 12's)
EXAMPLE = "astro-project" if AIRFLOW_MAJOR >= 3 else "astro-project-runtime12"


@pytest.fixture
def copy_example(pytester: pytest.Pytester):
    """Copy ``examples/<name>`` into the pytester folder and return that folder."""

    def copy(name: str) -> Path:
        # the example's tests that run tasks and DAGs (dag.test()) have their own test, in a
        # subprocess: tests/test_task_fixtures.py
        shutil.copytree(EXAMPLES / name, pytester.path, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__", "test_tasks.py"))
        return pytester.path

    return copy


@pytest.fixture
def write_files():
    """Write ``{relative path: source}`` under a root, dedenting the sources."""

    def write(root: Path, files: dict[str, str]) -> Path:
        for rel, source in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source).lstrip("\n"))
        return root

    return write


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `pytest-astro` command (as `python -m pytest_astro`)."""
    return subprocess.run([sys.executable, "-m", "pytest_astro", *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=300)


DAG = '''
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="t")
'''
