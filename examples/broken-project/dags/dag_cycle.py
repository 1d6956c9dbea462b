from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow import DAG

with DAG("dag_cycle", start_date=datetime(2024, 1, 1), schedule=None):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a
