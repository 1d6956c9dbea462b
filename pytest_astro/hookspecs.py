"""Hooks that teams implement in a conftest.py or an installed pytest plugin.

Registered by ``pytest_astro.plugin`` through ``pytest_addhooks``; each hookspec's docstring is
its documentation. Policies and their context are described in ``pytest_astro.policies.api``.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_astro_dag_policies(config: pytest.Config) -> list:
    """Return extra DAG policies to run on every parsed DAG (a list of policy objects).

    Called once per session when ``--astro-dags`` is on, once collection is over: implement it in
    any ``conftest.py`` pytest loads for the run (the project's root, ``tests/conftest.py``, ...)
    or in an installed plugin (a ``pytest11`` entry point, or ``-p package.module``).

    A policy is a :class:`pytest_astro.policies.Policy` subclass instance (or any object with the
    same attributes): ``code`` (stable, unique, e.g. ``TEAM001``), ``name`` (lower_snake_case; the
    key of its options table), ``description``, ``hint``, ``options`` (defaults,
    overridden in ``[tool.pytest-astro.policies.<code or name>]``), ``default`` (on without being
    selected) and ``check(dag, context) -> list[Violation]``. ``dag`` is the plain
    :class:`pytest_astro.results.DagSummary` (no Airflow import in the pytest process).

    Policies are selected, ignored and exempted by code like the built-ins::

        def pytest_astro_dag_policies(config):
            return [TeamPrefix()]
    """


@pytest.hookspec
def pytest_astro_check_dag(dag, policy, context) -> list | None:
    """Return more violations (``pytest_astro.policies.Violation``) for ``dag`` under ``policy``.

    Called for every DAG and selected policy, after ``policy.check``; the violations of every
    implementation are added to the policy's own, as findings of that policy in the DAG file's item
    (``dags/etl.py::astro``), honouring the same exemptions. Use it to tighten a
    built-in policy for your team (e.g. ``policy.code == "DAG002"``: tags must include a team tag)
    without writing a new one. ``context`` is a :class:`pytest_astro.policies.PolicyContext`
    (``options``, ``result``, ``all_dags``, ``project``, ``pools``, ``connections``). Return None or
    ``[]`` for nothing.
    """
