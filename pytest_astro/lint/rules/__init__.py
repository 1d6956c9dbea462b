"""Every lint rule, in code order. A rule is one class; see :mod:`pytest_astro.lint.core`."""

from __future__ import annotations

from pytest_astro.lint.core import Rule
from pytest_astro.lint.rules import (airflow3, airflow3_context, airflow3_methods, airflow3_values, dag, parse_time,
                                     task_ids)

ALL_RULES: list[type[Rule]] = sorted(
    [*parse_time.RULES, *dag.RULES, *airflow3.RULES, *airflow3_context.RULES, *airflow3_methods.RULES,
     *airflow3_values.RULES, *task_ids.RULES],
    key=lambda r: r.CODE)
BY_CODE: dict[str, type[Rule]] = {rule.CODE: rule for rule in ALL_RULES}

assert len(BY_CODE) == len(ALL_RULES), "duplicate rule code"
