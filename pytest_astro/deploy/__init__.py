"""The deploy gate: ``pytest-astro deploy``.

Check phase, without credentials: resolve target (:mod:`.settings`, :mod:`.ci_env`) -> decide deploy
type (:mod:`.changes`) -> hash the files to ship (:mod:`.plan`) -> run the suite (:mod:`.suite`) ->
write the plan. Apply phase, with the token and no project code: verify the tree against the plan ->
deploy (:mod:`.targets`, :mod:`.buckets`) -> confirm and wait -> record (:mod:`.record`).
:mod:`.exposure` keeps the token out of reach of project code, :mod:`.mask` out of every output.
:mod:`.gate` ties them together (:mod:`.check_phase`, :mod:`.apply_phase`, :mod:`.context`);
``pytest_astro.commands.deploy`` is the command line. Nothing here imports Airflow, boto3 or
google-cloud at import time.
"""
