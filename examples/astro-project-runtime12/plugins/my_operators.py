"""A custom operator living in plugins/, importable as `from my_operators import ...` like on Astro."""

from airflow.models import BaseOperator


class GreetOperator(BaseOperator):
    def __init__(self, *, name: str, **kwargs):
        super().__init__(**kwargs)
        self.name = name

    def execute(self, context):
        self.log.info("Hello %s", self.name)
        return self.name
