from datetime import datetime

from airflow import DAG

with DAG("syntax_error", start_date=datetime(2024, 1, 1) schedule=None):
    pass
