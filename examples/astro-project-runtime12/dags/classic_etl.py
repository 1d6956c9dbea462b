"""Classic operators from the standard provider, with a custom operator from plugins/."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow import DAG

from include.helpers import DEFAULT_ARGS, START_DATE
from my_operators import GreetOperator


def _count_rows(**context):
    return 42


with DAG(
    dag_id="classic_etl",
    start_date=START_DATE,
    schedule="0 3 * * *",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["example", "etl"],
    description="nightly load into the warehouse",
):
    start = EmptyOperator(task_id="start")
    extract = BashOperator(task_id="extract", bash_command="echo extracting {{ ds }}")
    count = PythonOperator(task_id="count_rows", python_callable=_count_rows, pool="warehouse_pool")
    greet = GreetOperator(task_id="greet", name="warehouse")
    start >> extract >> count >> greet
