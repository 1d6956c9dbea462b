"""astro-requirements (`pytest_astro.precommit.requirements.main`) on real project trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_astro.precommit.requirements import _provider_dist, import_names, main, parse_requirements

DOCKER3 = "FROM astrocrpublic.azurecr.io/runtime:3.1-1\n"


@pytest.fixture
def project(tmp_path: Path, write_files, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_files(tmp_path, {
        "Dockerfile": DOCKER3,
        "requirements.txt": "# deps\npandas==2.2.*\nscikit-learn>=1.4\napache-airflow-providers-amazon\n"
                            "google-cloud-storage\nunused-thing==1.0  # not imported\n",
        "dags/etl.py": """
            import json
            import pendulum
            import yaml
            from airflow.sdk import DAG
            from airflow.providers.standard.operators.bash import BashOperator
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook
            from google.cloud import storage
            from include.helpers import clean
            from common_utils import shared

            def task():
                import pandas as pd
                from sklearn.linear_model import LinearRegression
                import polars
            """,
        "dags/common_utils.py": "shared = 1\n",
        "include/__init__.py": "",
        "include/helpers.py": "import requests\nimport boto3\n\ndef clean():\n    pass\n",
    })
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_reports_unprovided_imports_with_file_and_line(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 1
    out = capsys.readouterr().out.splitlines()
    errors = [line for line in out if ": warning: " not in line]
    assert errors == [
        "dags/etl.py:7: 'airflow.providers.snowflake.hooks.snowflake' is imported but nothing provides it "
        "(requirements, Airflow, the runtime image); add apache-airflow-providers-snowflake to requirements.txt "
        "(the Astro Runtime image does not include it)",
        "dags/etl.py:15: 'polars' is imported but nothing provides it (requirements, Airflow, the runtime image); "
        "add the package that provides it to requirements.txt",
        "include/helpers.py:2: 'boto3' is imported but nothing provides it (requirements, Airflow, the runtime "
        "image); add the package that provides it to requirements.txt",
    ]
    warnings = [line for line in out if ": warning: " in line]
    assert len(warnings) == 1 and warnings[0].startswith("requirements.txt:6: warning: 'unused-thing==1.0' is not imported")


def test_only_changed_files_unless_requirements_changed(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["include/helpers.py"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["include/helpers.py"]
    (project / "requirements.txt").write_text("boto3\npolars\napache-airflow-providers-snowflake\npandas\n"
                                              "scikit-learn\napache-airflow-providers-amazon\ngoogle-cloud-storage\n")
    assert main(["requirements.txt"]) == 0
    assert capsys.readouterr().out == ""


def test_config_provided_and_ignore_unused(project: Path, write_files, capsys: pytest.CaptureFixture) -> None:
    write_files(project, {"pyproject.toml": '[tool.pytest-astro.requirements]\nprovided = ["polars", "boto3", '
                                            '"airflow.providers.snowflake"]\nignore-unused = ["Unused_Thing"]\n'})
    assert main([]) == 0
    assert capsys.readouterr().out == ""


def test_requirements_syntax_errors_are_reported(project: Path, capsys: pytest.CaptureFixture) -> None:
    (project / "requirements.txt").write_text("pandas===\n-r other.txt\nboto3 \\\n  >=1.0\nhttps://x/y.whl\n")
    reqs, errors = parse_requirements(project / "requirements.txt")
    assert [r.name for r in reqs] == ["boto3"] and reqs[0].line == 3
    assert [line for line, _ in errors] == [1, 5]
    assert main([]) == 1
    out = capsys.readouterr().out
    assert "requirements.txt:1: invalid requirement 'pandas==='" in out


@pytest.mark.parametrize(("dist", "names"), [
    ("scikit-learn", ["sklearn"]), ("apache-airflow-providers-microsoft-azure", ["airflow.providers.microsoft.azure"]),
    ("google-cloud-bigquery", ["google.cloud.bigquery", "google_cloud_bigquery"]), ("my-lib", ["my_lib"])])
def test_import_names(dist: str, names: list[str]) -> None:
    assert [n for n in import_names(dist) if n in names] == names


@pytest.mark.parametrize(("module", "dist"), [
    ("airflow.providers.common.sql.hooks.sql", "apache-airflow-providers-common-sql"),
    ("airflow.providers.amazon.aws.hooks.s3", "apache-airflow-providers-amazon"),
    ("airflow.providers.cncf.kubernetes.operators.pod", "apache-airflow-providers-cncf-kubernetes")])
def test_provider_dist(module: str, dist: str) -> None:
    assert _provider_dist(module) == dist
