"""Hooks that teams implement in a conftest.py or an installed pytest plugin.

Registered by ``pytest_astro.plugin`` through ``pytest_addhooks``; each hookspec's docstring is
its documentation.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_astro_dag_policies(config: pytest.Config) -> list:
    """Return extra DAG policies to run on every parsed DAG (a list of policy objects).

    Called once per session when ``--astro-dags`` is on. Each policy has a stable code and can be
    selected or ignored by that code in ``[tool.pytest-astro.policies]``.
    """
