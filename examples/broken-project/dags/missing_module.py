from datetime import datetime

import snowflake_toolkit_not_installed
from airflow import DAG

with DAG("missing_module", start_date=datetime(2024, 1, 1), schedule=None):
    pass
