"""astro-project (`pytest_astro.precommit.project_check.main`) on real project trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_astro.precommit.project_check import main

GOOD_SETTINGS = """
airflow:
  connections:
    - conn_id: warehouse
      conn_type: postgres
      conn_host: db
      conn_port: 5432
      conn_extra:
        sslmode: require
  pools:
    - pool_name: p
      pool_slot: 4
  variables:
    - variable_name: v
      variable_value: x
"""


@pytest.fixture
def project(tmp_path: Path, write_files, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_files(tmp_path, {
        "Dockerfile": "FROM astrocrpublic.azurecr.io/runtime:3.1-1\n",
        ".astro/config.yaml": "project:\n  name: demo\nwebserver:\n  port: 8081\n",
        "airflow_settings.yaml": GOOD_SETTINGS,
        "requirements.txt": "pandas>=2\n",
        "dags/.airflowignore": "scratch/\n",
        "dags/etl.py": "",
    })
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().out.splitlines()


def test_a_valid_project_passes(project: Path, capsys) -> None:
    assert run(capsys) == (0, [])


def test_airflow_settings_types_and_duplicates(project: Path, capsys) -> None:
    (project / "airflow_settings.yaml").write_text("""airflow:
  connections:
    - conn_id: warehouse
      conn_type: postgres
      conn_port: "not a port"
    - conn_id: warehouse
      conn_type: http
      conn_hots: typo
      conn_extra: "{not json"
  pools:
    - pool_name: p
      pool_slot: four
  variables:
    - variable_value: no name
""")
    code, out = run(capsys)
    assert code == 1
    assert out == [
        "airflow_settings.yaml:5: conn_port must be a whole number, got 'not a port'",
        "airflow_settings.yaml:8: unknown key 'conn_hots' in connections; expected one of conn_description, "
        "conn_extra, conn_host, conn_id, conn_login, conn_password, conn_port, conn_schema, conn_type, conn_uri",
        "airflow_settings.yaml:9: conn_extra must be a mapping or a JSON object string",
        "airflow_settings.yaml:6: duplicate conn_id 'warehouse' (first on line 3); the later one silently replaces it",
        "airflow_settings.yaml:12: pool_slot must be a whole number, got 'four'",
        "airflow_settings.yaml:14: variables entry without variable_name",
    ]


def test_yaml_syntax_error_names_the_line(project: Path, capsys) -> None:
    (project / ".astro/config.yaml").write_text("project:\n  name: demo\n webserver: [\n")
    code, out = run(capsys)
    assert code == 1 and len(out) == 1
    assert out[0].startswith(".astro/config.yaml:3: invalid YAML:")


def test_astro_config_port(project: Path, capsys) -> None:
    (project / ".astro/config.yaml").write_text("project:\n  name: demo\napi-server:\n  port: 99999\n")
    assert run(capsys) == (1, [".astro/config.yaml:4: api-server.port must be a port number (1-65535), got 99999"])


@pytest.mark.parametrize(("dockerfile", "expected"), [
    ("FROM quay.io/astronomer/astro-runtime:latest\n", "Dockerfile:1: FROM quay.io/astronomer/astro-runtime:latest: "
     "pin the runtime version (e.g. astrocrpublic.azurecr.io/runtime:3.1-1), not latest"),
    ("# no image\nRUN true\n", "Dockerfile:1: no FROM line; write e.g. 'FROM astrocrpublic.azurecr.io/runtime:3.1-1'"),
    ("FROM astrocrpublic.azurecr.io/runtime:banana\n", "Dockerfile:1: FROM astrocrpublic.azurecr.io/runtime:banana: "
     "'banana' is not a runtime version tag (e.g. 3.1-1 or 12.6.0)"),
])
def test_dockerfile(project: Path, capsys, dockerfile: str, expected: str) -> None:
    (project / "Dockerfile").write_text(dockerfile)
    assert run(capsys) == (1, [expected])


def test_airflowignore_syntax_follows_the_runtime(project: Path, capsys) -> None:
    (project / "dags/.airflowignore").write_text("scratch/\n.*_wip\\.py$\n")
    code, out = run(capsys)
    assert code == 0 and out == ["dags/.airflowignore:2: warning: '.*_wip\\\\.py$' looks like a regexp, but this "
                                 "project's .airflowignore syntax is glob (Airflow 3's default); write a glob such as "
                                 "'scratch/' or set AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=regexp"]
    (project / "Dockerfile").write_text("FROM quay.io/astronomer/astro-runtime:12.6.0\n")
    (project / "dags/.airflowignore").write_text("ok_.*\nbad[\n")
    code, out = run(capsys)
    assert code == 1 and len(out) == 1 and out[0].startswith("dags/.airflowignore:2: invalid regexp 'bad['")


def test_requirements_file(project: Path, capsys) -> None:
    (project / "requirements.txt").write_text("pandas>=2\nnot a requirement!\nPandas\napache-airflow==2.10.0\n")
    code, out = run(capsys)
    assert code == 1
    assert out[0].startswith("requirements.txt:2: invalid requirement 'not a requirement!'")
    assert out[1] == "requirements.txt:3: pandas is listed twice (first on line 1); keep one"
    assert out[2].startswith("requirements.txt:4: warning: 'apache-airflow==2.10.0': the runtime image provides Airflow")
