"""Data-aware scheduling: the consumer runs whenever the producer updates the dataset."""

from airflow import DAG
from airflow.datasets import Dataset
from airflow.decorators import task

from include.helpers import DEFAULT_ARGS, START_DATE

orders = Dataset("s3://warehouse/orders.parquet")

with DAG(dag_id="orders_producer", start_date=START_DATE, schedule="@hourly", catchup=False,
         default_args=DEFAULT_ARGS, tags=["example", "assets"]):

    @task(outlets=[orders])
    def write_orders():
        return "written"

    write_orders()

with DAG(dag_id="orders_consumer", start_date=START_DATE, schedule=[orders], catchup=False,
         default_args=DEFAULT_ARGS, tags=["example", "assets"]):

    @task
    def read_orders():
        return "read"

    read_orders()
