"""No false verdicts: DAG files that stock Airflow accepts pass, and a bug of ours never reads as the
user's failure (issue 18). Each input here is one that failed before: a latin-1 file with a coding
cookie, a BOM and CRLF file, a long chain of tasks, a file that starts many idle threads, DAGs from a
factory in include/, a DAG with no source line, ids with every character Airflow allows."""

from __future__ import annotations

import resource
import textwrap

import pytest

from pytest_astro.policies.builtin import find_cycle
from tests.conftest import AIRFLOW_MAJOR, run_cli

SDK = "airflow.sdk" if AIRFLOW_MAJOR >= 3 else "airflow"
#: passes the default policies: tags, retries, an explicit schedule, a fixed start_date
GOOD = f'''
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{{dag_id}}", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"],
         default_args={{{{"retries": 2}}}}):
    EmptyOperator(task_id="t")
'''


def _write(root, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))


# --------------------------------------------------------------------------------------------
# Source read as Python reads it


LATIN1 = f'''# -*- coding: latin-1 -*-
from datetime import datetime, timedelta
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

# pytest-astro: ignore[DAG002] l'équipe de José ajoute les tags au prochain sprint
with DAG("latin1", start_date=datetime(2024, 1, 1), schedule=None, default_args={{"owner": "José", "retries": 2}}):
    EmptyOperator(task_id="t")

START = datetime.now().replace(microsecond=0) - timedelta(days=3)
with DAG("latin1_moving", start_date=START, schedule=None, tags=["ü"], default_args={{"retries": 2}}):
    EmptyOperator(task_id="t")
'''


def test_source_with_a_coding_cookie_a_bom_or_crlf_is_read_as_python_reads_it(pytester):
    """Before: every policy item of the latin-1 file failed with IndexError (config.py), and the
    static start_date reader (DAG007) could not read it."""
    _write(pytester.path, {
        "dags/latin1.py": LATIN1.encode("latin-1"),
        # a byte-order mark and Windows line endings
        "dags/bom_crlf.py": ("\ufeff" + LATIN1.replace("latin-1", "utf-8").replace("latin1", "bom_crlf")
                             ).replace("\n", "\r\n").encode("utf-8"),
    })
    result = pytester.runpytest("--astro-dags")
    out = result.stdout.str()
    assert "IndexError" not in out and "UnicodeDecodeError" not in out, out
    for name in ("latin1", "bom_crlf"):
        # the exemption comment above the DAG was read (the DAG has no tags): exempted, with its reason
        result.stdout.fnmatch_lines([f"exempted: dags/{name}.py:7: DAG002 {name}: * [[]exempt at dags/{name}.py:6: "
                                     "l'équipe de José*"])
        # the start_date computed from now() is found in the source (no microseconds, three days ago)
        result.stdout.fnmatch_lines([f"dags/{name}.py:11: DAG007 {name}_moving: start_date is computed at parse "
                                     "time (datetime.now())*"])
    # one item per file, each failing on its DAG007 finding alone
    result.assert_outcomes(failed=2)


# --------------------------------------------------------------------------------------------
# Graphs of any size


