import ctypes

from airflow.sdk import DAG  # noqa: F401

ctypes.string_at(0)
