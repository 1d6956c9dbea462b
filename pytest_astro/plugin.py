"""pytest hooks of pytest-astro: options, and switching the DAG checks on.

Deliberately thin and import-light: without ``--astro-dags`` (or ``astro_dags = true``) nothing
else of pytest-astro is imported, and Airflow never is in the pytest process.
"""

from __future__ import annotations

import pytest

_OPTIONS = [
    # (option, ini name, help)
    ("--astro-project", "astro_project", "root of the Astro project (default: the rootdir, or the "
                                          "nearest folder upwards with .astro/ or dags/)"),
    ("--astro-dags-folder", "astro_dags_folder", "the DAG folder, relative to the project "
                                                 "(default: dags)"),
    ("--astro-timeout", "astro_timeout", "seconds one DAG file may take to import (default: 30, "
                                          "like Airflow's dagbag_import_timeout)"),
    ("--astro-memory-limit", "astro_memory_limit", "memory one DAG file may allocate while "
                                                   "importing (default: 4GiB; 0 for no limit)"),
    ("--astro-workers", "astro_workers", "DAG files parsed at once (default: one per core)"),
    ("--astro-isolation", "astro_isolation", "'batch' (default): a forked process parses several "
                                             "files in turn, state reset between them, failures "
                                             "re-run alone; 'file': a fresh fork for every file"),
    ("--astro-shard", "astro_shard", "check the K-th of N parts of the DAG files (K/N, e.g. 2/4), "
                                     "split by their measured parse times; 'auto' reads K and N "
                                     "from the CI's parallel-job variables (GitLab, CircleCI, "
                                     "Azure, Bitbucket)"),
    ("--astro-durations", "astro_durations", "the file of measured parse times that --astro-shard "
                                             "splits by (default: .pytest-astro-durations.json in "
                                             "the project)"),
]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_astro import gcfreeze, hookspecs

    pluginmanager.add_hookspecs(hookspecs)
    pluginmanager.register(gcfreeze, "astro-gcfreeze")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("astro", "Astro / Airflow DAG checks (pytest-astro)")
    group.addoption("--astro-dags", action="store_true", default=None,
                    help="parse every DAG file of the Astro project, isolated and without a "
                         "metadata database: one test item per file")
    parser.addini("astro_dags", type="bool", default=False, help="run the DAG checks as if "
                                                                 "--astro-dags was given")
    for option, ini, help_text in _OPTIONS:
        group.addoption(option, dest=ini, default=None, help=help_text)
        parser.addini(ini, help=help_text, default=None)
    group.addoption("--astro-no-cache", action="store_true", default=False,
                    help="parse every DAG file again instead of reusing unchanged results")
    group.addoption("--astro-changed", dest="astro_changed", nargs="?", const="", default=None,
                    metavar="REF",
                    help="check only the DAG files changed since REF, and those importing a "
                         "changed include/ or plugins/ module (default REF: the merge base with "
                         "the default branch, else uncommitted changes)")
    group.addoption("--astro-store-durations", action="store_true", default=False,
                    help="write this run's parse times into the durations file (see "
                         "--astro-durations)")
    group.addoption("--astro-upgrade-check", action="store_true", default=False,
                    help="also list, per DAG file, what will break on Airflow 3 (removed imports, "
                         "arguments, context keys): one `airflow3` item per file, from the lint "
                         "rules AST301-AST304")
    group.addoption("--astro-snapshot-update", dest="astro_snapshot_update", action="store_true",
                    default=False,
                    help="write each DAG's snapshot (its structure, as normalized JSON) into the "
                         "snapshot folder (default tests/dag_snapshots/), creating it; without "
                         "this option, a DAG that differs from its snapshot fails (when the "
                         "folder exists)")
    group.addoption("--astro-report", metavar="PATH", default=None,
                    help="write the parse results and test counts as JSON to PATH (used by "
                         "`pytest-astro deploy`)")
    group.addoption("--astro-report-sarif", metavar="PATH", default=None,
                    help="write the failing DAG checks as SARIF 2.1.0 to PATH (code-scanning UIs)")
    group.addoption("--astro-report-gitlab", metavar="PATH", default=None,
                    help="write the failing DAG checks as a GitLab Code Quality report to PATH")


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--astro-dags") or config.getini("astro_dags"))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "astro_db: let this test connect to a throwaway Airflow "
                                       "metadata database (pytest-astro's guard refuses "
                                       "connections otherwise)")
    from pytest_astro import fixtures  # plain pytest fixtures; they import Airflow only when used

    config.pluginmanager.register(fixtures, "astro-fixtures")
    if not _enabled(config):
        return
    from pytest_astro.session import AstroSession  # only now: keeps `pytest --help` fast

    session = AstroSession(config)
    config.pluginmanager.register(session, "astro-session")
    # the sandbox serializes the DAGs when the folder exists
    if config.getoption("astro_snapshot_update"):
        session.project.settings.snapshots_path.mkdir(parents=True, exist_ok=True)
    from pytest_astro.direct_run import DirectRun

    config.pluginmanager.register(DirectRun(config), "astro-direct-run")
