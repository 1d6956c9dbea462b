"""Time `pytest-astro lint` on N generated DAG files: cold (empty cache), cached, one edited file,
and the pre-commit hook on one changed DAG or include/ file.

    python bench/lint_bench.py [--files 1000] [--workers 0] [--repeat 5] [--callgrind] [--out FILE]

Each case runs the real command (`python -m pytest_astro lint`, or the pre-commit hook's entry
point) in a fresh temporary Astro project, so process start-up and the cache load/save are
included. With ``--repeat N`` every row runs N times, interleaved, and the table shows the
minimum, median and maximum (the cache is emptied before each cold run). The hook rows run with
``--no-cache``: a fresh clone's first commit, the worst case. A changed include/ file costs a little
more: the lint finds whether any DAG file imports it at parse time.

``--callgrind`` counts instructions instead (``valgrind --tool=callgrind``; repeatable on a loaded
machine, where wall time is not) for the cold run in one process, the two hook rows and the
interpreter start; ``--out FILE`` writes them as JSON (bench/results-lint-instructions.json holds
the counts before and after the last speed work). Unset PYTHONDONTWRITEBYTECODE: the rows are
meant with the package's bytecode cached, as an installed package has it.
The files are realistic DAGs of 40-90 lines; a third of them have findings (parse-time
Variable.get, heavy imports, Airflow 2 imports on a Runtime 3 project), since files with findings
cost more (positions are computed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
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


def instructions(cmd: list[str], cwd: Path) -> int:
    """Instructions ``cmd`` executes in its own process (callgrind; its forked workers left out)."""
    with tempfile.TemporaryDirectory(prefix="lint-callgrind-") as tmp:
        out = Path(tmp) / "out"
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
                              cwd=cwd, capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            sys.exit(f"callgrind failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        for line in out.read_text(errors="replace").splitlines():
            if line.startswith("totals: "):
                return int(line.split()[1])
    sys.exit("callgrind wrote no totals")


def cases(root: Path, workers: int) -> dict[str, tuple[list[str], object]]:
    """Row label -> (command, what to do before it runs)."""
    lint = [sys.executable, "-m", "pytest_astro", "lint", "--workers", str(workers)]
    hook = [sys.executable, "-m", "pytest_astro.lint.cli", "--no-cache"]
    cache = root / ".pytest_cache"
    edited = root / "dags" / "dag_0001.py"
    original = edited.read_text()

    def edit() -> None:  # a new content each time, so the cache never has it
        edit.count = getattr(edit, "count", 0) + 1
        edited.write_text(original + f"\n# edited {edit.count}\n")

    return {
        "cold (empty cache)": (lint, lambda: shutil.rmtree(cache, ignore_errors=True)),
        "cached (nothing changed)": (lint, None),
        "one file edited": (lint, edit),
        "cold, 1 process": ([*lint[:4], "--no-cache", "--workers", "1"], None),
        # The astro-dag-lint pre-commit hook on one changed file (its entry point, no cache to help).
        "pre-commit hook, 1 changed DAG file": ([*hook, "dags/dag_0002.py"], None),
        "pre-commit hook, 1 changed include/ file": ([*hook, "include/helpers.py"], None),
        "(python start + import only)": ([sys.executable, "-c", "import pytest_astro.lint.engine"], None),
    }


#: The rows --callgrind counts (the pool's workers are forks, which callgrind cannot add up).
COUNTED = ("cold, 1 process", "pre-commit hook, 1 changed DAG file", "pre-commit hook, 1 changed include/ file",
           "(python start + import only)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row (interleaved); default 1")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind) instead of timing")
    parser.add_argument("--out", type=Path, help="write the rows as JSON to this file")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="lint-bench-") as tmp:
        root = Path(tmp)
        make_project(root, args.files)
        (root / "include").mkdir()
        (root / "include" / "helpers.py").write_text("import json\n")
        lines = sum(len(p.read_text().splitlines()) for p in (root / "dags").iterdir())
        print(f"{args.files} DAG files ({lines} lines), {cores} cores, workers={args.workers or cores}, "
              f"Python {sys.version.split()[0]}")
        rows = cases(root, args.workers)
        if args.callgrind:
            counts = {label: instructions(rows[label][0], root) for label in COUNTED}
            width = max(map(len, counts))
            for label, count in counts.items():
                print(f"  {label:<{width}}  {count / 1e6:10,.1f} M instructions")
            result: dict = {"files": args.files, "python": sys.version.split()[0], "instructions": counts}
        else:
            runs: dict[str, list[tuple[float, float, int]]] = {label: [] for label in rows}
            for _ in range(args.repeat):
                for label, (cmd, before) in rows.items():
                    if before is not None:
                        before()
                    runs[label].append(timed(cmd, root))
            _print_table(runs)
            result = {"files": args.files, "cores": cores, "python": sys.version.split()[0],
                      "wall": {label: [r[0] for r in rs] for label, rs in runs.items()},
                      "cpu": {label: [r[1] for r in rs] for label, rs in runs.items()}}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _print_table(runs: dict[str, list[tuple[float, float, int]]]) -> None:
    width = max(map(len, runs))
    print(f"  {'':<{width}}  {'wall min':>8} {'median':>7} {'max':>7}  {'CPU median':>10}")
    for label, rs in runs.items():
        walls = [r[0] for r in rs]
        findings = rs[-1][2]
        tail = f"   {findings} findings" if findings else ""
        print(f"  {label:<{width}}  {min(walls):7.2f}s {statistics.median(walls):6.2f}s {max(walls):6.2f}s  "
              f"{statistics.median(r[1] for r in rs):9.2f}s{tail}")


if __name__ == "__main__":
    sys.exit(main())
