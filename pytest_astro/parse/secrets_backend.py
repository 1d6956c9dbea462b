"""A secrets backend that serves variables and connections from memory (no database, no network).

Selected with ``AIRFLOW__SECRETS__BACKEND=pytest_astro.parse.secrets_backend.MemorySecretsBackend``
in the parse sandbox and in the pytest process under ``--astro-dags``. ``STORE`` is filled from
the project's sources (pytest_astro.values) and, per test, by the ``astro_variables`` and
``astro_connections`` fixtures.
"""

from __future__ import annotations

from airflow.secrets.base_secrets import BaseSecretsBackend

STORE: dict[str, dict[str, str]] = {"variables": {}, "connections": {}}


def _seed() -> None:
    """In the pytest process the values come from the active in-process sandbox."""
    inprocess = __import__("sys").modules.get("pytest_astro.inprocess")
    if inprocess is not None:
        inprocess.seed_store(STORE)


_seed()


class MemorySecretsBackend(BaseSecretsBackend):
    def get_variable(self, key: str) -> str | None:
        return STORE["variables"].get(key)

    def get_conn_value(self, conn_id: str) -> str | None:
        return STORE["connections"].get(conn_id)

    # Airflow 2 calls this name on some paths
    def get_conn_uri(self, conn_id: str) -> str | None:  # pragma: no cover - Airflow 2 only
        return STORE["connections"].get(conn_id)
