"""Shards: the split (every file in exactly one shard, deterministic, balanced), CI detection,
the durations file, and checking N shard reports together."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest

from pytest_astro.selection import also_parse, literal_dag_ids
from pytest_astro.sharding import (
    CI_VARIABLES,
    Shard,
    ShardError,
    check_shard_reports,
    from_ci,
    load_durations,
    parse_shard,
    report_section,
    shard_files,
    split,
    split_key,
    store_durations,
)
from tests.conftest import AIRFLOW_MAJOR, REPO, run_cli


def _project(rng: random.Random, n: int) -> tuple[list[str], dict[str, float]]:
    files = [f"dags/{'team_%d/' % rng.randrange(5) if rng.random() < 0.3 else ''}dag_{i:05d}.py" for i in range(n)]
    # mostly small files, a few slow ones (a heavy import), some never measured
    durations = {f: (rng.uniform(1.0, 4.0) if rng.random() < 0.02 else rng.uniform(0.005, 0.08))
                 for f in files if rng.random() < 0.9}
    return files, durations


@pytest.mark.parametrize("seed", range(25))
def test_every_file_lands_in_exactly_one_shard_the_same_way_every_time(seed):
    rng = random.Random(seed)
    files, durations = _project(rng, rng.randrange(0, 400))
    total = rng.randrange(1, 9)
    shards = split(files, durations, total)
    assert len(shards) == total
    flat = [f for s in shards for f in s]
    assert sorted(flat) == sorted(set(files)) and len(flat) == len(set(flat))
    # the order files come in, duplicates, and which job computes it change nothing
    shuffled = files[:] + files[: len(files) // 3]
    rng.shuffle(shuffled)
    assert split(shuffled, dict(reversed(list(durations.items()))), total) == shards
    assert split_key(shuffled, durations, total) == split_key(files, durations, total)
    for k in range(1, total + 1):
        assert shard_files(files, durations, Shard(k, total)) == shards[k - 1]


@pytest.mark.parametrize("seed", range(10))
def test_shards_are_balanced_by_measured_parse_time(seed):
    rng = random.Random(100 + seed)
    files, durations = _project(rng, 2000)
    durations = {f: durations.get(f, 0.04) for f in files}  # all measured: the balance is exact to check
    for total in (2, 4, 7):
        loads = [sum(durations[f] for f in s) for s in split(files, durations, total)]
        mean = sum(loads) / total
        # longest processing time first: no shard is more than the largest single file above the mean
        assert max(loads) - mean <= max(durations.values()) + 1e-6
        assert max(loads) / mean < 1.05
        # while splitting by count alone (round-robin over sorted names) is far off on the same files
    counted = [sum(durations[f] for f in sorted(files)[i::4]) for i in range(4)]
    weighed = [sum(durations[f] for f in s) for s in split(files, durations, 4)]
    assert max(weighed) <= max(counted)


def test_a_slow_file_gets_a_shard_of_its_own():
    durations = {"dags/slow.py": 10.0, **{f"dags/f{i}.py": 1.0 for i in range(10)}}
    shards = split(durations, durations, 2)
    assert ["dags/slow.py"] in shards
    assert sorted(len(s) for s in shards) == [1, 10]


def test_unmeasured_files_weigh_the_mean_of_the_measured():
    durations = {"dags/a.py": 3.0, "dags/b.py": 1.0}  # mean 2: c and d weigh 2 each
    shards = split(["dags/a.py", "dags/b.py", "dags/c.py", "dags/d.py"], durations, 2)
    assert shards == [["dags/a.py", "dags/b.py"], ["dags/c.py", "dags/d.py"]]
    # no measurement at all: by count
    assert [len(s) for s in split([f"dags/{i}.py" for i in range(9)], {}, 3)] == [3, 3, 3]


def test_more_shards_than_files_leaves_some_empty():
    assert split(["dags/a.py"], {}, 3) == [["dags/a.py"], [], []]
    assert split([], {}, 2) == [[], []]


def test_the_split_key_changes_with_the_files_or_their_durations():
    files = ["dags/a.py", "dags/b.py"]
    key = split_key(files, {"dags/a.py": 1.0}, 2)
    assert split_key(files + ["dags/c.py"], {"dags/a.py": 1.0}, 2) != key
    assert split_key(files, {"dags/a.py": 2.0}, 2) != key
    assert split_key(files, {"dags/a.py": 1.0}, 3) != key
    assert split_key(files, {"dags/a.py": 1.0001}, 2) == key  # the same to the millisecond


@pytest.mark.parametrize("value, shard", [
    ("2/4", Shard(2, 4)), (" 1/1 ", Shard(1, 1)), ("4/4", Shard(4, 4)), ("", None), (None, None)])
def test_parse_shard(value, shard):
    assert parse_shard(value, env={}) == shard


@pytest.mark.parametrize("value", ["0/4", "5/4", "2", "a/b", "2/0", "1/-1", "two/four"])
def test_parse_shard_refuses_what_is_not_a_shard(value):
    with pytest.raises(ShardError, match="--astro-shard"):
        parse_shard(value, env={})


@pytest.mark.parametrize("env, expected", [
    # GitLab `parallel: 4`: CI_NODE_INDEX 1..4
    ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, (1, 4, "GitLab CI")),
    ({"CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "4"}, (4, 4, "GitLab CI")),
    # CircleCI `parallelism: 3`: CIRCLE_NODE_INDEX 0..2
    ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "3"}, (1, 3, "CircleCI")),
    ({"CIRCLE_NODE_INDEX": "2", "CIRCLE_NODE_TOTAL": "3"}, (3, 3, "CircleCI")),
    # Azure `strategy: parallel: 2`: System.JobPositionInPhase 1..2
    ({"SYSTEM_JOBPOSITIONINPHASE": "2", "SYSTEM_TOTALJOBSINPHASE": "2"}, (2, 2, "Azure Pipelines")),
    # Bitbucket parallel steps: BITBUCKET_PARALLEL_STEP 0..N-1
    ({"BITBUCKET_PARALLEL_STEP": "0", "BITBUCKET_PARALLEL_STEP_COUNT": "5"}, (1, 5, "Bitbucket Pipelines")),
    ({"BITBUCKET_PARALLEL_STEP": "4", "BITBUCKET_PARALLEL_STEP_COUNT": "5"}, (5, 5, "Bitbucket Pipelines")),
])
def test_auto_reads_each_ci_systems_parallel_job_variables(env, expected):
    shard = parse_shard("auto", env={"CI": "true", **env})
    assert (shard.index, shard.total) == expected[:2] and shard.source.startswith(expected[2])


@pytest.mark.parametrize("env", [
    {}, {"CI_NODE_TOTAL": "1"},  # a GitLab job without `parallel:` has CI_NODE_TOTAL=1 and no index
    {"SYSTEM_JOBPOSITIONINPHASE": "1", "SYSTEM_TOTALJOBSINPHASE": "1"},  # an Azure job that is not sliced
    {"GITHUB_ACTIONS": "true"},  # no native variables: a matrix passes --astro-shard K/N
])
def test_auto_outside_a_parallel_job_is_no_shard(env):
    assert parse_shard("auto", env=env) is None


def test_auto_refuses_variables_that_are_no_shard():
    with pytest.raises(ShardError, match="CIRCLE_NODE_INDEX='3'"):
        from_ci({"CIRCLE_NODE_INDEX": "3", "CIRCLE_NODE_TOTAL": "3"})  # 0-based: 3 of 3 does not exist
    with pytest.raises(ShardError, match="CI_NODE_INDEX='0'"):
        from_ci({"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "2"})  # 1-based


def test_every_provider_is_listed_once():
    assert len({name for name, *_ in CI_VARIABLES}) == len(CI_VARIABLES) == 4


def test_durations_file_round_trip(tmp_path):
    path = tmp_path / "durations.json"
    assert load_durations(path) == {}
    written = store_durations(path, {"dags/a.py": 0.12345678, "dags/gone.py": 1.0},
                              {"dags/b.py": 0.5, "dags/a.py": 9.0}, ["dags/a.py", "dags/b.py", "dags/c.py"])
    # measured wins over what was there; removed files are dropped; unmeasured ones stay unmeasured
    assert written == {"dags/a.py": 0.1235, "dags/b.py": 0.5}
    assert load_durations(path) == written
    assert path.read_text().count("\n") == 7  # one line per file: a small diff when one changes


def test_a_broken_durations_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "durations.json"
    path.write_text("{not json")
    with pytest.raises(ShardError, match=r"durations\.json:1: not a pytest-astro durations file"):
        load_durations(path)
    path.write_text(json.dumps({"files": ["dags/a.py"]}))
    with pytest.raises(ShardError, match="--astro-store-durations"):
        load_durations(path)


def _report(shard: Shard, files: list[str], owned: list[str], key: str = "k", ids=None) -> dict:
    ids = ids or {}
    return {"shard": report_section(shard, key, owned, None),
            "files": [{"file": f, "ok": True, "dag_ids": ids.get(f, [f.split("/")[-1][:-3]])} for f in files]}


def test_shard_reports_that_add_up():
    a, b = ["dags/a.py", "dags/c.py"], ["dags/b.py"]
    assert check_shard_reports([_report(Shard(1, 2), a, a), _report(Shard(2, 2), b, b)]) == []


def test_shard_reports_that_do_not_add_up():
    a, b = ["dags/a.py", "dags/c.py"], ["dags/b.py"]
    problems = check_shard_reports([_report(Shard(1, 2), a, a), _report(Shard(1, 2), a, a)])
    assert "shards [1, 1] reported, expected each of 1..2 once" in problems
    assert "dags/a.py: parsed 2 times across the shards, expected once" in problems
    problems = check_shard_reports([_report(Shard(1, 2), a[:1], a), _report(Shard(2, 2), b, b, key="other")])
    assert any("different splits" in p for p in problems)
    assert "dags/c.py: parsed 0 times across the shards, expected once" in problems
    problems = check_shard_reports([_report(Shard(1, 2), a + b, a), _report(Shard(2, 2), [], b)])
    assert "dags/b.py: reported by shard 1/2 but belongs to shard 2" in problems
    assert check_shard_reports([{"files": []}]) != []


def test_a_dag_id_in_two_shards_is_found_in_their_reports():
    a, b = ["dags/a.py"], ["dags/b.py"]
    ids = {"dags/a.py": ["shared"], "dags/b.py": ["shared", "own"]}
    problems = check_shard_reports([_report(Shard(1, 2), a, a, ids=ids), _report(Shard(2, 2), b, b, ids=ids)])
    assert problems == ["dag_id 'shared' is defined in dags/a.py, dags/b.py: Airflow keeps only one"]


# ------------------------------------------------------------------ the static pass of a partial run

LITERAL_DAGS = '''
from airflow.sdk import DAG, dag
from airflow import models

with DAG("classic", schedule=None):
    pass
with models.DAG(dag_id='keyword', schedule=None):
    pass
etl = DAG(
    "multi_line",
)
TriggerDagRunOperator(task_id="t", trigger_dag_id="other_team")   # names another DAG
ExternalTaskSensor(task_id="s", external_dag_id="upstream")
for region in ("emea", "amer"):
    with DAG(f"dynamic_{region}", schedule=None):                # made at run time: not a literal
        pass

@dag(schedule=None)
def taskflow_one():
    pass

@dag(
    dag_id="taskflow_named",
    schedule=None,
)
def named():
    pass
'''


def test_literal_dag_ids_reads_what_the_source_spells_out():
    ids = literal_dag_ids(LITERAL_DAGS)
    assert {"classic", "keyword", "multi_line", "taskflow_one", "taskflow_named"} <= ids
    assert not ids & {"other_team", "upstream", "emea", "amer"}
    assert not any(i.startswith("dynamic") for i in ids)


def test_also_parse_picks_the_files_that_spell_out_a_selected_files_id(tmp_path):
    files = {"a.py": 'DAG("shared")\n', "b.py": 'DAG(dag_id="shared")\n', "c.py": 'DAG("own")\n',
             "d.py": 'TriggerDagRunOperator(trigger_dag_id="shared")\n', "e.py": "@dag()\ndef shared():\n    pass\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    others = [tmp_path / n for n in ("b.py", "c.py", "d.py", "e.py")]
    assert also_parse([tmp_path / "a.py"], others) == [tmp_path / "b.py", tmp_path / "e.py"]
    assert also_parse([tmp_path / "c.py"], [tmp_path / "a.py", tmp_path / "b.py"]) == []


# ------------------------------------------------------------------ real sharded pytest runs

# Each import of a DAG file appends its name to parses.log: how often each file was parsed, in total.
LOGGED = '''
from datetime import datetime
from pathlib import Path
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with open(Path(__file__).parents[1] / "parses.log", "a") as log:
    log.write(Path(__file__).name + "\\n")

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"], default_args={{"retries": 2}}):
    EmptyOperator(task_id="t")
'''

USERS_TESTS = '''
def test_one():
    pass

def test_two():
    pass

def test_three():
    pass
'''


def _for_airflow(source: str) -> str:
    return source if AIRFLOW_MAJOR >= 3 else source.replace("airflow.sdk", "airflow")


def _logged_project(pytester, write_files, ids: dict[str, str], durations: dict[str, float] | None = None):
    source = _for_airflow(LOGGED)
    write_files(pytester.path, {f"dags/{name}": source.format(dag_id=dag_id) for name, dag_id in ids.items()})
    write_files(pytester.path, {"tests/test_users.py": USERS_TESTS})
    if durations is not None:
        store_durations(pytester.path / ".pytest-astro-durations.json", durations, {}, durations)


def _run_shard(pytester, k: int, n: int, *args: str):
    """One shard as one CI job: a runner of its own (no parse cache from the other shards)."""
    shutil.rmtree(pytester.path / ".pytest_cache", ignore_errors=True)
    return pytester.runpytest_subprocess("--astro-dags", "-p", "no:randomly", "--astro-shard", f"{k}/{n}",
                                         "--astro-report", f"report-{k}.json", "-rA", *args)


def _reports(pytester, n: int) -> list[dict]:
    return [json.loads((pytester.path / f"report-{k}.json").read_text()) for k in range(1, n + 1)]


def test_four_shards_parse_each_dag_file_exactly_once(pytester, write_files):
    ids = {f"dag_{i}.py": f"dag_{i}" for i in range(9)}
    _logged_project(pytester, write_files, ids)
    outcomes = []
    for k in range(1, 5):
        result = _run_shard(pytester, k, 4, "-p", "no:pytest-split")
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines([f"astro: shard {k}/4 (--astro-shard): * of 9 DAG files, split by count*"])
        outcomes.append(sum(line.startswith("PASSED tests/") for line in result.stdout.lines))
    parsed = sorted((pytester.path / "parses.log").read_text().split())
    assert parsed == sorted(ids)  # every file once, across the four shards
    reports = _reports(pytester, 4)
    assert check_shard_reports(reports) == []
    assert sum(r["parsed"] for r in reports) == 9
    assert [len(r["shard"]["files"]) for r in reports] == [3, 2, 2, 2]
    checked = run_cli("shards", *(f"report-{k}.json" for k in range(1, 5)), cwd=pytester.path)
    assert checked.returncode == 0 and "4 shards, 9 DAG files, each parsed once" in checked.stdout
    # without pytest-split, users' own tests run in shard 1 (and are deselected in the others)
    assert outcomes == [3, 0, 0, 0]


def test_users_tests_follow_pytest_split_across_the_shards(pytester, write_files):
    pytest.importorskip("pytest_split")
    _logged_project(pytester, write_files, {"a.py": "a", "b.py": "b"})
    ran = []
    for k in (1, 2):
        result = _run_shard(pytester, k, 2)
        assert result.ret == 0, result.stdout.str()
        result.stdout.fnmatch_lines(["*your own tests: pytest-split's group*"])
        ran += [line.split()[1] for line in result.stdout.lines if line.startswith("PASSED tests/")]
        # pytest-split did not split this shard's DAG files again
        assert any(line.startswith("PASSED dags/") for line in result.stdout.lines)
    assert sorted(ran) == [f"tests/test_users.py::test_{n}" for n in ("one", "three", "two")]
    assert sorted((pytester.path / "parses.log").read_text().split()) == ["a.py", "b.py"]
    # pytest-split's own options must agree with the shard
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-shard", "1/2", "--splits", "3", "--group", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--astro-shard 1/2 and pytest-split's --splits 3 --group 1 disagree*"])


def test_a_duplicate_dag_id_split_across_two_shards_is_still_reported(pytester, write_files):
    # longest first over 2 shards: a.py (4 s) -> 1, b.py (3 s) -> 2, c.py -> 2, d.py -> 1
    durations = {"dags/a.py": 4.0, "dags/b.py": 3.0, "dags/c.py": 2.0, "dags/d.py": 1.0}
    _logged_project(pytester, write_files, {"a.py": "shared", "b.py": "shared", "c.py": "c", "d.py": "d"}, durations)
    for k, mine, other in ((1, "a.py", "b.py"), (2, "b.py", "a.py")):
        result = _run_shard(pytester, k, 2, "-p", "no:pytest-split")
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
        result.stdout.fnmatch_lines([f"*split by the parse times in .pytest-astro-durations.json*",
                                     f"dags/{mine}:*: DuplicateDagId: dag_id 'shared' is also defined in dags/{other}:*"])
        report = json.loads((pytester.path / f"report-{k}.json").read_text())
        assert report["also_parsed"] == [f"dags/{other}"]  # parsed for the check, not reported as its own
        assert f"dags/{other}" not in {f["file"] for f in report["files"]}
    reports = _reports(pytester, 2)
    assert [r["shard"]["files"] for r in reports] == [["dags/a.py", "dags/d.py"], ["dags/b.py", "dags/c.py"]]
    assert check_shard_reports(reports) == [
        "dag_id 'shared' is defined in dags/a.py, dags/b.py: Airflow keeps only one"]
    checked = run_cli("shards", "report-1.json", "report-2.json", cwd=pytester.path)
    assert checked.returncode == 1 and "dag_id 'shared' is defined in dags/a.py, dags/b.py" in checked.stdout


def test_auto_takes_the_shard_from_the_ci_and_names_the_reports_after_it(pytester, write_files, monkeypatch):
    _logged_project(pytester, write_files, {"a.py": "a", "b.py": "b", "c.py": "c"})
    monkeypatch.setenv("CI_NODE_INDEX", "2")
    monkeypatch.setenv("CI_NODE_TOTAL", "2")
    result = pytester.runpytest_subprocess(
        "--astro-dags", "--astro-shard", "auto", "-p", "no:pytest-split", "--junitxml", "junit-{shard}.xml",
        "--astro-report-sarif", "astro-{shard}.sarif", "--astro-report", "report-{shard}.json")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["astro: shard 2/2 (GitLab CI (CI_NODE_INDEX/CI_NODE_TOTAL)): 1 of 3 DAG files*"])
    junit = (pytester.path / "junit-2-of-2.xml").read_text()
    assert 'testsuite name="pytest (pytest-astro shard 2/2)"' in junit
    sarif = json.loads((pytester.path / "astro-2-of-2.sarif").read_text())
    assert sarif["runs"][0]["automationDetails"] == {"id": "pytest-astro/shard-2-of-2/"}
    report = json.loads((pytester.path / "report-2-of-2.json").read_text())
    assert report["shard"]["label"] == "2/2" and report["shard"]["source"].startswith("GitLab CI")
    # not a parallel job: `auto` checks everything, as without it
    monkeypatch.delenv("CI_NODE_INDEX")
    monkeypatch.setenv("CI_NODE_TOTAL", "1")
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-shard", "auto", "-p", "no:pytest-split")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["astro: project *, 3 DAG files*"])
    assert "astro: shard" not in result.stdout.str() and "deselected" not in result.stdout.str()


def test_store_durations_then_split_by_them(pytester, write_files):
    _logged_project(pytester, write_files, {"a.py": "a", "b.py": "b", "c.py": "c"})
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-store-durations", "-p", "no:pytest-split")
    assert result.ret == 0, result.stdout.str()
    stored = load_durations(pytester.path / ".pytest-astro-durations.json")
    assert sorted(stored) == ["dags/a.py", "dags/b.py", "dags/c.py"] and all(s > 0 for s in stored.values())
    result = _run_shard(pytester, 1, 2, "-p", "no:pytest-split")
    result.stdout.fnmatch_lines(["*split by the parse times in .pytest-astro-durations.json*"])
    assert json.loads((pytester.path / "report-1.json").read_text())["shard"]["files"] == \
        shard_files(stored, stored, Shard(1, 2))


def test_a_bad_shard_is_a_usage_error(pytester, write_files):
    _logged_project(pytester, write_files, {"a.py": "a"})
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--astro-shard '3/2': K must be between 1 and N*"])


@pytest.mark.slow
@pytest.mark.skipif(AIRFLOW_MAJOR < 3,
                    reason="bench/run.py generates Airflow 3 DAG files (airflow.sdk)")
def test_scale_bench_runs_and_checks_what_it_claims(tmp_path):
    """bench/scale.py end to end on a tiny project (timings are measured, never asserted)."""
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "scale.py"), "--files", "6", "--shards", "2",
                           "--json", str(out), "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"single", "shards-parallel", "shards-one-by-one"}
    assert rows["single"]["parsed"] == 6 and rows["single"]["exit"] == 0
    for name in ("shards-parallel", "shards-one-by-one"):
        row = rows[name]
        assert row["exit"] == 0 and row["adds_up"], row
        assert sum(row["parsed"]) == 6 and len(row["shard_seconds"]) == 2 and row["balance"] >= 1.0
    assert "| shards-parallel |" in proc.stdout


# ------------------------------------------------------------------ parse what runs

BROKEN_LOGGED = '''
from pathlib import Path
with open(Path(__file__).parents[1] / "parses.log", "a") as log:
    log.write(Path(__file__).name + "\\n")
from airflow.sdk import DAG
raise RuntimeError("broken on purpose")
'''

# dag_ids made at run time: no static pass can read them
DYNAMIC = LOGGED.split("with DAG(")[0] + '''
for region in ("emea", "amer"):
    with DAG(f"dyn_{region}", start_date=datetime(2024, 1, 1), schedule=None, tags=["t"],
             default_args={"retries": 2}):
        EmptyOperator(task_id="t")
'''


def _parsed_files(pytester) -> list[str]:
    log = pytester.path / "parses.log"
    files = sorted(log.read_text().split()) if log.exists() else []
    log.unlink(missing_ok=True)
    return files


def _dag_project(pytester, write_files, extra: dict[str, str] | None = None):
    _logged_project(pytester, write_files, {"a.py": "alpha", "b.py": "beta", "c.py": "gamma"})
    (pytester.path / "tests" / "test_users.py").unlink()
    write_files(pytester.path, extra or {})


def test_k_parses_only_the_files_it_selects(pytester, write_files):
    _dag_project(pytester, write_files)
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "-k", "beta", "-rA")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["1 DAG files (0 unchanged, from cache)*", "PASSED dags/b.py::astro",
                                 "*1 passed, 2 deselected*"])
    assert _parsed_files(pytester) == ["b.py"]
    # a policy code in -k needs every file's findings: those are parsed (the cache would hold them)
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "-k", "DAG002")
    assert _parsed_files(pytester) == ["a.py", "b.py", "c.py"]


def test_k_matches_dag_ids_made_at_run_time_from_the_cache(pytester, write_files):
    _dag_project(pytester, write_files, {"dags/dyn.py": _for_airflow(DYNAMIC)})
    assert pytester.runpytest_subprocess("--astro-dags").ret == 0  # fills the cache
    _parsed_files(pytester)
    result = pytester.runpytest_subprocess("--astro-dags", "-k", "dyn_amer", "-rA")
    result.stdout.fnmatch_lines(["PASSED dags/dyn.py::astro", "*1 passed, 3 deselected*"])
    assert _parsed_files(pytester) == []  # the ids came from the cache's outline


def test_lf_after_a_run_with_one_broken_file_parses_that_file(pytester, write_files):
    _dag_project(pytester, write_files, {"dags/broken.py": _for_airflow(BROKEN_LOGGED)})
    first = pytester.runpytest_subprocess("--astro-dags")
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    assert _parsed_files(pytester) == ["a.py", "b.py", "broken.py", "c.py"]
    # without the parse cache, so that only the selection can keep the other files from being parsed
    again = pytester.runpytest_subprocess("--astro-dags", "--lf", "--astro-no-cache")
    again.stdout.fnmatch_lines(["1 DAG files (0 unchanged, from cache), 1 failed to parse*", "*1 failed*"])
    assert _parsed_files(pytester) == ["broken.py"]


def test_node_ids_and_deselect_parse_only_what_runs(pytester, write_files):
    _dag_project(pytester, write_files)
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "dags/c.py::astro")
    result.assert_outcomes(passed=1)
    assert _parsed_files(pytester) == ["c.py"]
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "--deselect", "dags/a.py::astro")
    result.assert_outcomes(passed=2, deselected=1)
    assert _parsed_files(pytester) == ["b.py", "c.py"]


def test_xdist_workers_share_the_one_parse_of_the_selection(pytester, write_files):
    pytest.importorskip("xdist")
    _dag_project(pytester, write_files)
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "-n", "2", "-k", "alpha or gamma")
    result.assert_outcomes(passed=2)  # (the xdist controller does not count the workers' deselected)
    assert _parsed_files(pytester) == ["a.py", "c.py"]  # once each, for both workers


def test_a_duplicate_outside_the_selection_still_fails_the_selected_file(pytester, write_files):
    _dag_project(pytester, write_files, {"dags/z.py": _for_airflow(LOGGED).format(dag_id="alpha")})
    result = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "dags/a.py", "--astro-report", "r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["dags/a.py:*: DuplicateDagId: dag_id 'alpha' is also defined in dags/z.py:*"])
    assert _parsed_files(pytester) == ["a.py", "z.py"]  # z.py spells out 'alpha': parsed for the check
    report = json.loads((pytester.path / "r.json").read_text())
    assert [f["file"] for f in report["files"]] == ["dags/a.py"] and report["also_parsed"] == ["dags/z.py"]


def test_pytest_split_groups_parse_only_their_dag_files(pytester, write_files):
    pytest.importorskip("pytest_split")
    _dag_project(pytester, write_files)
    parsed = []
    for group in (1, 2):
        result = pytester.runpytest_subprocess("--astro-dags", "--astro-no-cache", "--splits", "2",
                                               "--group", str(group), "-rA")
        assert result.ret == 0, result.stdout.str()
        ran = sorted(line.split()[1].split("/")[1].split("::")[0] for line in result.stdout.lines
                     if line.startswith("PASSED dags/"))
        files = _parsed_files(pytester)
        assert files == ran  # what pytest-split kept, nothing else
        parsed += files
    assert sorted(parsed) == ["a.py", "b.py", "c.py"]
