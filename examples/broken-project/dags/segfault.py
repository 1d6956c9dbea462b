import ctypes

from airflow import DAG  # noqa: F401

ctypes.string_at(0)
