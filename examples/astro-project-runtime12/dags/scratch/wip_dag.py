# Half-written and ignored by .airflowignore: Airflow never parses it, nor does pytest-astro.
from airflow import DAG

with DAG("wip" this is not python yet
