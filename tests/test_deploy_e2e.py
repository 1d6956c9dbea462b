"""The gate with the real suite: `python -m pytest --astro-dags` (pytest-astro's plugin and parse
engine, real Airflow) on a tiny real project, in a real git repository."""

from __future__ import annotations

import pytest

try:
    from tests.fake_astro.support import DAG, Scenario, git
except ImportError:  # pragma: no cover
    from fake_astro.support import DAG, Scenario, git

pytestmark = pytest.mark.slow

LEAK_CHECK = """\
import os


def test_the_suite_runs_without_deploy_credentials():
    leaked = [k for k in os.environ if k in ("ASTRO_API_TOKEN", "AWS_SECRET_ACCESS_KEY") or k.startswith("AWS_")]
    assert leaked == []
"""


def real(tmp_path) -> Scenario:
    s = Scenario(tmp_path, real_suite=True)
    s.change({"tests/test_nothing.py": None, "tests/test_env.py": LEAK_CHECK}, "a real test")
    return s


def test_real_suite_passes_then_the_gate_deploys(tmp_path):
    s = real(tmp_path)
    s.change({"dags/etl.py": DAG.format(name="etl") + "# passes the default DAG policies too\n"})
    proc = s.gate(env=s.env(AWS_SECRET_ACCESS_KEY="a-secret-that-must-not-leak"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(d[1], d[-1]) for d in s.deploys()] == [("--dags", "clmain000")]
    rec = s.read_record()
    assert rec["suite"]["dag_files_parsed"] == 2 and rec["suite"]["dag_files_failed"] == 0
    assert rec["suite"]["tests"]["passed"] >= 3  # 2 parse items and the project's own test, at least


def test_real_suite_with_a_broken_dag_deploys_nothing(tmp_path):
    s = real(tmp_path)
    s.change({"dags/report.py": "from airflow import DAG\nimport not_installed_module\n"})
    proc = s.gate()
    assert proc.returncode == 1
    assert "DAG files failed to parse: dags/report.py" in proc.stdout, proc.stdout
    assert s.deploys() == []


def test_real_suite_that_collects_nothing_deploys_nothing(tmp_path):
    s = Scenario(tmp_path, real_suite=True)
    git(s.repo, "rm", "-q", "-r", "dags", "tests")
    git(s.repo, "commit", "-q", "-m", "empty project")
    proc = s.gate()
    assert proc.returncode == 1
    assert "no tests were collected" in proc.stdout or "ran no passing test" in proc.stdout, proc.stdout
    assert s.deploys() == []
