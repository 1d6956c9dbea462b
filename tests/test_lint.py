"""`pytest-astro lint`: the real command on real project trees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_astro.lint.config import airflow_major_from_image

REPO = Path(__file__).resolve().parents[1]

RUNTIME3 = "FROM astrocrpublic.azurecr.io/runtime:3.1-1\n"
RUNTIME2 = "FROM quay.io/astronomer/astro-runtime:12.6.0\n"

GOOD = '''
import pendulum
from airflow.sdk import DAG, task
from include import helpers

with DAG("good", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), schedule="@daily", catchup=False):
    @task
    def work():
        import pandas as pd
        return len(pd.DataFrame())

    work()
'''

BAD = '''
from datetime import datetime
from airflow.models import Variable
from airflow.operators.bash import BashOperator
from airflow import DAG

BUCKET = Variable.get("bucket")

with DAG("bad", schedule_interval="@daily", start_date=datetime(2024, 1, 1)):
    BashOperator(task_id="a", bash_command="echo {{ execution_date }}")
'''


@pytest.fixture
def project(tmp_path: Path, write_files) -> Path:
    write_files(tmp_path, {"Dockerfile": RUNTIME3, "dags/good.py": GOOD, "dags/bad.py": BAD,
                           "include/__init__.py": "", "include/helpers.py": "import numpy as np\n",
                           # imported by no DAG file: Airflow never runs it at parse time
                           "include/streamlit_app.py": "import pandas\nimport requests\nrequests.get('https://x')\n"})
    return tmp_path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real command, as `python -m pytest_astro`."""
    return subprocess.run([sys.executable, "-m", "pytest_astro", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300)


def lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line]


def test_reports_findings_as_path_line_col_code(project: Path) -> None:
    proc = run_cli("lint", cwd=project)
    assert proc.returncode == 1, proc.stderr
    out = lines(proc)
    assert "dags/bad.py:6:10: AST001 " in "\n".join(out)
    assert any(line.startswith("dags/bad.py:8:6: AST202 ") for line in out)
    assert any(line.startswith("dags/bad.py:8:17: AST303 schedule_interval=") and line.endswith("[*]") for line in out)
    assert any(line.startswith("include/helpers.py:1:8: AST101 'numpy'") for line in out)
    assert not any(line.startswith(("dags/good.py", "include/streamlit_app.py")) for line in out)
    assert "Found " in proc.stderr and "fixable with --fix" in proc.stderr


def test_clean_files_exit_zero(project: Path) -> None:
    proc = run_cli("lint", "dags/good.py", cwd=project)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr


def test_fix_rewrites_exact_fixes_and_reports_the_rest(project: Path) -> None:
    proc = run_cli("lint", "--fix", "dags/bad.py", cwd=project)
    assert proc.returncode == 1
    fixed = (project / "dags/bad.py").read_text()
    assert "from airflow.sdk import Variable" in fixed
    assert "from airflow.providers.standard.operators.bash import BashOperator" in fixed
    assert 'schedule="@daily"' in fixed and "schedule_interval" not in fixed
    # A template rewrite may change behaviour (logical_date is None for manual runs): unsafe, left alone.
    assert "{{ execution_date }}" in fixed
    assert "1 more fix(es) available with --fix --unsafe-fixes" in proc.stderr
    codes = {line.split()[1] for line in lines(proc)}
    assert codes == {"AST001", "AST202", "AST304"}  # not fixable by --fix: left for the author
    unsafe = run_cli("lint", "--fix", "--unsafe-fixes", "dags/bad.py", cwd=project)
    fixed = (project / "dags/bad.py").read_text()
    assert "{{ logical_date }}" in fixed
    assert {line.split()[1] for line in lines(unsafe)} == {"AST001", "AST202"}
    again = run_cli("lint", "--fix", "--unsafe-fixes", "dags/bad.py", cwd=project)
    assert (project / "dags/bad.py").read_text() == fixed
    assert "Fixed" not in again.stderr


def test_fix_only_changes_nothing_when_everything_is_fixed(project: Path, write_files) -> None:
    write_files(project, {"dags/only_fixable.py": "from airflow.operators.bash import BashOperator\n"})
    proc = run_cli("lint", "--fix", "dags/only_fixable.py", cwd=project)
    # The file changed: fail like pre-commit hooks do, so the author reviews and re-stages it.
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Fixed 1 problem(s) in 1 file(s)" in proc.stderr
    assert run_cli("lint", "dags/only_fixable.py", cwd=project).returncode == 0


