"""Shared by several DAGs: defaults and small pure functions (no I/O at import time)."""

from datetime import datetime, timedelta

DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
}

START_DATE = datetime(2024, 1, 1)

REGIONS = ["emea", "amer", "apac"]


def table_name(region: str, name: str) -> str:
    return f"{region}_{name}"
