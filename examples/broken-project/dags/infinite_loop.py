from airflow import DAG  # noqa: F401

counter = 0
while True:
    counter += 1
