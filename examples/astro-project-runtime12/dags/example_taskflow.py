"""A TaskFlow DAG: extract -> transform -> load, data passed through XCom."""

from airflow.decorators import dag, task

from include.helpers import DEFAULT_ARGS, START_DATE


@dag(
    start_date=START_DATE,
    schedule="@daily",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["example", "taskflow"],
    doc_md=__doc__,
)
def example_taskflow():
    @task
    def extract() -> list[int]:
        return [1, 2, 3]

    @task
    def transform(values: list[int]) -> int:
        return sum(values)

    @task
    def load(total: int) -> None:
        print(f"total={total}")

    load(transform(extract()))


example_taskflow()