def test_find_cycle_is_iterative_on_a_chain_of_100000_tasks():
    ids = [f"t{i}" for i in range(100_000)]
    chain = [[a, b] for a, b in zip(ids, ids[1:])]
    assert find_cycle(ids, chain) is None
    cycle = find_cycle(ids, chain + [[ids[-1], ids[50_000]]])
    assert cycle[0] == cycle[-1] == ids[50_000] and len(cycle) == 50_001
    # and still right on the small cases
    assert find_cycle(["a", "b"], [["a", "b"], ["b", "a"]]) == ["a", "b", "a"]
    assert find_cycle(["a", "b", "c", "d"], [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"]]) is None
    assert find_cycle(["a"], [["a", "a"]]) == ["a", "a"]


CHAIN = f'''
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("long_chain", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"], default_args={{"retries": 2}}):
    previous = EmptyOperator(task_id="step_0")
    for i in range(1, 3000):
        task = EmptyOperator(task_id=f"step_{{i}}")
        previous >> task
        previous = task
'''


def test_a_dag_of_one_long_chain_passes(pytester):
    """Before: no_cycles failed with RecursionError (a recursive depth-first search)."""
    _write(pytester.path, {"dags/long_chain.py": CHAIN})
    result = pytester.runpytest("--astro-dags", "-v", "--astro-timeout", "120")
    result.stdout.fnmatch_lines(["*dags/long_chain.py::astro PASSED*"])  # no_cycles among its default policies
    result.assert_outcomes(passed=1)


# --------------------------------------------------------------------------------------------
# Memory: resident, not address space

THREADS = f'''
import threading
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

# a client library's worker pool: 400 idle threads, each reserving a stack of address space
_stop = threading.Event()
POOL = [threading.Thread(target=_stop.wait, daemon=True) for _ in range(400)]
for thread in POOL:
    thread.start()

with DAG("thread_pool", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"], default_args={{"retries": 2}}):
    EmptyOperator(task_id="t")
'''

HOG = '''
from airflow import DAG  # noqa: F401

BLOCKS = []
for _ in range(16):
    BLOCKS.append(b"x" * (64 * 1024 * 1024))  # touched: resident, 1 GiB in all
'''


def _enough_threads() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    return soft == resource.RLIM_INFINITY or soft > 2000


@pytest.mark.skipif(not _enough_threads(), reason="RLIMIT_NPROC too low to start 400 threads here")
def test_memory_limit_is_on_resident_memory_not_address_space(tmp_path):
    """Before: the thread-pool file failed with "can't start new thread" (RLIMIT_AS counted its
    stacks). A file that touches more than the limit still fails, with its peak and its line."""
    _write(tmp_path, {
        "pyproject.toml": '[tool.pytest-astro]\nmemory_limit = "512MiB"\ntimeout = 60\n',
        "dags/thread_pool.py": THREADS,
        "dags/hog.py": HOG,
        "dags/good.py": GOOD.format(dag_id="good"),
    })
    result = run_cli("parse", "--no-cache", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "thread_pool" not in result.stdout, result.stdout  # passed
    lines = pytest.LineMatcher(result.stdout.splitlines())
    lines.fnmatch_lines(["dags/hog.py:5: MemoryError: used * at import, over the 512 MiB limit"])
    assert "3 DAG files parsed (0 from cache), 1 failed, 2 DAGs" in result.stderr

    # the address-space limit is still there for who asks for it: then the thread pool fails
    (tmp_path / "pyproject.toml").write_text('[tool.pytest-astro]\nmemory_limit = 0\naddress_space_limit = "512MiB"\n')
    result = run_cli("parse", "--no-cache", "dags/thread_pool.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "can't start new thread" in result.stdout, result.stdout


# --------------------------------------------------------------------------------------------
# DAGs from elsewhere, DAGs with no line, any id Airflow allows

FACTORY = f'''
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator


def make_dag(dag_id):
    with DAG(dag_id, start_date=datetime(2024, 1, 1), schedule=None, tags=["t"], default_args={{"retries": 2}}) as dag:
        EmptyOperator(task_id="t")
    return dag
'''

ODD_IDS = f'''
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

from include.factory import make_dag
from include.module_level import shared  # a DAG object made at import of another module

# made by a factory in include/: its frames are in include/factory.py, its line here
for team in ("équipe.ventes-2024", "日本語_チーム"):
    globals()[team] = make_dag(team)

with DAG("ids.with-every_char.ÄÖÜ", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"],
         default_args={{"retries": 2}}):
    EmptyOperator(task_id="load.step-1") >> EmptyOperator(task_id="ünïcödé_task")

# made in a worker thread: no frame of this file is on its stack, so it has no source line
with ThreadPoolExecutor(1) as pool:
    threaded = pool.submit(make_dag, "made_in_a_thread").result()
'''


def test_dags_from_other_modules_without_a_line_and_with_any_ids_pass(pytester):
    _write(pytester.path, {
        "include/__init__.py": "",
        "include/factory.py": FACTORY,
        "include/module_level.py": "from include.factory import make_dag\nshared = make_dag('from_include')\n",
        "dags/odd_ids.py": ODD_IDS,
    })
    result = pytester.runpytest("--astro-dags", "-v", "--astro-report", "report.json")
    out = result.stdout.str()
    assert "Error" not in out, out
    # one item: the file parses and its 5 DAGs pass the default policies
    result.assert_outcomes(passed=1)
    import json

    report = json.loads((pytester.path / "report.json").read_text())
    lines = {d["dag_id"]: (d["file"], d["line"]) for f in report["files"] for d in f["dags"]}
    assert lines == {
        "équipe.ventes-2024": ("dags/odd_ids.py", 11), "日本語_チーム": ("dags/odd_ids.py", 11),
        "ids.with-every_char.ÄÖÜ": ("dags/odd_ids.py", 13), "from_include": ("dags/odd_ids.py", 7),
        "made_in_a_thread": ("dags/odd_ids.py", None),
    }, lines


# --------------------------------------------------------------------------------------------
# A bug of ours is ours

BREAKS_US = f'''
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
import pytest_astro.parse.adapter


def schedule_of(self, dag):
    raise KeyError("schedule")


# stands in for a bug in our summary code: it fails after the import, on a valid DAG
pytest_astro.parse.adapter._Adapter.schedule_of = schedule_of

with DAG("victim", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="t")
'''


def test_a_failure_of_our_sandbox_code_is_an_internal_error_and_parse_exits_3(tmp_path):
    """Before: reported as the DAG file's own KeyError (exit status 1)."""
    _write(tmp_path, {"dags/breaks_us.py": BREAKS_US, "dags/good.py": GOOD.format(dag_id="good"),
                      "dags/broken.py": "from airflow import DAG\nraise ValueError('mine')\n"})
    result = run_cli("parse", "--no-cache", cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    lines = pytest.LineMatcher(result.stdout.splitlines())
    lines.fnmatch_lines([
        "dags/breaks_us.py: InternalError: pytest-astro's pytest_astro/parse/adapter.py (summarize) failed on "
        "DAG 'victim' of dags/breaks_us.py: KeyError: 'schedule'; this is a bug in pytest-astro, not in your "
        "DAG; please report it with the traceback below",
        "Traceback (pytest-astro):",
        '  File "pytest_astro/parse/adapter.py", line *, in summarize',
    ])
    # the run went on: the user's own failure is still the user's, the good file passed
    lines.fnmatch_lines(["dags/broken.py:2: ValueError: mine"])
    assert "good" not in result.stdout
    assert "3 DAG files parsed (0 from cache), 2 failed, 1 DAGs" in result.stderr
    assert "internal error on 1 file(s)" in result.stderr


# --------------------------------------------------------------------------------------------
# Paths as in the Astro runtime

RUNTIME_PATHS_TEST = '''
import os


def test_paths_are_the_runtimes(dagbag):
    from airflow import settings

    home = os.environ["AIRFLOW_HOME"]
    assert os.path.realpath(home) == os.path.realpath(os.getcwd())  # the project root
    assert os.path.realpath(settings.AIRFLOW_HOME) == os.path.realpath(home)
    assert os.path.relpath(dagbag.dags["reads_home"].fileloc, home) == "dags/reads_home.py"
    # the Astro CLI's test template names each import error by its path relative to AIRFLOW_HOME
    assert [os.path.relpath(p, home) for p in dagbag.import_errors] == ["dags/broken.py"]
'''

READS_HOME = GOOD.format(dag_id="reads_home") + '''
import os
# the Astro runtime's AIRFLOW_HOME is the project folder (/usr/local/airflow): DAG code reads from it
with open(os.path.join(os.environ["AIRFLOW_HOME"], "include", "tables.txt")) as fh:
    TABLES = fh.read().split()
'''


def test_dag_code_and_users_tests_see_the_runtimes_paths(pytester):
    """Before: AIRFLOW_HOME was a temporary folder: the DAG file failed with FileNotFoundError and
    paths relative to it read ../../tmp/.../dags/x.py. Nothing Airflow writes lands in the project."""
    _write(pytester.path, {
        "include/tables.txt": "orders customers\n",
        "dags/reads_home.py": READS_HOME,
        "dags/broken.py": "from airflow import DAG\nraise ValueError('no')\n",
        "tests/test_paths.py": RUNTIME_PATHS_TEST,
    })
    before = {p for p in pytester.path.rglob("*")}
    result = pytester.runpytest_subprocess("--astro-dags", "-v")
    result.stdout.fnmatch_lines(["*dags/reads_home.py::astro PASSED*", "*test_paths_are_the_runtimes PASSED*"])
    ignored = {"__pycache__", ".pytest_cache", "runpytest-0", "runpytest-current", "stdout", "stderr"}  # pytester's
    new = sorted(str(p.relative_to(pytester.path)) for p in set(pytester.path.rglob("*")) - before
                 if not ignored & set(p.parts))
    assert new == [], new  # no airflow.cfg, logs/ or airflow.db in the project


# --------------------------------------------------------------------------------------------
# Several DAGs in one file

REFUSED_TWICE = f'''
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("cyclic", start_date=datetime(2024, 1, 1), schedule=None):
    a = EmptyOperator(task_id="a")
    a >> EmptyOperator(task_id="b") >> a

with DAG("bad_cron", start_date=datetime(2024, 1, 1), schedule="not a cron expression"):
    EmptyOperator(task_id="t")

with DAG("cyclic_too", start_date=datetime(2024, 1, 1), schedule=None):
    a = EmptyOperator(task_id="a")
    a >> a

with DAG("bad_cron_too", start_date=datetime(2024, 1, 1), schedule="not a cron expression"):
    EmptyOperator(task_id="t")
'''

#: DAGs at lines 5 to 10 whose ids are not in line order, then three made on one line (13)
MANY = f'''
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

zulu = DAG("zulu", start_date=datetime(2024, 1, 1), schedule=None)
alpha = DAG("alpha", start_date=datetime(2024, 1, 1), schedule=None)
mike = DAG("mike", start_date=datetime(2024, 1, 1), schedule=None)
bravo = DAG("bravo", start_date=datetime(2024, 1, 1), schedule=None)
yankee = DAG("yankee", start_date=datetime(2024, 1, 1), schedule=None)
charlie = DAG("charlie", start_date=datetime(2024, 1, 1), schedule=None)

for n in (3, 1, 2):
    globals()[f"loop_{{n}}"] = DAG(f"loop_{{n}}", start_date=datetime(2024, 1, 1), schedule=None)
'''


def test_every_dag_airflow_refuses_is_reported_and_dags_come_in_line_order(tmp_path):
    """Before: of two DAGs Airflow refuses in one file, one was reported (the one a stock DagBag
    happened to record last), and a file's DAGs came in the order of a set, which varies between
    processes."""
    copies = {f"dags/refused_{i}.py": REFUSED_TWICE for i in range(4)}  # each its own module: its own order
    _write(tmp_path, {**copies, "dags/many.py": MANY})
    result = run_cli("parse", "--no-cache", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    import json

    files = {f["file"]: f for f in json.loads(result.stdout)["files"]}
    for name in copies:
        assert [(e["type"], e["line"]) for e in files[name]["errors"]] == [
            ("AirflowDagCycleException", 5), ("AirflowTimetableInvalid", 9), ("AirflowDagCycleException", 12),
            ("AirflowTimetableInvalid", 16)], files[name]["errors"]
    assert [(d["dag_id"], d["line"]) for d in files["dags/many.py"]["dags"]] == [
        ("zulu", 5), ("alpha", 6), ("mike", 7), ("bravo", 8), ("yankee", 9), ("charlie", 10),
        ("loop_1", 13), ("loop_2", 13), ("loop_3", 13)]
    # as the terminal shows them: every refusal, each at its DAG's line
    result = run_cli("parse", "--no-cache", "dags/refused_0.py", cwd=tmp_path)
    cycle = f"AirflowDagCycleException: Cycle detected in {'Dag' if AIRFLOW_MAJOR >= 3 else 'DAG'}"
    cron = "AirflowTimetableInvalid: Exactly 5, 6 or 7 columns has to be specified for iterator expression."
    assert result.stdout.splitlines() == [
        f"dags/refused_0.py:5: {cycle}: cyclic. Faulty task: b", f"dags/refused_0.py:9: {cron}",
        f"dags/refused_0.py:12: {cycle}: cyclic_too. Faulty task: a", f"dags/refused_0.py:16: {cron}",
    ], result.stdout


TWICE = f'''
from datetime import datetime
from {SDK} import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("twice", start_date=datetime(2024, 1, 1), schedule=None, default_args={{"retries": 2}}):
    EmptyOperator(task_id="first")

with DAG("twice", start_date=datetime(2024, 1, 1), schedule=None, default_args={{"retries": 2}}):
    EmptyOperator(task_id="second")
'''


def test_a_dag_id_made_twice_in_a_file_is_checked_once(pytester):
    """Before: both DAGs were checked and reported (each policy finding twice); a DagBag keeps one
    of them, which one varies between processes. The last one made is checked, with a warning."""
    _write(pytester.path, {"dags/twice.py": TWICE})
    result = pytester.runpytest("--astro-dags", "--astro-report", "report.json", "-W", "default")
    result.assert_outcomes(failed=1)
    # no tags (DAG002): one finding, at the line of the second DAG
    findings = [line for line in result.stdout.lines if line.startswith("dags/twice.py:") and "DAG002" in line]
    assert [line.split(" DAG002")[0] for line in findings] == ["dags/twice.py:8:"], result.stdout.str()
    result.stdout.fnmatch_lines(["*AstroParseWarning: dags/twice.py:8: dag_id 'twice' is made 2 times in this "
                                 "file (lines 5, 8): Airflow keeps one of them, not always the same one; "
                                 "pytest-astro checks the last one made*"])
    import json

    report = json.loads((pytester.path / "report.json").read_text())
    assert [(d["dag_id"], d["line"], d["task_ids"]) for f in report["files"] for d in f["dags"]] == [
        ("twice", 8, ["second"])]


# --------------------------------------------------------------------------------------------
# Users' tests: DagBag.get_dag without a database

GET_DAG_TEST = '''
import pytest


def test_get_dag_answers_from_the_bag(dagbag):
    assert dagbag.get_dag("answered") is dagbag.dags["answered"]
    assert dagbag.get_dag("not_a_dag") is None


def test_get_dag_on_a_bag_of_the_users_own():
    from airflow.models import DagBag

    bag = DagBag(include_examples=False)
    assert bag.get_dag("answered").dag_id == "answered"


@pytest.mark.astro_db
def test_marked_get_dag_asks_the_database(dagbag):
    # allowed to connect to a database with no tables: stock's own query runs, and fails there
    with pytest.raises(Exception, match="no such table"):
        dagbag.get_dag("answered")
'''


def test_get_dag_in_users_tests_answers_without_the_database(pytester):
    """Before: ``dagbag.get_dag(...)`` failed with MetadataDatabaseAccess (stock asks the database
    whether the DAG expired)."""
    _write(pytester.path, {"dags/answered.py": GOOD.format(dag_id="answered"), "tests/test_get.py": GET_DAG_TEST})
    # a subprocess: these tests import Airflow into the pytest process
    result = pytester.runpytest_subprocess("--astro-dags", "-v", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*test_get_dag_answers_from_the_bag PASSED*",
                                 "*test_get_dag_on_a_bag_of_the_users_own PASSED*",
                                 "*test_marked_get_dag_asks_the_database PASSED*"])
    result.assert_outcomes(passed=4)
