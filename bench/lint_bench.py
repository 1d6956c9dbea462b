"""Time `pytest-astro lint` on N generated DAG files: cold (empty cache), cached, and one edited file.

    python bench/lint_bench.py [--files 1000] [--workers 0]

Each case runs the real command (`python -m pytest_astro lint`, or the pre-commit hook's entry
point) in a fresh temporary Astro project, so process start-up and the cache load/save are
included. A changed include/ file costs a little more: the lint finds whether any DAG file imports it
at parse time. On a loaded machine compare instruction counts instead of times
(`valgrind --tool=callgrind python -c "...lint_paths(files, use_cache=False, workers=1)"`). The files are realistic DAGs
of 40-90 lines; a third of them have findings (parse-time Variable.get, heavy imports, Airflow 2
imports on a Runtime 3 project), since files with findings cost more (positions are computed).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLEAN = '''"""Loads {name} from the source system into the warehouse."""
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator

TABLES = ["orders", "customers", "items", "payments"]

default_args = {{"owner": "data", "retries": 2}}

with DAG(
    dag_id="{name}",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    schedule="@daily",
    catchup=False,
    default_args=default_args,
    tags=["etl", "generated"],
) as dag:
    start = EmptyOperator(task_id="start")
    end = EmptyOperator(task_id="end")

    @task
    def extract(table: str) -> list[dict]:
        import json
        return json.loads("[]")

    @task
    def transform(rows: list[dict]) -> list[dict]:
        import pandas as pd
        frame = pd.DataFrame(rows)
        return frame.to_dict(orient="records")

    @task
    def load(rows: list[dict]) -> int:
        return len(rows)

    for table in TABLES:
        cleanup = BashOperator(task_id=f"cleanup_{{table}}", bash_command="echo {{{{ ds }}}} " + table)
        start >> cleanup >> load.override(task_id=f"load_{{table}}")(
            transform.override(task_id=f"transform_{{table}}")(extract.override(task_id=f"extract_{{table}}")(table))
        ) >> end
'''

DIRTY = '''from datetime import datetime, timedelta

import pandas as pd
from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator

BUCKET = Variable.get("bucket_{i}")


def process(**context):
    frame = pd.DataFrame({{"a": [1, 2, 3]}})
    return int(frame["a"].sum())


with DAG(
    "{name}",
    start_date=datetime(2024, 1, 1),
    schedule_interval="@hourly",
    default_args={{"retries": 1, "retry_delay": timedelta(minutes=5)}},
) as dag:
    first = BashOperator(task_id="first", bash_command="echo {{{{ execution_date }}}} " + BUCKET)
    second = PythonOperator(task_id="second", python_callable=process)
    first >> second
'''


def make_project(root: Path, n: int) -> None:
    (root / "dags").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM astrocrpublic.azurecr.io/runtime:3.1-1\n")
    for i in range(n):
        template = DIRTY if i % 3 == 0 else CLEAN
        (root / "dags" / f"dag_{i:04}.py").write_text(template.format(name=f"dag_{i:04}", i=i))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of the command and its workers, output lines)."""
    cpu0, start = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu0
    if proc.returncode not in (0, 1):
        sys.exit(f"lint failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, cpu, len(proc.stdout.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lint = [sys.executable, "-m", "pytest_astro", "lint", "--workers", str(args.workers)]
    with tempfile.TemporaryDirectory(prefix="lint-bench-") as tmp:
        root = Path(tmp)
        make_project(root, args.files)
        lines = sum(len(p.read_text().splitlines()) for p in (root / "dags").iterdir())
        print(f"{args.files} DAG files ({lines} lines), {cores} cores, workers={args.workers or cores}, "
              f"Python {sys.version.split()[0]}")
        rows = [("cold (empty cache)", *timed(lint, root)),
                ("cached (nothing changed)", *timed(lint, root))]
        edited = root / "dags" / "dag_0001.py"
        edited.write_text(edited.read_text() + "\n# edited\n")
        rows.append(("one file edited", *timed(lint, root)))
        rows.append(("cold, 1 process", *timed([*lint[:4], "--no-cache", "--workers", "1"], root)))
        # The astro-dag-lint pre-commit hook on one changed file (its entry point, no cache to help).
        hook = [sys.executable, "-m", "pytest_astro.lint.cli", "--no-cache"]
        rows.append(("pre-commit hook, 1 changed DAG file", *timed([*hook, "dags/dag_0002.py"], root)))
        (root / "include").mkdir()
        (root / "include" / "helpers.py").write_text("import json\n")
        rows.append(("pre-commit hook, 1 changed include/ file", *timed([*hook, "include/helpers.py"], root)))
        rows.append(("(python start + import only)",
                     *timed([sys.executable, "-c", "import pytest_astro.lint.engine"], root)))
    width = max(len(r[0]) for r in rows)
    print(f"  {'':<{width}}  {'wall':>7}  {'CPU':>7}")
    for label, wall, cpu, findings in rows:
        tail = f"   {findings} findings" if findings else ""
        print(f"  {label:<{width}}  {wall:6.2f}s  {cpu:6.2f}s{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
