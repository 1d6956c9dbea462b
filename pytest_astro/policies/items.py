"""pytest items for DAG policies: one per DAG and policy (``dags/etl.py::etl_daily::tags``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def policy_items(dag_file: Any, result: Any) -> Iterator[Any]:
    """Items for the policies that apply to the DAGs of ``result``, children of ``dag_file``."""
    return iter(())