def test_noqa_suppresses_the_named_code_only(project: Path, write_files) -> None:
    write_files(project, {"dags/noqa.py": (
        "from airflow.sdk import Variable, dag\n"
        "A = Variable.get('a')  # noqa: AST001\n"
        "B = Variable.get('b')  # noqa: AST101\n"
        "C = Variable.get('c')  # noqa\n"
        "import pandas  # NOQA:AST002,AST101\n")})
    proc = run_cli("lint", "dags/noqa.py", cwd=project)
    assert lines(proc) == [lines(proc)[0]]
    assert lines(proc)[0].startswith("dags/noqa.py:3:5: AST001")


def test_select_and_ignore_on_the_command_line(project: Path) -> None:
    only = run_cli("lint", "--select", "AST1", cwd=project)
    assert {line.split()[1] for line in lines(only)} == {"AST101"}
    rest = run_cli("lint", "--ignore", "AST1,AST3", "--ignore", "AST202", cwd=project)
    assert {line.split()[1] for line in lines(rest)} == {"AST001"}


def test_pyproject_config(project: Path, write_files) -> None:
    write_files(project, {"pyproject.toml": '''
        [tool.pytest-astro.lint]
        ignore = ["AST3"]
        extend-heavy-imports = ["great_expectations"]
        per-file-ignores = { "include/*.py" = ["AST101"] }
        exclude = ["dags/vendored/*"]
        ''', "dags/ge.py": "import great_expectations\nfrom airflow.sdk import dag\n", "dags/vendored/x.py": "import pandas\n"})
    proc = run_cli("lint", cwd=project)
    codes = {(line.split(":")[0], line.split()[1]) for line in lines(proc)}
    assert codes == {("dags/bad.py", "AST001"), ("dags/bad.py", "AST202"), ("dags/ge.py", "AST101")}


def test_bad_config_is_a_clear_error(project: Path, write_files) -> None:
    write_files(project, {"pyproject.toml": '[tool.pytest-astro.lint]\nselect = ["not a code"]\n'})
    proc = run_cli("lint", cwd=project)
    assert proc.returncode == 2
    assert "pyproject.toml [tool.pytest-astro.lint]: select: 'NOT A CODE' is not a rule code" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("dockerfile", "expect_migration"), [(RUNTIME3, True), (RUNTIME2, False), ("", False)])
def test_airflow3_rules_follow_the_runtime_image(project: Path, dockerfile: str, expect_migration: bool) -> None:
    (project / "Dockerfile").write_text(dockerfile)
    codes = {line.split()[1] for line in lines(run_cli("lint", "dags/bad.py", cwd=project))}
    assert ("AST302" in codes) is expect_migration
    assert ("AST303" in codes) is expect_migration
    # The target version wins over a selection, and every prefix behaves alike (AST, AST3, AST302).
    for select in ("AST", "AST3", "AST30", "AST302"):
        forced = {line.split()[1] for line in lines(run_cli("lint", "--select", select, "dags/bad.py", cwd=project))}
        assert ("AST302" in forced) is expect_migration, select
    # --target-airflow 3 asks for the migration rules on any project.
    asked = {line.split()[1] for line in lines(run_cli("lint", "--select", "AST30", "--target-airflow", "3",
                                                       "dags/bad.py", cwd=project))}
    assert asked == {"AST302", "AST303", "AST304"}


@pytest.mark.parametrize(("image", "major"), [
    ("astrocrpublic.azurecr.io/runtime:3.1-1", 3), ("astrocrpublic.azurecr.io/runtime:3.0-7-python-3.12-base", 3),
    ("quay.io/astronomer/astro-runtime:12.6.0", 2), ("quay.io/astronomer/astro-runtime:9.1.0-base", 2),
    ("apache/airflow:3.0.2", 3), ("apache/airflow:2.10.5-python3.11", 2), ("python:3.12", None),
    ("quay.io/astronomer/astro-runtime", None), (None, None)])
def test_airflow_major_from_image(image: str | None, major: int | None) -> None:
    assert airflow_major_from_image(image) == major


def test_output_formats(project: Path) -> None:
    as_json = json.loads(run_cli("lint", "--format", "json", "dags/bad.py", cwd=project).stdout)
    assert any((f["path"], f["line"], f["col"], f["code"]) == ("dags/bad.py", 6, 10, "AST001") for f in as_json)
    sarif = json.loads(run_cli("lint", "--format", "sarif", "dags/bad.py", cwd=project).stdout)
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0"
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "dags/bad.py"
    github = lines(run_cli("lint", "--format", "github", "dags/bad.py", cwd=project))
    assert github and all(line.startswith("::error file=dags/bad.py,line=") for line in github)
    assert any(",title=AST001::AST001 Variable.get()" in line for line in github)


