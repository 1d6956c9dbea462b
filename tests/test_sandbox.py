"""The database-free sandbox: variables and connections from memory, the DB guard, users' fixtures."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import EXAMPLE, EXAMPLES

SERVED = {
    "airflow_settings.yaml": """
        airflow:
          variables:
            - variable_name: from_yaml
              variable_value: yaml
            - variable_name: overridden
              variable_value: yaml
          connections:
            - conn_id: warehouse
              conn_type: postgres
              conn_host: db.internal
              conn_port: 5432
              conn_login: etl
              conn_password: not-printed
              conn_extra: {"sslmode": "require"}
          pools:
            - pool_name: loads
              pool_slot: 2
    """,
    ".env": """
        # what `astro dev start` passes to the containers
        AIRFLOW_VAR_FROM_DOTENV=dotenv
        AIRFLOW_VAR_OVERRIDDEN="dotenv"
        AIRFLOW_CONN_API='http://user:pw@api.internal:8080'
    """,
    "pyproject.toml": """
        [tool.pytest-astro.variables]
        from_pyproject = "pyproject"
        json_value = {a = 1}

        [tool.pytest-astro.connections]
        bucket = {conn_type = "aws", extra = '{"region_name": "eu-west-1"}'}

        [tool.pytest-astro.policies]
        select = []  # this test is about parsing only
    """,
    "dags/reads_values.py": """
        from datetime import datetime
        from airflow import DAG
        from airflow.models import Variable as ModelVariable
        from airflow.hooks.base import BaseHook
        try:  # Airflow 3's task SDK; on Airflow 2 the classic classes are the ones DAGs use
            from airflow.sdk import Connection, Variable
            DEFAULT = "default"
        except ImportError:
            from airflow.models import Connection, Variable
            DEFAULT = "default_var"

        class WarehouseHook(BaseHook):
            def __init__(self):
                super().__init__()
                self.conn = self.get_connection("warehouse")

        values = {
            "yaml": Variable.get("from_yaml"),
            "dotenv": ModelVariable.get("from_dotenv"),
            "pyproject": Variable.get("from_pyproject"),
            "json": Variable.get("json_value", deserialize_json=True),
            "env": Variable.get("overridden"),
            "default": Variable.get("not_defined_anywhere", **{DEFAULT: "fallback"}),
        }
        assert values == {"yaml": "yaml", "dotenv": "dotenv", "pyproject": "pyproject", "json": {"a": 1},
                          "env": "environment", "default": "fallback"}, values
        warehouse = WarehouseHook().conn
        assert (warehouse.host, warehouse.port, warehouse.login, warehouse.extra_dejson) == (
            "db.internal", 5432, "etl", {"sslmode": "require"})
        api = Connection.get("api") if hasattr(Connection, "get") else Connection.get_connection_from_secrets("api")
        assert api.host == "api.internal"
        assert BaseHook.get_connection("bucket").extra_dejson == {"region_name": "eu-west-1"}

        with DAG("reads_values", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"],
                 default_args={"retries": 2}):
            pass
    """,
    "dags/missing_variable.py": """
        from airflow import DAG
        from airflow.models import Variable

        BUCKET = Variable.get("landing_bucket")
    """,
    "dags/missing_connection.py": """
        from airflow import DAG
        from airflow.hooks.base import BaseHook

        conn = BaseHook.get_connection("snowflake_default")
    """,
    "dags/db_dagrun.py": """
        from airflow import DAG
        from airflow.models import DagRun

        last = DagRun.find(dag_id="upstream")
    """,
    "dags/db_session.py": """
        from airflow import DAG
        from airflow.utils.session import provide_session

        @provide_session
        def count_runs(session=None):
            from airflow.models import DagRun
            return session.query(DagRun).count()

        N = count_runs()
    """,
    "dags/db_engine.py": """
        from airflow import DAG
        from sqlalchemy import text
        from airflow import settings

        with settings.engine.connect() as connection:
            connection.execute(text("select 1"))
    """,
}


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def test_lookups_are_served_and_failures_explained(pytester, monkeypatch):
    _write(pytester.path, SERVED)
    monkeypatch.setenv("AIRFLOW_VAR_OVERRIDDEN", "environment")
    result = pytester.runpytest("--astro-dags")
    out = result.stdout.str()
    result.assert_outcomes(passed=1, failed=5)
    result.stdout.fnmatch_lines([
        "dags/missing_variable.py:4: MissingVariable: variable 'landing_bucket' is not defined "
        "(read at dags/missing_variable.py:4)",
        "hint: define it in airflow_settings.yaml (airflow.variables: - variable_name: landing_bucket), or as "
        "AIRFLOW_VAR_LANDING_BUCKET in .env; or give Variable.get a default; or move the read into a task*",
    ])
    result.stdout.fnmatch_lines([
        "dags/missing_connection.py:4: MissingConnection: connection 'snowflake_default' is not defined*",
        "hint: define it in airflow_settings.yaml (airflow.connections: - conn_id: snowflake_default)*",
    ])
    for name, line in (("db_dagrun", 4), ("db_session", 7), ("db_engine", 5)):
        result.stdout.fnmatch_lines([
            f"dags/{name}.py:{line}: MetadataDatabaseAccess: parse-time code must not touch the Airflow "
            f"metadata database (at dags/{name}.py:{line})"])
    assert "OperationalError" not in out and "sqlalche.me" not in out
    assert "not-printed" not in out  # a connection's password never appears
    assert not list(pytester.path.rglob("*.db"))


def test_placeholder_mode_warns_instead_of_failing(pytester):
    _write(pytester.path, {
        "pyproject.toml": '[tool.pytest-astro]\nmissing_variables = "placeholder"\n'
                          '[tool.pytest-astro.policies]\nselect = []\n',
        "dags/legacy.py": textwrap.dedent(SERVED["dags/missing_variable.py"])
        + "assert BUCKET.startswith('pytest-astro-placeholder')\n",
    })
    result = pytester.runpytest("--astro-dags")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*AstroParseWarning: dags/legacy.py:4: variable 'landing_bucket' is not defined; "
                                 "served a placeholder*"])


USERS_TESTS = '''
import pytest
from airflow.models import Variable


def test_each_dag_has_tasks(astro_dag):
    assert astro_dag.tasks


def test_dagbag_reports_failures_without_importing_them(dagbag, astro_project):
    assert astro_project.root.name == "{name}"
    assert sorted(dagbag.dags) == ["classic_etl", "example_taskflow", "orders_consumer", "orders_producer",
                                   "report_amer", "report_apac", "report_emea"]
    # os._exit() would have killed this process: it was never imported here
    assert len(dagbag.import_errors) == 1
    (path, text), = dagbag.import_errors.items()
    assert path.endswith("dags/os_exit.py") and "os._exit(3)" in text


def test_set_variables(astro_variables, astro_connections):
    assert Variable.get("report_recipients") == "data-team@example.com"  # airflow_settings.yaml
    astro_variables.set("threshold", 5)
    astro_variables.delete("report_recipients")
    assert Variable.get("threshold", deserialize_json=True) == 5
    assert Variable.get("report_recipients", default_var="gone") == "gone"
    astro_connections.set("tmp", "http://h.example:81")
    from airflow.hooks.base import BaseHook
    assert BaseHook.get_connection("tmp").port == 81


def test_overrides_were_undone():
    assert Variable.get("report_recipients") == "data-team@example.com"
    assert Variable.get("threshold", default_var=None) is None


def test_guard_in_users_tests():
    from airflow.models import DagRun
    DagRun.find(dag_id="x")


@pytest.mark.astro_db
def test_marked_test_may_connect():
    from sqlalchemy import text
    from airflow import settings
    with settings.engine.connect() as connection:
        assert connection.execute(text("select 1")).scalar() == 1
'''

ASTRO_INIT_STYLE = '''
"""Written the way the test that `astro dev init` creates is: a DagBag() built at import time."""
import os
import pytest
from airflow.models import DagBag


def get_import_errors():
    bag = DagBag(include_examples=False)
    rel = lambda p: os.path.relpath(p, os.environ.get("AIRFLOW_HOME"))
    return [(None, None)] + [(rel(k), v.strip()) for k, v in bag.import_errors.items()]


def get_dags():
    bag = DagBag(include_examples=False)
    return [(k, v, os.path.relpath(v.fileloc, os.environ.get("AIRFLOW_HOME"))) for k, v in bag.dags.items()]


@pytest.mark.parametrize("rel_path,rv", get_import_errors(), ids=[x[0] for x in get_import_errors()])
def test_file_imports(rel_path, rv):
    if rel_path and rv:
        raise Exception(f"{rel_path} failed to import with message \\n {rv}")


@pytest.mark.parametrize("dag_id,dag,fileloc", get_dags(), ids=[x[2] for x in get_dags()])
def test_dag_tags(dag_id, dag, fileloc):
    assert dag.tags, f"{dag_id} in {fileloc} has no tags"


@pytest.mark.parametrize("dag_id,dag,fileloc", get_dags(), ids=[x[2] for x in get_dags()])
def test_dag_retries(dag_id, dag, fileloc):
    assert dag.default_args.get("retries", None) >= 2, f"{dag_id} in {fileloc} must have task retries >= 2."
'''


def test_users_tests_and_fixtures(copy_example, pytester):
    root = copy_example(EXAMPLE)
    with (root / "pyproject.toml").open("a") as fh:
        fh.write("\n[tool.pytest-astro.policies]\nselect = []\n")
    (root / "dags/os_exit.py").write_text((EXAMPLES / "broken-project/dags/os_exit.py").read_text())
    (root / ".astro/dag_integrity_exceptions.txt").write_text("dags/os_exit.py\n")
    (root / "tests/test_mine.py").write_text(USERS_TESTS.replace("{name}", root.name))
    (root / "tests/dags").mkdir()
    (root / "tests/dags/test_dag_example.py").write_text(ASTRO_INIT_STYLE)
    # a subprocess: these tests import Airflow into the pytest process, which pytester's in-process
    # runs would share (and unload) between tests
    result = pytester.runpytest_subprocess("--astro-dags", "-rs", "-v")
    out = result.stdout.str()
    # the Astro-style test: one failure per broken file, nothing imported in-process that would crash
    # named as in the Astro runtime: relative to AIRFLOW_HOME, the project root
    result.stdout.fnmatch_lines(["*test_file_imports[[]dags/os_exit.py[]] FAILED*"])
    assert "tests/test_mine.py::test_each_dag_has_tasks[report_emea] PASSED" in out
    assert "tests/test_mine.py::test_guard_in_users_tests FAILED" in out
    assert "tests/test_mine.py::test_marked_test_may_connect PASSED" in out
    result.stdout.fnmatch_lines(["*MetadataDatabaseAccess: tests under `pytest --astro-dags` run without an "
                                 "Airflow metadata database: mark the test with @pytest.mark.astro_db*"])
    result.stdout.fnmatch_lines(["SKIPPED * dags/os_exit.py is listed in .astro/dag_integrity_exceptions.txt*"])
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2, out  # the guard test and the Astro-style import test for os_exit.py
    # 7 DAGs x (astro_dag + tags + retries) + 4 parse items + 4 passing tests of mine + 2 own + import (None)
    assert outcomes["passed"] == 7 * 3 + 4 + 4 + 2 + 1, out
    assert outcomes["skipped"] == 1
    # -k with a dag_id selects that DAG's tests
    result = pytester.runpytest_subprocess("--astro-dags", "-k", "test_each_dag_has_tasks and report_apac")
    result.assert_outcomes(passed=1)


def test_fixtures_need_the_switch(pytester):
    pytester.makepyfile(test_x="def test_x(dagbag):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)  # a fixture that fails is an error of the test's setup
    result.stdout.fnmatch_lines(["*the dagbag fixture needs `pytest --astro-dags`*"])


@pytest.mark.parametrize(("text", "message"), [
    ("airflow:\n  variables:\n    - variable_value: x\n", "airflow.variables[0]: each variable needs variable_name"),
    ("airflow:\n  connections:\n    - conn_id: c\n      conn_host: h\n", "a connection needs conn_type"),
    ("airflow: [unclosed\n", "airflow_settings.yaml:2: not valid YAML"),
])
def test_bad_airflow_settings_is_a_usage_error(pytester, text, message):
    pytester.path.joinpath("dags").mkdir()
    pytester.path.joinpath("airflow_settings.yaml").write_text(text)
    result = pytester.runpytest("--astro-dags")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
