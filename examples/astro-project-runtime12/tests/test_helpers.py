"""The project's own unit tests run beside the DAG checks."""

from include.helpers import REGIONS, table_name


def test_table_name():
    assert table_name("emea", "orders") == "emea_orders"


def test_regions_are_unique():
    assert len(set(REGIONS)) == len(REGIONS)