def test_syntax_error_and_bad_encoding_are_findings_not_tracebacks(project: Path, write_files) -> None:
    write_files(project, {"dags/broken.py": "import os\n\ndef f(:\n    pass\n"})
    (project / "dags/latin1.py").write_bytes(b"# ok\nname = '\xe9t\xe9'\n")
    proc = run_cli("lint", "dags/broken.py", "dags/latin1.py", "dags/good.py", cwd=project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert lines(proc) == [
        "dags/broken.py:3:7: AST000 syntax error: invalid syntax; fix it (no other rule ran on this file)",
        "dags/latin1.py:2:1: AST000 the file cannot be decoded (Python reads it as UTF-8 unless a coding cookie "
        "says otherwise, and so does Airflow); save it as UTF-8",
    ]
    # with a PEP 263 coding cookie Python (and Airflow) read it: so does the lint, and --fix keeps its encoding
    (project / "dags/latin1.py").write_bytes(b"# -*- coding: latin-1 -*-\nfrom airflow.operators.dummy import "
                                             b"DummyOperator\nname = '\xe9t\xe9'\n")
    proc = run_cli("lint", "--select", "AST000", "dags/latin1.py", cwd=project)
    assert proc.returncode == 0, proc.stdout


def test_missing_file_is_a_usage_error(project: Path) -> None:
    proc = run_cli("lint", "dags/nope.py", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "pytest-astro: dags/nope.py: no such file or directory; pass existing files or folders"


def test_test_file_in_dags_folder_unless_airflowignored(project: Path, write_files) -> None:
    write_files(project, {"dags/test_etl.py": "def test_x():\n    pass\n",
                          "dags/tests/test_other.py": "", "dags/.airflowignore": "tests/\n"})
    out = lines(run_cli("lint", "--select", "AST204", cwd=project))
    assert out == ["dags/test_etl.py:1:1: AST204 test file inside the dags folder: Airflow parses it and DAG "
                   "deploys ship it; move it to tests/ or add it to .airflowignore"]


def test_cache_is_keyed_by_content(project: Path) -> None:
    first = run_cli("lint", "dags/bad.py", cwd=project)
    cache_file = project / ".pytest_cache/pytest-astro/lint.json"
    data = json.loads(cache_file.read_text())
    # Tamper with the cached verdict: an unchanged file must be answered from the cache.
    for findings in data["entries"].values():
        for f in findings:
            f["message"] = "FROM CACHE"
    cache_file.write_text(json.dumps(data))
    cached = run_cli("lint", "dags/bad.py", cwd=project)
    assert lines(cached) and all(line.endswith("FROM CACHE") or line.endswith("FROM CACHE [*]") for line in lines(cached))
    # Any edit re-lints the file; --no-cache ignores the cache.
    assert "FROM CACHE" not in run_cli("lint", "--no-cache", "dags/bad.py", cwd=project).stdout
    (project / "dags/bad.py").write_text((project / "dags/bad.py").read_text() + "\n# edited\n")
    assert lines(run_cli("lint", "dags/bad.py", cwd=project)) == lines(first)


def test_parallel_pool_gives_the_same_answers(project: Path) -> None:
    for i in range(60):
        (project / "dags" / f"gen_{i:02}.py").write_text(BAD if i % 3 == 0 else GOOD)
    serial = run_cli("lint", "--no-cache", "--workers", "1", cwd=project)
    parallel = run_cli("lint", "--no-cache", "--workers", "2", cwd=project)
    assert serial.returncode == parallel.returncode == 1
    assert parallel.stdout == serial.stdout
    assert len(lines(parallel)) > 60


def test_lint_never_imports_airflow(project: Path) -> None:
    code = ("import sys\nfrom pathlib import Path\nfrom pytest_astro.lint.engine import lint_paths\n"
            "r = lint_paths([Path('dags')], use_cache=False)\nassert r.findings\n"
            "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_list_rules_and_docs_are_in_sync() -> None:
    from pytest_astro.lint.docs import render_docs

    proc = run_cli("lint", "--list-rules", cwd=REPO)
    assert proc.returncode == 0 and "AST001  variable-at-parse-time" in proc.stdout
    assert (REPO / "docs" / "lint-rules.md").read_text() == render_docs(), \
        "docs/lint-rules.md is stale: run `python -m pytest_astro.lint.docs > docs/lint-rules.md`"
