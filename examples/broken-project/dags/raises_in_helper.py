from datetime import datetime

from airflow import DAG

from include.config_loader import WAREHOUSE

with DAG("raises_in_helper", start_date=datetime(2024, 1, 1), schedule=None, tags=[WAREHOUSE]):
    pass
