"""Parse-engine benchmark: pytest-astro's warm fork-per-file sandbox against the alternatives.

    python bench/parse_bench.py --files 200 [--spawn-sample 10]

Generates a project of N small DAG files (classic operators, TaskFlow, a shared include/ module)
and measures, each in a fresh process, wall time of:
  inprocess   one DagBag over the folder (Airflow's default test; no isolation at all)
  fork-cold   pytest-astro's engine, nothing cached (import Airflow once, fork one child per file)
  fork-nopre  the same with preloading of the files' imports switched off
  cached      pytest-astro's engine again, everything unchanged (content-hash cache)
  spawn       a fresh `python` per file (naive isolation), measured on a sample and scaled to N
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CLASSIC = '''
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from include.common import DEFAULT_ARGS

def _work(**context):
    return 1

with DAG("classic_{i}", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False,
         default_args=DEFAULT_ARGS, tags=["bench"]):
    a = BashOperator(task_id="a", bash_command="echo {i}")
    b = PythonOperator(task_id="b", python_callable=_work)
    c = BashOperator(task_id="c", bash_command="echo c")
    a >> b >> c
'''

TASKFLOW = '''
from datetime import datetime
from airflow.sdk import dag, task

@dag(start_date=datetime(2024, 1, 1), schedule=None, catchup=False, tags=["bench"])
def taskflow_{i}():
    @task
    def extract():
        return [1, 2, 3]

    @task
    def load(values):
        return sum(values)

    load(extract())

taskflow_{i}()
'''

DYNAMIC = '''
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

for region in ("emea", "amer"):
    with DAG(f"dynamic_{i}_{{region}}", start_date=datetime(2024, 1, 1), schedule=None):
        EmptyOperator(task_id="start") >> EmptyOperator(task_id="end")
'''


def make_project(root: Path, n: int) -> None:
    (root / "dags").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "include/__init__.py").write_text("")
    (root / "include/common.py").write_text("DEFAULT_ARGS = {'owner': 'bench', 'retries': 2}\n")
    templates = [CLASSIC, TASKFLOW, DYNAMIC]
    for i in range(n):
        (root / "dags" / f"dag_{i:04d}.py").write_text(templates[i % 3].format(i=i))


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    """(wall seconds, stdout) of a fresh process."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall, proc.stdout


INPROCESS = textwrap.dedent('''
    import sys
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/dags"]
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1] + "/dags", load_op_links=False)
    print(len(bag.dags), len(bag.import_errors))
''')

SPAWN_ONE = textwrap.dedent('''
    import sys
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/dags"]
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[2], load_op_links=False)
    print(len(bag.dags), len(bag.import_errors))
''')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="+", default=[200])
    parser.add_argument("--spawn-sample", type=int, default=10)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    for n in args.files:
        with tempfile.TemporaryDirectory(prefix="pytest-astro-bench-") as tmp:
            root = Path(tmp) / "project"
            make_project(root, n)
            home = Path(tmp) / "home"
            env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                   "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp}/nowhere/x.db"}
            rows = []
            wall, out = timed([sys.executable, "-c", INPROCESS, str(root)], root, env)
            rows.append(("inprocess", wall, "dags, import errors: " + out.strip()))
            cli = [sys.executable, "-m", "pytest_astro", "parse", "--format", "json"]
            (root / "pyproject.toml").write_text("[tool.pytest-astro]\npreload = false\n")
            wall, out = timed(cli + ["--no-cache"], root, env)
            (root / "pyproject.toml").unlink()
            rows.append(("fork-nopre", wall, f"{json.loads(out)['failed']} failed"))
            wall, out = timed(cli + ["--no-cache"], root, env)
            rows.append(("fork-cold", wall, f"{json.loads(out)['failed']} failed"))
            timed(cli, root, env)  # fill the cache
            wall, out = timed(cli, root, env)
            rows.append(("cached", wall, f"{json.loads(out)['failed']} failed"))
            sample = sorted((root / "dags").glob("*.py"))[: args.spawn_sample]
            start = time.perf_counter()
            for path in sample:
                subprocess.run([sys.executable, "-c", SPAWN_ONE, str(root), str(path)], cwd=root, env=env,
                               capture_output=True, check=True)
            per_file = (time.perf_counter() - start) / len(sample)
            cores = os.cpu_count() or 1
            rows.append(("spawn (est.)", per_file * n / cores,
                         f"{per_file:.2f} s/file x {n} / {cores} cores, from {len(sample)} files"))
            print(f"\n{n} DAG files")
            print(f"{'approach':<14}{'wall s':>9}  notes")
            for name, wall, note in rows:
                print(f"{name:<14}{wall:>9.2f}  {note}")


if __name__ == "__main__":
    main()
