"""Static checks on DAG, include/ and plugins/ source (libcst), with autofixes.

Importing this package never imports Airflow: the lint reads source, it does not run it.
"""
