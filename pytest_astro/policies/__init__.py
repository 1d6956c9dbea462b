"""DAG policies: checks on parsed DAGs (see issue 5)."""
