"""`pytest-astro parse [FILES]`: the same verdicts from the command line (used by the pre-commit hook)."""

from __future__ import annotations

import json
import shutil

from tests.conftest import EXAMPLE, EXAMPLES, run_cli


def test_broken_project_prints_one_line_per_failure(tmp_path):
    """... and leaves nothing in the temporary folder, though files crashed, exited and timed out."""
    project, tmp = tmp_path / "project", tmp_path / "tmp"
    tmp.mkdir()
    shutil.copytree(EXAMPLES / "broken-project", project)
    proc = run_cli("parse", cwd=project, env={"TMPDIR": str(tmp)})
    assert proc.returncode == 1, proc.stderr
    assert list(tmp.iterdir()) == []
    lines = proc.stdout.splitlines()
    assert "dags/syntax_error.py:5: SyntaxError: invalid syntax. Perhaps you forgot a comma?" in lines
    assert "dags/sys_exit.py:7: SystemExit: the file called sys.exit(1) while being imported" in lines
    assert "dags/raises_in_helper.py:5: KeyError: 'warehouse' (at include/config_loader.py:6)" in lines
    assert sum(line.startswith("dags/") for line in lines) == 11  # every failing file, nothing else
    assert not any("good_neighbour" in line for line in lines)
    assert "12 DAG files parsed (0 from cache), 11 failed" in proc.stderr


def test_example_project_passes_and_module_selects_its_dags(tmp_path):
    shutil.copytree(EXAMPLES / EXAMPLE, tmp_path, dirs_exist_ok=True)
    (tmp_path / "dags/standalone.py").write_text(
        "from airflow import DAG\nwith DAG('standalone', schedule=None):\n    pass\n")
    proc = run_cli("parse", "--format", "json", "plugins/my_operators.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # a change to a plugin module re-checks exactly the DAG files that import it
    assert [f["file"] for f in json.loads(proc.stdout)["files"]] == ["dags/classic_etl.py"]
    proc = run_cli("parse", cwd=tmp_path / "include")  # the project is found from a subfolder
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 DAG files parsed" in proc.stderr and "0 failed" in proc.stderr


def test_not_a_project(tmp_path):
    proc = run_cli("parse", cwd=tmp_path)
    assert proc.returncode == 2
    assert "dags does not exist" in proc.stderr and "--project DIR" in proc.stderr


def test_airflow_missing_gives_an_install_hint(tmp_path):
    shutil.copytree(EXAMPLES / EXAMPLE, tmp_path, dirs_exist_ok=True)
    # hide Airflow from the sandbox: a sitecustomize that makes `import airflow` fail
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide/airflow.py").write_text("raise ImportError('No module named airflow (hidden by the test)')\n")
    proc = run_cli("parse", "--no-cache", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "hide")})
    assert proc.returncode == 2
    assert "cannot import Airflow" in proc.stderr and "pip install" in proc.stderr


def test_broken_airflow_settings_is_a_clear_error(tmp_path):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags/a.py").write_text("from airflow import DAG\n")
    (tmp_path / "airflow_settings.yaml").write_text("airflow:\n  variables:\n    - variable_value: x\n")
    proc = run_cli("parse", cwd=tmp_path)
    assert proc.returncode == 2
    assert "airflow_settings.yaml: airflow.variables[0]: each variable needs variable_name" in proc.stderr
    assert "Traceback" not in proc.stderr


CRASHING_ENGINE = """
import sys
from pytest_astro.cli import main
from pytest_astro.parse import engine


def parse(self, files):  # stands in for a bug of ours in the pytest-process side of the engine
    return {}["no such file"]


engine.ParseEngine.parse = parse
sys.exit(main(["parse"]))
"""


def test_an_internal_error_exits_3_and_says_it_is_ours(tmp_path):
    import subprocess
    import sys

    (tmp_path / "dags").mkdir()
    (tmp_path / "dags/etl.py").write_text("from airflow import DAG\n")
    proc = subprocess.run([sys.executable, "-c", CRASHING_ENGINE], cwd=tmp_path, text=True, capture_output=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr
    # our innermost frame names the component
    assert proc.stderr.startswith(
        "pytest-astro: internal error in pytest-astro's pytest_astro/commands/parse.py (_run): KeyError: 'no such "
        "file'; this is a bug in pytest-astro, not in your DAG; please report it with the traceback below\n"
        "Traceback (most recent call last):\n"), proc.stderr
