"""Airflow's environment in the parse sandbox and in the pytest process, as the Astro runtime has
it.

``airflow_env`` is what both share (AIRFLOW_HOME at the project root, what Airflow writes in a
throwaway folder, the in-memory secrets backend); ``sandbox_env`` adds what only the sandbox
process gets (a metadata-database URL that cannot be opened, our bytecode cache). The cache keys
on the rest of the AIRFLOW_* environment (``SANDBOX_OVERRIDES`` are ours, not the user's).
"""

from __future__ import annotations

import os

from pytest_astro.project import Project


#: variables the sandbox always sets itself, whatever the user's environment says
SANDBOX_OVERRIDES = frozenset({
    "AIRFLOW_HOME", "AIRFLOW_CONFIG", "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "AIRFLOW__SCHEDULER__CHILD_PROCESS_LOG_DIRECTORY",
    "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX",
    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "AIRFLOW__CORE__UNIT_TEST_MODE",
    "AIRFLOW__SECRETS__BACKEND",
    "AIRFLOW__SECRETS__BACKEND_KWARGS",
})


def airflow_env(project: Project, scratch: str) -> dict[str, str]:
    """Airflow's environment as the Astro runtime has it, and nothing written into the project.

    AIRFLOW_HOME is the project root (the runtime's /usr/local/airflow, with dags/ in it), so that
    DAG code and users' tests that build paths from it (``os.environ["AIRFLOW_HOME"] +
    "/include/..."``, the Astro CLI's test template's ``os.path.relpath(path, AIRFLOW_HOME)``) see
    what they would see there. What Airflow writes under AIRFLOW_HOME by default (its config file,
    logs, the child process logs of the scheduler or DAG processor) goes to ``scratch`` instead."""
    return {
        "AIRFLOW_HOME": str(project.root),
        "AIRFLOW_CONFIG": os.path.join(scratch, "airflow.cfg"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": os.path.join(scratch, "logs"),
        # 2.x
        "AIRFLOW__SCHEDULER__CHILD_PROCESS_LOG_DIRECTORY":
            os.path.join(scratch, "logs", "scheduler"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY":
            os.path.join(scratch, "logs", "dag-processor"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(project.dags_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project.settings.plugins_path),
        "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": project.ignore_file_syntax,
        "AIRFLOW__SECRETS__BACKEND": "pytest_astro.parse.secrets_backend.MemorySecretsBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": "{}",
    }


def sandbox_env(project: Project, home: str) -> dict[str, str]:
    """The environment of the sandbox: the user's, with Airflow pointed away from anything real
    (``home``: the sandbox's throwaway folder)."""
    env = dict(os.environ)
    env.update(airflow_env(project, home))
    env.update({
        # A URL that cannot be opened: nothing is ever created, any access fails (and is reported).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/no-such-dir/airflow.db",
        # the sandbox enforces its own timeout (and reports where the file was stuck)
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "0",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        # Bytecode of Airflow and the other installed modules the sandbox imports goes to a cache
        # of our own, never into the project or site-packages (children never write any): with no
        # .pyc files (PYTHONDONTWRITEBYTECODE, `uv pip install`) `import airflow` took 4.4 s
        # instead of 2.0 s (measured).
        "PYTHONPYCACHEPREFIX": os.environ.get("PYTHONPYCACHEPREFIX") or bytecode_cache_dir(),
    })
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def bytecode_cache_dir() -> str:
    """Where the sandbox keeps the bytecode of installed modules (PYTHONPYCACHEPREFIX)."""
    # the account's home, not $HOME: test runners point HOME at a fresh folder per test
    try:
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        home = os.path.expanduser("~")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "pytest-astro", "bytecode")
