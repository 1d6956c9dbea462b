"""The deploy gate: ``pytest-astro deploy``.

resolve target (:mod:`.config`, :mod:`.ci_env`) -> decide deploy type (:mod:`.changes`) -> run the
suite without credentials (:mod:`.suite`) -> deploy (:mod:`.targets`, :mod:`.buckets`) -> record
(:mod:`.record`). :mod:`.gate` ties them together; :mod:`.cli` is the command line. Nothing here
imports Airflow, boto3 or google-cloud at import time.
"""
