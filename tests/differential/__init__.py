"""Differential testing of pytest-astro's verdicts against stock Airflow (issue 18 item 4, issue 19 items 2 and 4).

``grammar`` generates DAG files from valid and invalid constructs; ``oracles`` runs them through
pytest-astro (``pytest --astro-dags``, ``pytest-astro lint``) and through a stock ``DagBag`` in
separate processes, and compares the verdicts. Used by tests/test_differential.py and
bench/differential.py.
"""
