"""Dynamic DAGs: one report DAG per region, created in a loop (not assigned to module globals)."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow import DAG

from include.helpers import DEFAULT_ARGS, REGIONS, START_DATE, table_name

for region in REGIONS:
    with DAG(
        dag_id=f"report_{region}",
        start_date=START_DATE,
        schedule="@weekly",
        catchup=False,
        default_args=DEFAULT_ARGS,
        tags=["example", "reports", region],
    ):
        BashOperator(task_id="build", bash_command=f"echo building {table_name(region, 'report')}")
