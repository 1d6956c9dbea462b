"""Benchmark: ``pytest --astro-dags`` against the stock ways of testing DAG files, side by side.

    python bench/run.py [--files 200 1000 5000] [--json bench/results.json] [--repeat 1]

For each size it generates a realistic Astro project (classic operators, TaskFlow, dynamic DAGs
made in a loop, DAGs importing shared ``include/`` modules, DAGs reading a YAML config, a few DAG
files importing heavy third-party packages from site-packages) and runs, each in a fresh process:

  template       the Astro CLI's ``tests/dags/test_dag_example.py`` as ``astro dev init`` writes
                 it (rewritten here, same behaviour: a DagBag built at collection time for each of
                 its four parametrize calls; ``include_examples=False`` dropped, which Airflow 3.3
                 no longer accepts), under pytest
  single-dagbag  a well-written hand-made test: one session-scoped DagBag, one test per DAG file
  ours-cold      ``pytest --astro-dags dags`` with the default settings (the default DAG policies on,
                 as a user runs it), empty cache
  ours-warm      the same again, nothing changed
  ours-1-dag     one DAG file edited
  ours-include   one include/ module edited (only the DAG files importing it may re-parse:
                 checked against the generator's own list of importers)
  ablation-policies-off-cold / -warm   the same as ours-cold / ours-warm with every DAG policy
                 switched off (``select = []``): what the policies cost (``--no-policies-off`` skips)
  pytest-floor   pytest with one trivial test per DAG file and no Airflow: the least any one-item-per-
                 file run costs (startup, collection, reporting)
  pytest-floor-per-file   the same, as a plugin that collects each DAG file as its own pytest.File
                 with one item (node ids ``dags/x.py::parse``, as ours): what that structure costs
  --ablations    ours without preloading; ours with a fresh fork per file (``isolation = "file"``);
                 a fresh interpreter per file (sampled, estimated)
  --instructions also count the instructions that single-dagbag, pytest-floor, pytest-floor-per-file,
                 ours-warm and ours-1-dag execute (valgrind's callgrind, when installed; summed over
                 the programs of the run, the sandbox's server included but not its forked parse
                 children, whose counts start from their parent's): unlike wall time, the same
                 from run to run on a shared VM, so the ratios to single-dagbag and the distance to the
                 floors are measured exactly. ``--instructions-cold`` counts ours-cold and
                 single-dagbag's cold twin as well (slow: callgrind runs ~50x slower)

Every approach gets compiled bytecode of the installed packages (``--bytecode warm``, as after
``pip install``); the DAG files' own bytecode is never kept, as in a fresh checkout.

``--repeat N`` runs every approach N times, interleaved (one run of each, then again), and keeps
each one's median run: on a shared 2-core VM single runs move by 10-25%.

Wall time, and peak memory of the whole process tree (sampled every 20 ms with psutil or /proc):
RSS summed over the processes (counts pages shared by forked children once per child, so it
overstates forked designs) and PSS (proportional set size: shared pages split between sharers).
Memory is sampled in one more round, after the timed ones, whose times are not counted: reading a
process's PSS makes the kernel walk its page tables, which every 20 ms for every process of the tree
takes CPU from the command measured, the more the more processes it has.
Prints a Markdown table with ratios against single-dagbag and writes JSON. Timings are never
asserted anywhere; the machine's load is printed with them because it moves them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# ------------------------------------------------------------------------------------ the project

COMMON = '''
from datetime import timedelta

DEFAULT_ARGS = {"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=5)}
'''

HELPERS = '''
"""Shared by a tenth of the DAG files (the "one include/ module changed" case edits this)."""


def table_name(source: str, region: str) -> str:
    return f"raw_{source}_{region}".lower()


def build_sql(table: str) -> str:
    return f"SELECT count(*) FROM {table}"
'''

CONFIG_YAML = '''
sources:
  - name: orders
    regions: [emea, amer]
  - name: customers
    regions: [apac]
'''

CLASSIC = '''
from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from include.common import DEFAULT_ARGS


def _count(**context):
    return {i}


with DAG("classic_{i}", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False,
         default_args=DEFAULT_ARGS, tags=["bench", "classic"]):
    start = EmptyOperator(task_id="start")
    extract = BashOperator(task_id="extract", bash_command="echo extract {i}")
    count = PythonOperator(task_id="count", python_callable=_count)
    end = EmptyOperator(task_id="end")
    start >> extract >> count >> end
'''

TASKFLOW = '''
from datetime import datetime

import pendulum
from airflow.sdk import dag, task


@dag(start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), schedule=None, catchup=False,
     default_args={{"retries": 2}}, tags=["bench", "taskflow"])
def taskflow_{i}():
    @task
    def extract() -> list[int]:
        return [1, 2, 3]

    @task
    def transform(values: list[int]) -> int:
        return sum(values)

    @task
    def load(total: int) -> None:
        print(total)

    load(transform(extract()))


taskflow_{i}()
'''

DYNAMIC = '''
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

for region in ("emea", "amer", "apac"):
    with DAG(f"dynamic_{i}_{{region}}", start_date=datetime(2024, 1, 1), schedule="@hourly",
             catchup=False, default_args={{"retries": 2}}, tags=["bench", "dynamic"]):
        EmptyOperator(task_id="start") >> EmptyOperator(task_id="end")
'''

USES_HELPERS = '''
from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

from include.common import DEFAULT_ARGS
from include.helpers import build_sql, table_name

with DAG("helpers_{i}", start_date=datetime(2024, 1, 1), schedule="0 3 * * *", catchup=False,
         default_args=DEFAULT_ARGS, tags=["bench", "helpers"]):
    for region in ("emea", "amer"):
        BashOperator(task_id=f"count_{{region}}", bash_command=f"echo '{{build_sql(table_name('s{i}', region))}}'")
'''

FROM_YAML = '''
from datetime import datetime
from pathlib import Path

import yaml
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "include").is_dir())
CONFIG = yaml.safe_load((ROOT / "include" / "sources.yaml").read_text())

with DAG("yaml_{i}", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False,
         default_args={{"retries": 2}}, tags=["bench", "yaml"]):
    done = EmptyOperator(task_id="done")
    for source in CONFIG["sources"]:
        for region in source["regions"]:
            EmptyOperator(task_id=f"load_{{source['name']}}_{{region}}") >> done
'''

HEAVY = '''
from datetime import datetime

{imports}
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def _upload(**context):
    return "ok"


with DAG("heavy_{i}", start_date=datetime(2024, 1, 1), schedule="@daily", catchup=False,
         default_args={{"retries": 2}}, tags=["bench", "heavy"]):
    PythonOperator(task_id="upload", python_callable=_upload)
'''

# Third-party packages a DAG file might import at module level, heaviest first. Only those
# installed are used; the benchmark prints which (none of them is imported by Airflow itself).
HEAVY_CANDIDATES = ["pandas", "numpy", "boto3", "google.cloud.storage", "requests", "snowflake.connector"]

TEMPLATE_TEST = '''
"""Equivalent of the Astro CLI's tests/dags/test_dag_example.py (``astro dev init``, Airflow 3 project):
a DagBag of the configured dags folder built for each parametrize call, import errors, tags, retries."""

import logging
import os
from contextlib import contextmanager

import pytest
from airflow.models import DagBag


@contextmanager
def quiet(namespace):
    logger = logging.getLogger(namespace)
    before, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = before


def _rel(path):
    return os.path.relpath(path, os.environ.get("AIRFLOW_HOME"))


def get_import_errors():
    with quiet("airflow"):
        bag = DagBag()  # the template passes include_examples=False, a TypeError on Airflow 3.3
        return [(None, None)] + [(_rel(k), v.strip()) for k, v in bag.import_errors.items()]


def get_dags():
    with quiet("airflow"):
        bag = DagBag()
    return [(k, v, _rel(v.fileloc)) for k, v in bag.dags.items()]


@pytest.mark.parametrize("rel_path,rv", get_import_errors(), ids=[x[0] for x in get_import_errors()])
def test_file_imports(rel_path, rv):
    if rel_path and rv:
        raise Exception(f"{rel_path} failed to import with message \\n {rv}")


APPROVED_TAGS = {}


@pytest.mark.parametrize("dag_id,dag,fileloc", get_dags(), ids=[x[2] for x in get_dags()])
def test_dag_tags(dag_id, dag, fileloc):
    assert dag.tags, f"{dag_id} in {fileloc} has no tags"
    if APPROVED_TAGS:
        assert not set(dag.tags) - APPROVED_TAGS


@pytest.mark.parametrize("dag_id,dag, fileloc", get_dags(), ids=[x[2] for x in get_dags()])
def test_dag_retries(dag_id, dag, fileloc):
    assert dag.default_args.get("retries", None) >= 2, f"{dag_id} in {fileloc} must have task retries >= 2."
'''

SINGLE_DAGBAG_TEST = '''
"""A well-written hand-made DAG test: one DagBag for the session, one test per DAG file."""

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
FILES = sorted(p for p in DAGS.rglob("*.py"))


@pytest.fixture(scope="session")
def dagbag():
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    by_file = {}
    for dag in bag.dags.values():
        by_file.setdefault(dag.fileloc, []).append(dag)
    return bag, by_file


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_dag_file(dagbag, path):
    bag, by_file = dagbag
    assert str(path) not in bag.import_errors, bag.import_errors[str(path)]
    assert by_file.get(str(path)), f"{path} defines no DAG"
'''


FLOOR_TEST = '''
"""The least any one-test-per-DAG-file run costs: pytest, one trivial test per file, no Airflow."""

from pathlib import Path

import pytest

FILES = sorted((Path(__file__).resolve().parents[1] / "dags").rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_dag_file(path):
    assert path.is_file()
'''


FLOOR_PLUGIN = '''
"""The least a plugin that collects each DAG file as a pytest.File with one item costs (no Airflow)."""

import pytest


class DagFile(pytest.File):
    def collect(self):
        yield Check.from_parent(self, name="parse")


class Check(pytest.Item):
    def runtest(self):
        assert self.path.is_file()


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py":
        return DagFile.from_parent(parent, path=file_path)
'''


SPAWN_ONE = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/dags"]
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[2])
print(len(bag.dags), len(bag.import_errors))
"""

