"""pytest hooks of pytest-astro (placeholder until the engine lands in this session)."""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("astro", "Astro / Airflow DAG checks (pytest-astro)")
    group.addoption("--astro-dags", action="store_true", default=None,
                    help="parse every DAG file of the Astro project (isolated, no metadata database)")
    parser.addini("astro_dags", type="bool", default=False, help="same as --astro-dags")
