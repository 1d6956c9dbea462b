"""Reads settings at import time (a common source of parse errors)."""

import os

SETTINGS = {"region": "emea"}
WAREHOUSE = SETTINGS["warehouse"]  # KeyError: the key was never set
