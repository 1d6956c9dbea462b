"""The stock side: a stock ``DagBag`` per DAG file, each in a fork of one process that imported Airflow.

Run as a script (``python stock_worker.py``) with a migrated metadata database in ``AIRFLOW_HOME``.
Reads one absolute file path per line on stdin; prints one JSON line per file:
``{"file", "ok", "error" (the exception class Airflow recorded, or null), "text" (its import error),
"dags" ({dag_id: sorted task ids}), "refusals" (the class of every error the bag recorded, in order),
"made" ({dag_id: [sorted task ids of each DAG bagged with it]})}``. Nothing of pytest-astro is
imported here.

A DagBag keeps one error per file, and one DAG per dag_id: of several DAGs it refuses in one file
(or several DAGs made with one dag_id) the last it bagged, in the order of a set that varies between
processes. ``refusals`` and ``made`` are what it went through to get there, noted by a subclass that
leaves its behaviour as it is: what any run of stock could have kept.

A fork per file, as Airflow's DAG processor parses each file in a process of its own: one file's
state never leaks into the next verdict. ``import airflow`` and a first DagBag (on a file of its
own) are paid once, in the parent.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys

#: the last line of a recorded import error: `module.path.ClassName: message` or `ClassName`
_LAST = re.compile(r"^(?P<cls>[A-Za-z_][\w.]*)(?::|$)")


WARM_UP = """from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator

with DAG(dag_id="warm_up", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="t")
"""


def error_class(text: str) -> str:
    """The exception class named by the last line of an import error text."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    m = _LAST.match(lines[-1]) if lines else None
    return m.group("cls").rsplit(".", 1)[-1] if m else "?"


class _Noted(dict):
    """``import_errors`` that also notes each text recorded (a later one replaces an earlier one)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.texts: list[str] = []

    def __setitem__(self, key, value):
        self.texts.append(str(value))
        super().__setitem__(key, value)


def observed_dagbag():
    """Stock ``DagBag``, noting every error it records and every DAG it bags (``noted_dags``)."""
    from airflow.models.dagbag import DagBag

    class ObservedDagBag(DagBag):
        def collect_dags(self, *args, **kwargs):
            self.import_errors = _Noted(self.import_errors)
            self.noted_dags = []
            return super().collect_dags(*args, **kwargs)

        def bag_dag(self, *args, **kwargs):
            result = super().bag_dag(*args, **kwargs)
            self.noted_dags.append(kwargs["dag"] if "dag" in kwargs else args[0])
            return result

    return ObservedDagBag


def judge(path: str) -> dict:
    try:
        bag = observed_dagbag()(dag_folder=path)
    except BaseException as exc:  # noqa: BLE001 - Airflow 2 lets SystemExit out of DagBag: the file failed
        return {"ok": False, "error": type(exc).__name__, "text": f"{type(exc).__name__}: {exc} (escaped DagBag)",
                "dags": {}, "refusals": [type(exc).__name__], "made": {}}
    errors = list(bag.import_errors.values())
    dags = {d.dag_id: sorted(d.task_ids) for d in bag.dags.values()}
    made: dict[str, list[list[str]]] = {}
    for dag in bag.noted_dags:
        made.setdefault(dag.dag_id, []).append(sorted(dag.task_ids))
    noted = {"refusals": [error_class(text) for text in bag.import_errors.texts], "made": made}
    if errors:
        return {"ok": False, "error": error_class(errors[-1]), "text": errors[-1][-2000:], "dags": dags, **noted}
    return {"ok": True, "error": None, "text": "", "dags": dags, **noted}


def one(path: str) -> dict:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own stdout is the DAG file's, never our channel
        os.close(read)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        signal.alarm(300)
        try:
            verdict = judge(path)
        except BaseException as exc:  # noqa: BLE001
            verdict = {"ok": False, "error": type(exc).__name__, "text": f"harness: {exc!r}", "dags": {},
                       "refusals": [], "made": {}}
        with os.fdopen(write, "w") as out:
            json.dump(verdict, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"ok": False, "error": f"died:{status}", "text": "", "dags": {}, "refusals": [], "made": {}}
    return json.loads(data)


def main() -> None:
    # our channel is a copy of stdout; whatever Airflow or a DAG file prints goes to stderr
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import tempfile

    # once, before the forks: Airflow's import, and what its first DagBag sets up lazily
    # (providers, plugins: ~6 s per file on Airflow 2.11 when every fork paid it)
    with tempfile.TemporaryDirectory() as tmp:
        warm_up = os.path.join(tmp, "warm_up.py")
        with open(warm_up, "w") as f:
            f.write(WARM_UP)
        judge(warm_up)

    for line in sys.stdin:
        path = line.rstrip("\n")
        if path:
            out.write(json.dumps({"file": path, **one(path)}) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
