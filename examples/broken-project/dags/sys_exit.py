import sys

from airflow.sdk import DAG

if not DAG:
    pass
sys.exit(1)