FLOOR_PER_FILE = ["-p", "floor_plugin", "dags"]
POLICIES_OFF = "[tool.pytest-astro.policies]\nselect = []\n"
DEFAULTS = ""  # an empty pyproject.toml: every setting at its default


def heavy_modules() -> list[str]:
    found = []
    for name in HEAVY_CANDIDATES:
        try:
            if importlib.util.find_spec(name.split(".")[0]) and importlib.util.find_spec(name):
                found.append(name)
        except (ImportError, ValueError):
            continue
    return found


def make_project(root: Path, n: int, heavy: list[str]) -> dict:
    """Write the project; returns what the measurements check against (e.g. the helpers' importers)."""
    for folder in ("dags", "include", "plugins", "tests/dags"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "include/__init__.py").write_text("")
    (root / "include/common.py").write_text(COMMON.lstrip())
    (root / "include/helpers.py").write_text(HELPERS.lstrip())
    (root / "include/sources.yaml").write_text(CONFIG_YAML.lstrip())
    (root / "requirements.txt").write_text("".join(f"{m.split('.')[0]}\n" for m in heavy))
    (root / "Dockerfile").write_text("FROM astrocrpublic.azurecr.io/runtime:3.1-1\n")
    (root / "tests/dags/test_dag_example.py").write_text(TEMPLATE_TEST.lstrip())
    (root / "tests/test_single_dagbag.py").write_text(SINGLE_DAGBAG_TEST.lstrip())
    (root / "tests/test_floor.py").write_text(FLOOR_TEST.lstrip())
    (root / "floor_plugin.py").write_text(FLOOR_PLUGIN.lstrip())  # `python -m pytest -p floor_plugin dags`
    # the default settings: the default DAG policies on (the ablation rows switch them off)
    (root / "pyproject.toml").write_text(DEFAULTS)
    # mostly small DAG files, as in real projects; 1 in 50 imports a heavy package
    kinds = [CLASSIC, CLASSIC, TASKFLOW, TASKFLOW, DYNAMIC, USES_HELPERS, FROM_YAML, CLASSIC, TASKFLOW, "heavy"]
    helpers_users = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "heavy":
            kind = HEAVY if heavy and i % 50 == 9 else CLASSIC
        imports = "\n".join(f"import {m}  # noqa: F401" for m in heavy[(i // 50) % len(heavy):][:1]) if heavy else ""
        rel = f"dags/{'team_%d/' % (i % 5) if i % 3 == 0 else ''}dag_{i:04d}.py"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(kind.format(i=i, imports=imports).lstrip())
        if kind is USES_HELPERS:
            helpers_users.append(rel)
    return {"helpers_importers": sorted(helpers_users)}


# ------------------------------------------------------------------------------------ measuring


def _read_mem(pid: int) -> tuple[int, int]:
    """(rss, pss) in bytes of one process, from /proc (0, 0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            rss = pss = 0
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
            return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


def _children(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except ImportError:
        pass
    except Exception:
        return []
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as fh:
                kids = [int(x) for x in fh.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def measure(cmd: list[str], cwd: Path, env: dict, sample_memory: bool = False) -> dict:
    """Run ``cmd``; wall time, exit status, stdout tail; with ``sample_memory``, the peak RSS/PSS of its
    process tree too. Sampling is not done in timed runs: reading a process's PSS makes the kernel walk
    its page tables, and every 20 ms for each process of the tree that is CPU taken from the command,
    the more the more processes it has (a run of ours has four, single-dagbag one)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"rss": 0, "pss": 0, "processes": 0}
    commands: set[str] = set()
    done = threading.Event()
    if not sample_memory:
        done.set()

    def sample():
        while not done.is_set():
            pids = [proc.pid, *_children(proc.pid)]
            rss = pss = 0
            for pid in pids:
                r, p = _read_mem(pid)
                rss += r
                pss += p
                if pid != proc.pid and len(commands) < 50:
                    commands.add(_cmdline(pid)[:120])
            peak["rss"] = max(peak["rss"], rss)
            peak["pss"] = max(peak["pss"], pss)
            peak["processes"] = max(peak["processes"], len(pids))
            done.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    thread.join()
    return {"seconds": round(wall, 3), "peak_rss": peak["rss"], "peak_pss": peak["pss"],
            "processes": peak["processes"], "exit": proc.returncode,
            "sandbox_started": any("pytest_astro.parse.server" in c for c in commands),
            "summary": [line for line in out.splitlines() if line.strip()][-2:]}


def count_instructions(cmd: list[str], cwd: Path, env: dict) -> int | None:
    """Instructions ``cmd`` executes, summed over its process and every program it starts (the
    sandbox's server); None without valgrind or when the command fails. Forked processes (the
    sandbox's parse children) are left out: callgrind starts a fork with its parent's counts, so its
    total would count the parent's work again (an unchanged run forks none; one changed file, one)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    with tempfile.TemporaryDirectory(prefix="pytest-astro-callgrind-") as tmp:
        proc = subprocess.run([valgrind, "--tool=callgrind", "--trace-children=yes",
                               f"--callgrind-out-file={tmp}/out.%p", *cmd],
                              cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        first: dict[str, tuple[int, int]] = {}  # command line -> (pid, instructions) of its first process
        for out in Path(tmp).glob("out.*"):
            head = dict(line.split(": ", 1) for line in out.read_text(errors="replace").splitlines()
                        if line.startswith(("pid: ", "cmd: ", "totals: ")))
            if "totals" not in head:
                continue
            pid, total = int(head.get("pid", "0").split()[0]), int(head["totals"].split()[0])
            if head.get("cmd", "") not in first or pid < first[head.get("cmd", "")][0]:
                first[head.get("cmd", "")] = (pid, total)
    return sum(total for _, total in first.values()) or None


def _report_files(path: Path) -> dict[str, bool]:
    """file -> parsed (True) or from cache (False), from ``--astro-report``."""
    data = json.loads(path.read_text())
    return {f["file"]: not f.get("cached") for f in data["files"]}


def edit_one(root: Path, rep: int) -> None:
    """The "one DAG file changed" edit (a task renamed, a comment added: a new content each time)."""
    one = root / "dags" / "dag_0001.py"
    one.write_text(one.read_text().replace('task_id="end"', 'task_id="finish"') + f"\n# edited {rep}\n")


def _count_rows(root: Path, env: dict, pytest_cmd: list[str], ours: list[str], bytecode: str, workdir: Path,
                which: str) -> dict[str, int | None]:
    """Instruction counts of the rows ``which`` ("warm", or "cold" for the cold rows too), in the
    default settings; the cache is filled first where the row needs it."""
    counted: dict[str, int | None] = {}

    def count(name: str, cmd: list[str]) -> None:
        if bytecode == "warm":
            shutil.rmtree(workdir / "bytecode" / str(root.resolve()).lstrip(os.sep), ignore_errors=True)
        counted[name] = count_instructions(cmd, root, env)

    for name, args in (("single-dagbag", ["tests/test_single_dagbag.py"]), ("pytest-floor", ["tests/test_floor.py"]),
                       ("pytest-floor-per-file", FLOOR_PER_FILE)):
        count(name, pytest_cmd + args + ["-p", "no:cacheprovider"])
    if which == "cold":
        shutil.rmtree(root / ".pytest_cache", ignore_errors=True)
        count("ours-cold", ours)
    subprocess.run(ours, cwd=root, env=env, capture_output=True)  # the cache filled
    count("ours-warm", ours)
    edit_one(root, 99)
    count("ours-1-dag", ours)
    return counted


def run_size(n: int, workdir: Path, heavy: list[str], policies_off: bool = True, bytecode: str = "warm",
             ablations: bool = False, repeat: int = 1, instructions: str = "") -> dict:
    root = workdir / f"project-{n}"
    if root.exists():
        shutil.rmtree(root)
    facts = make_project(root, n, heavy)
    home = workdir / f"home-{n}"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir}/no-such-dir/airflow.db"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-o", "addopts="]
    if bytecode == "warm":
        # Everyone gets compiled bytecode of what is installed, as after `pip install` (which
        # compiles), and keeps writing it as Python does by default (pytest's rewritten test
        # modules and plugins included): without it, `import airflow` costs every approach ~2.4 s
        # more. The project's own bytecode (DAG files, include/, tests) is removed before every
        # timed run, as in a fresh checkout. Filled by untimed runs of each approach on a small
        # project.
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "bytecode")
        warm = workdir / f"warm-{n}"
        if warm.exists():
            shutil.rmtree(warm)
        make_project(warm, 12, heavy)
        writable = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(warm / "dags")}
        for args in (["tests/test_single_dagbag.py"], ["tests/dags/test_dag_example.py"], ["tests/test_floor.py"], FLOOR_PER_FILE,
                     ["--astro-dags", "dags", "--astro-no-cache"], ["--astro-dags", "dags"]):
            subprocess.run(pytest_cmd + args, cwd=warm, env=writable, capture_output=True)
        shutil.rmtree(workdir / "bytecode" / str(warm.resolve()).lstrip(os.sep), ignore_errors=True)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # as-is: leave this environment's bytecode alone

    # Each repetition runs every approach once, in the same order (so that a slower minute of the
    # machine hits all of them); each row keeps its median run, and the checks must hold in all.
    runs: dict[str, list[dict]] = {}
    ours = pytest_cmd + ["--astro-dags", "dags", "--astro-report", "report.json"]

    memory: dict[str, dict] = {}  # the untimed round's runs, which sample the memory

    def row(name: str, cmd: list[str], parsed: bool = False) -> dict:
        if bytecode == "warm":  # the project's own bytecode never survives a run, as in a fresh checkout
            shutil.rmtree(workdir / "bytecode" / str(root.resolve()).lstrip(os.sep), ignore_errors=True)
        result = measure(cmd, root, env, sample_memory=not timed)
        if parsed:
            result["parsed"] = sum(_report_files(root / "report.json").values())
        if timed:
            runs.setdefault(name, []).append(result)
        else:
            memory[name] = result
        return result

    # the timed rounds, then one more whose runs sample the memory (not timed: see measure)
    for rep in range(repeat + 1):
        timed = rep < repeat
        row("template", pytest_cmd + ["tests/dags/test_dag_example.py", "-p", "no:cacheprovider"])
        row("single-dagbag", pytest_cmd + ["tests/test_single_dagbag.py", "-p", "no:cacheprovider"])
        row("pytest-floor", pytest_cmd + ["tests/test_floor.py", "-p", "no:cacheprovider"])
        row("pytest-floor-per-file", pytest_cmd + FLOOR_PER_FILE + ["-p", "no:cacheprovider"])
        (root / "pyproject.toml").write_text(DEFAULTS)
        shutil.rmtree(root / ".pytest_cache", ignore_errors=True)
        row("ours-cold", ours, parsed=True)
        row("ours-warm", ours, parsed=True)
        edit_one(root, rep)
        result = row("ours-1-dag", ours, parsed=True)
        changed = _report_files(root / "report.json")
        result["parsed_exactly_it"] = sorted(f for f, p in changed.items() if p) == ["dags/dag_0001.py"]
        helpers = root / "include" / "helpers.py"
        helpers.write_text(helpers.read_text() + f"\n\nVERSION_{rep} = 2\n")
        result = row("ours-include", ours, parsed=True)
        changed = _report_files(root / "report.json")
        result["parsed_exactly_importers"] = sorted(f for f, p in changed.items() if p) == facts["helpers_importers"]
        result["importers"] = len(facts["helpers_importers"])
        if policies_off:  # an ablation: what the default DAG policies cost
            (root / "pyproject.toml").write_text(POLICIES_OFF)
            shutil.rmtree(root / ".pytest_cache", ignore_errors=True)
            row("ablation-policies-off-cold", ours, parsed=True)
            row("ablation-policies-off-warm", ours, parsed=True)
        if ablations:
            # what the engine's tuning buys: no preloading of the DAG files' third-party imports;
            # a fresh fork per file instead of batches
            for name, setting in (("ablation-no-preload-cold", "preload = false"),
                                  ("ablation-fork-per-file-cold", 'isolation = "file"')):
                (root / "pyproject.toml").write_text(DEFAULTS + f"[tool.pytest-astro]\n{setting}\n")
                shutil.rmtree(root / ".pytest_cache", ignore_errors=True)
                row(name, ours)
    (root / "pyproject.toml").write_text(DEFAULTS)
    counted = _count_rows(root, env, pytest_cmd, ours, bytecode, workdir, instructions) if instructions else {}
    rows: dict[str, dict] = {}
    for name, results in runs.items():
        ordered = sorted(results, key=lambda r: r["seconds"])
        rows[name] = dict(ordered[len(ordered) // 2])
        rows[name]["runs"] = [r["seconds"] for r in results]
        for check in ("parsed_exactly_it", "parsed_exactly_importers"):
            if check in rows[name]:
                rows[name][check] = all(r[check] for r in results + [memory.get(name, {check: True})])
        for figure in ("peak_rss", "peak_pss", "processes", "sandbox_started"):
            rows[name][figure] = memory[name][figure] if name in memory else 0
    if ablations:
        # naive isolation, a fresh interpreter per file (sampled, scaled to n files on all cores)
        sample = sorted((root / "dags").glob("*.py"))[:10]
        started = time.perf_counter()
        for path in sample:
            subprocess.run([sys.executable, "-c", SPAWN_ONE, str(root), str(path)], cwd=root, env=env,
                           capture_output=True)
        per_file = (time.perf_counter() - started) / len(sample)
        rows["spawn-per-file-est"] = {"seconds": round(per_file * n / (os.cpu_count() or 1), 3), "peak_rss": 0,
                                      "peak_pss": 0, "processes": 0, "exit": 0, "sandbox_started": False,
                                      "summary": [f"{per_file:.2f} s per file, from {len(sample)} files"]}
    base = rows["single-dagbag"]
    for row in rows.values():
        row["x_single"] = round(row["seconds"] / base["seconds"], 3) if base["seconds"] else None
        row["mem_x_single"] = round(row["peak_pss"] / base["peak_pss"], 3) if base["peak_pss"] and row["peak_pss"] else None
    rows["ours-cold"]["x_template"] = round(rows["ours-cold"]["seconds"] / rows["template"]["seconds"], 3)
    for name, count in counted.items():
        rows[name]["instructions"] = count
    floor, single = counted.get("pytest-floor-per-file"), counted.get("single-dagbag")
    for name, count in counted.items():
        if count and single:
            rows[name]["instructions_x_single"] = round(count / single, 3)
    if counted.get("ours-warm") and floor:
        rows["ours-warm"]["instructions_x_floor_per_file"] = round(counted["ours-warm"] / floor, 3)
    return rows


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f}"


def table(results: dict) -> str:
    lines = [f"{results['machine']}; load before: {results['load_before']}; heavy imports: "
             f"{', '.join(results['heavy']) or 'none installed'}", "",
             "Rows named ours-* run the default settings (the default DAG policies on); ablation-* rows change "
             "one setting.", "",
             "| files | approach | wall s | x single-dagbag | G instructions | x single-dagbag | peak PSS MiB | x single "
             "| peak RSS sum MiB | notes |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n, rows in results["sizes"].items():
        for name, r in rows.items():
            notes = []
            if "parsed" in r:
                notes.append(f"{r['parsed']} parsed")
            if "parsed_exactly_importers" in r:
                notes.append(f"exactly its {r['importers']} importers: {'yes' if r['parsed_exactly_importers'] else 'NO'}")
            if "parsed_exactly_it" in r:
                notes.append(f"exactly that file: {'yes' if r['parsed_exactly_it'] else 'NO'}")
            if name.startswith(("ours", "ablation")):
                notes.append("sandbox started" if r["sandbox_started"] else "no sandbox, no Airflow")
            if "x_template" in r:
                notes.append(f"{r['x_template']:.2f}x template")
            if len(r.get("runs", [])) > 1:
                notes.append(f"median of {len(r['runs'])}: {min(r['runs']):.2f}-{max(r['runs']):.2f} s")
            if r.get("instructions_x_floor_per_file"):
                notes.append(f"{r['instructions_x_floor_per_file']:.3f}x pytest-floor-per-file's instructions")
            if r["exit"] != 0:
                notes.append(f"exit {r['exit']}")
            if name == "spawn-per-file-est":
                notes = r["summary"]
            mem = (f"{_mib(r['peak_pss'])} | {r['mem_x_single']:.2f} | {_mib(r['peak_rss'])}" if r["peak_pss"]
                   else "- | - | -")
            instr = (f"{r['instructions'] / 1e9:.2f} | {r['instructions_x_single']:.3f}" if r.get("instructions")
                     and r.get("instructions_x_single") else "- | -")
            lines.append(f"| {n} | {name} | {r['seconds']:.2f} | {r['x_single']:.2f} | {instr} | {mem} | {'; '.join(notes)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--json", default="bench/results.json", help="where to write the results")
    parser.add_argument("--bytecode", choices=("warm", "as-is"), default="warm",
                        help="warm: every approach gets compiled bytecode of the installed packages (as after "
                             "pip install); as-is: whatever this environment has")
    parser.add_argument("--ablations", action="store_true",
                        help="also: ours without preloading, and a fresh interpreter per file (estimated)")
    parser.add_argument("--no-policies-off", action="store_true",
                        help="skip the ablation rows with every DAG policy off")
    parser.add_argument("--instructions", action="store_const", const="warm", default="",
                        help="also count the instructions of single-dagbag, the floors, ours-warm and ours-1-dag "
                             "(needs valgrind)")
    parser.add_argument("--instructions-cold", dest="instructions", action="store_const", const="cold",
                        help="as --instructions, and ours-cold too (slow)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every approach this many times (interleaved) and keep each one's median")
    parser.add_argument("--workdir", default=None, help="keep the generated projects here (default: a temp dir)")
    args = parser.parse_args(argv)
    heavy = heavy_modules()
    results = {"machine": f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}, "
                          f"bytecode {args.bytecode}",
               "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()), "heavy": heavy, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="pytest-astro-bench-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for n in args.files:
            results["sizes"][str(n)] = run_size(n, workdir, heavy, not args.no_policies_off, args.bytecode, args.ablations,
                                                args.repeat, args.instructions)
            print(f"{n} files done", file=sys.stderr)
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = table(results)
    print(text)
    results["markdown"] = text
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
