from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow import DAG

with DAG("good_neighbour", start_date=datetime(2024, 1, 1), schedule=None, tags=["ok"],
         default_args={"retries": 2}):
    EmptyOperator(task_id="still_checked")
