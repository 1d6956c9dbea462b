"""The metadata-database guard: any connection attempt to Airflow's database raises a clear error.

Installed in the parse sandbox (always) and in the pytest process when users' tests use Airflow
under ``--astro-dags`` (opt out per test with ``@pytest.mark.astro_db``). It listens on SQLAlchemy's
``do_connect`` for every engine, so nothing is opened or created (no ``airflow.db`` file).
"""

from __future__ import annotations

import threading

HEADLINE = "parse-time code must not touch the Airflow metadata database"
HINT = ("DAG files are parsed without a database (and Airflow's DAG processor parses them every "
        "few seconds): move the query into a task, or use a variable, a connection or a Jinja "
        "template")


TEST_MESSAGE = ("tests under `pytest --astro-dags` run without an Airflow metadata database: mark "
                "the test with @pytest.mark.astro_db to let it open a throwaway SQLite database "
                "(create the tables yourself, e.g. airflow.utils.db.initdb()), or test the DAG "
                "objects without the database")


class MetadataDatabaseAccess(Exception):
    """Raised instead of connecting to the metadata database."""


_state = threading.local()
_installed = False
_message = f"{HEADLINE}: something tried to open a database connection"


def use_test_message() -> None:
    """In the pytest process the connection comes from a test, not a DAG file's parse."""
    global _message
    _message = TEST_MESSAGE


def allowed() -> bool:
    return getattr(_state, "allowed", False)


def set_allowed(value: bool) -> None:
    """Let the current thread connect (a test marked ``astro_db``) or refuse again."""
    _state.allowed = value


def install() -> None:
    """Refuse every SQLAlchemy connection from now on (idempotent)."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def refuse(dialect, conn_rec, cargs, cparams):
        if not allowed():
            raise MetadataDatabaseAccess(f"{_message} ({dialect.name})")

    event.listen(Engine, "do_connect", refuse)
    _installed = True


def find_in_chain(exc: BaseException | None, kind: type[BaseException] = MetadataDatabaseAccess):
    """The guard's exception (or another ``kind``) anywhere in ``exc``'s cause/context chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
