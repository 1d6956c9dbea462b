"""pytest-astro: parse, check and safely deploy Astro / Apache Airflow projects.

Importing this package (or the pytest plugin) must never import Airflow: `pytest --help`
and runs without ``--astro-dags`` stay as fast as plain pytest.
"""

__version__ = "0.1.0"
