"""Fixtures for users' own DAG tests, backed by the same database-free sandbox as the parse.

Available whenever pytest-astro is installed; they need ``pytest --astro-dags`` (or
``astro_dags = true``) and say so otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_astro.running import astro_run_dag, astro_tasks  # noqa: F401 - fixtures that run tasks (running.py)


def _session(request: pytest.FixtureRequest):
    session = request.config.pluginmanager.get_plugin("astro-session")
    if session is None:
        pytest.fail(f"the {request.fixturename} fixture needs `pytest --astro-dags` (or astro_dags = true "
                    "in the pytest configuration)", pytrace=False)
    return session


@pytest.fixture(scope="session")
def astro_project(request: pytest.FixtureRequest):
    """The Astro project: ``.root``, ``.dags_path``, ``.runtime_image``, ``.all_dag_files``, settings."""
    return _session(request).project


@pytest.fixture(scope="session")
def dagbag(request: pytest.FixtureRequest):
    """A real Airflow ``DagBag`` of the project, built without a metadata database.

    Files that failed their isolated parse are never imported in the test process; they appear in
    ``dagbag.import_errors`` with the same report as their parse item.
    """
    _session(request)
    from pytest_astro.inprocess import build_dagbag

    return build_dagbag()


@pytest.fixture
def astro_dag(request: pytest.FixtureRequest, dagbag):
    """One DAG object: a test that takes this fixture runs once per DAG, with the dag_id as test id
    (``pytest --astro-dags -k my_dag``)."""
    dag_id = getattr(request, "param", None)
    if dag_id is None:
        pytest.fail("astro_dag is parametrized by pytest-astro; do not request it indirectly", pytrace=False)
    if dag_id not in dagbag.dags:
        pytest.fail(f"DAG {dag_id!r} did not load: {dagbag.import_errors}", pytrace=False)
    return dagbag.dags[dag_id]


class _Overrides:
    """Set or delete variables (or connections) for one test; undone after it."""

    def __init__(self, kind: str):
        from pytest_astro.parse.secrets_backend import STORE

        self._store = STORE[kind]
        self._saved = dict(self._store)

    def set(self, name: str, value) -> None:
        import json

        self._store[name] = value if isinstance(value, str) else json.dumps(value)

    def delete(self, name: str) -> None:
        self._store.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._store

    def _undo(self) -> None:
        self._store.clear()
        self._store.update(self._saved)


@pytest.fixture
def astro_variables(request: pytest.FixtureRequest) -> Iterator[_Overrides]:
    """Per-test Airflow variables: ``astro_variables.set("name", "value")`` / ``.delete("name")``.

    Values are served to ``Variable.get`` (airflow.sdk and airflow.models) without a database and
    restored after the test.
    """
    _session(request)
    overrides = _Overrides("variables")
    yield overrides
    overrides._undo()


@pytest.fixture
def astro_connections(request: pytest.FixtureRequest) -> Iterator[_Overrides]:
    """Per-test Airflow connections: ``astro_connections.set("conn_id", "postgres://u:p@host/db")``
    (a URI or Airflow's JSON form) / ``.delete("conn_id")``; restored after the test."""
    _session(request)
    overrides = _Overrides("connections")
    yield overrides
    overrides._undo()
