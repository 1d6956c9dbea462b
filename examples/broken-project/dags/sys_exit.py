import sys

from airflow import DAG

if not DAG:
    pass
sys.exit(1)
