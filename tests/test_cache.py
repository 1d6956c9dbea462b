"""The parse cache: what re-parses after which edit, and that a stale result never hides a failure.

Real pytest sessions over a real project; which files were parsed (rather than taken from the
cache) is read from ``--astro-report``.
"""

from __future__ import annotations

import compileall
import json
from pathlib import Path

import pytest

from pytest_astro.config import load_settings
from pytest_astro.parse.cache import ParseCache
from pytest_astro.parse.engine import ParseEngine
from pytest_astro.project import Project
from pytest_astro.results import DagSummary, FileResult, ParseError
from pytest_astro.values import load_values
from tests.conftest import DAG

PROJECT = {
    # the DAG policies (tags, retries...) are not what these tests are about
    "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n",
    "dags/plain.py": DAG.format(dag_id="plain"),
    "dags/uses_helper.py": '''
        from datetime import datetime
        from airflow import DAG
        from airflow.providers.standard.operators.empty import EmptyOperator
        from include.helpers import TASK_ID

        with DAG("uses_helper", start_date=datetime(2024, 1, 1), schedule=None):
            EmptyOperator(task_id=TASK_ID)
        ''',
    "dags/from_yaml.py": '''
        from datetime import datetime
        from pathlib import Path
        import yaml
        from airflow import DAG
        from airflow.providers.standard.operators.empty import EmptyOperator

        CONFIG = yaml.safe_load((Path(__file__).parents[1] / "include" / "tables.yaml").read_text())
        with DAG("from_yaml", start_date=datetime(2024, 1, 1), schedule=None):
            for table in CONFIG["tables"]:
                EmptyOperator(task_id=f"load_{table}")
        ''',
    "dags/uses_var.py": '''
        from datetime import datetime
        from airflow import DAG
        from airflow.models import Variable
        from airflow.providers.standard.operators.empty import EmptyOperator

        REGION = Variable.get("region")
        if REGION not in ("emea", "amer"):
            raise ValueError(f"unknown region {REGION}")
        with DAG("uses_var", start_date=datetime(2024, 1, 1), schedule=None):
            EmptyOperator(task_id=f"in_{REGION}")
        ''',
    "include/__init__.py": "",
    "include/helpers.py": 'TASK_ID = "t"\n',
    "include/tables.yaml": "tables: [orders, customers]\n",
    "airflow_settings.yaml": """
        airflow:
          variables:
            - variable_name: region
              variable_value: emea
        """,
    "requirements.txt": "",
}

ALL = ["dags/from_yaml.py", "dags/plain.py", "dags/uses_helper.py", "dags/uses_var.py"]


@pytest.fixture
def project(pytester, write_files):
    # the rootdir (and so pytest's own cache) is pytester.path; the Astro project lives below it,
    # so `--cache-clear` must clear our results itself
    pytester.makeini("[pytest]\n")
    write_files(pytester.path / "proj", PROJECT)
    # include/ compiled already (the user's own tests imported it): the sandbox then reads the
    # .pyc, not the source, and must still record include/helpers.py as a dependency
    compileall.compile_dir(str(pytester.path / "proj" / "include"), quiet=1)
    return pytester.path / "proj"


def run(pytester, *args: str, subprocess: bool = False):
    argv = ("--astro-dags", "--astro-project", "proj", "--astro-report", "r.json", *args)
    result = pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)
    report = json.loads((pytester.path / "r.json").read_text())
    parsed = sorted(f["file"] for f in report["files"] if not f["cached"])
    failed = sorted(f["file"] for f in report["files"] if not f["ok"])
    return result, parsed, failed


def test_edits_reparse_exactly_what_they_can_change(pytester, project):
    _, parsed, failed = run(pytester)
    assert (parsed, failed) == (ALL, [])

    # unchanged: nothing parsed, and neither the sandbox nor Airflow is ever started
    pytester.makeconftest("""
        import sys
        def pytest_unconfigure(config):
            open("airflow-imported.txt", "w").write(str(sorted(m for m in sys.modules if m.split(".")[0] == "airflow")))
        """)
    result, parsed, failed = run(pytester, subprocess=True)
    assert (parsed, failed) == ([], [])
    result.stdout.fnmatch_lines(["*4 DAG files (4 unchanged, from cache), 0 failed to parse*"])
    assert (pytester.path / "airflow-imported.txt").read_text() == "[]"
    engine = ParseEngine(Project(load_settings(project)), python="/nonexistent/python")
    results = engine.parse(project / f for f in ALL)  # starting the sandbox would raise here
    assert all(r.cached and r.ok for r in results.values()) and len(results) == 4

    # a helper and a config file a DAG reads, both broken: exactly their users re-parse, and fail
    (project / "include/helpers.py").write_text("TASK_ID = undefined_name\n")
    (project / "include/tables.yaml").write_text("tables_renamed: []\n")
    _, parsed, failed = run(pytester)
    assert parsed == failed == ["dags/from_yaml.py", "dags/uses_helper.py"]
    # failures are never cached: the next run checks them again
    settings_ = load_settings(project)
    cache = ParseCache(Project(settings_), extra_key=load_values(settings_).digest())  # as the engine builds it
    assert cache.get(project / "dags/uses_helper.py") is None and cache.get(project / "dags/from_yaml.py") is None
    assert cache.get(project / "dags/plain.py") is not None

    # a variable in airflow_settings.yaml: a cached pass of the file that reads it must not survive
    (project / "include/helpers.py").write_text('TASK_ID = "t"\n')
    (project / "include/tables.yaml").write_text("tables: [orders]\n")
    settings = project / "airflow_settings.yaml"
    settings.write_text(settings.read_text().replace("emea", "mars"))
    result, parsed, failed = run(pytester)
    assert (parsed, failed) == (ALL, ["dags/uses_var.py"])
    result.stdout.fnmatch_lines(["*uses_var.py*ValueError: unknown region mars*"])

    # requirements.txt (what is installed may differ): the cached passes re-parse too
    (project / "requirements.txt").write_text("requests\n")
    _, parsed, failed = run(pytester)
    assert (parsed, failed) == (ALL, ["dags/uses_var.py"])

    # --cache-clear clears our results too, although the project is not pytest's rootdir
    _, parsed, _ = run(pytester, "--cache-clear")
    assert parsed == ALL


def test_a_file_rewritten_during_the_session_is_parsed_again(tmp_path, write_files):
    """Discovery's content hashes serve the first parse only: a test that rewrites a DAG file and
    then asks for it again (a DagBag in a user's test) gets the new content's verdict."""
    write_files(tmp_path, {"dags/plain.py": DAG.format(dag_id="plain")})
    project = Project(load_settings(tmp_path))
    files = project.all_dag_files  # discovery reads (and hashes) every file
    engine = ParseEngine(project)
    assert engine.parse(files)["dags/plain.py"].ok
    (tmp_path / "dags/plain.py").write_text(DAG.format(dag_id="plain") + "\nraise RuntimeError('rewritten')\n")
    result = engine.parse(files)["dags/plain.py"]
    assert not result.ok and not result.cached, result
    assert "rewritten" in result.errors[0].message


def test_a_report_from_the_cache_says_what_the_parse_said(pytester, write_files):
    """Cached results are written into the report as the cache keeps them (not encoded again):
    the same content as the parse that made them, and a verdict changed after reading them (a
    dag_id found in two files fails both) is the one reported."""
    write_files(pytester.path, {
        "dags/a.py": DAG.format(dag_id="a"),
        "dags/b.py": DAG.format(dag_id="b"),
        "dags/same_1.py": DAG.format(dag_id="same"),
        "dags/same_2.py": DAG.format(dag_id="same"),
    })

    def report():
        pytester.runpytest("--astro-dags", "--astro-report", "r.json")
        files = json.loads((pytester.path / "r.json").read_text())["files"]
        return {f["file"]: f for f in files}

    cold, warm = report(), report()
    assert [f for f, r in warm.items() if r["cached"]] == ["dags/a.py", "dags/b.py", "dags/same_1.py", "dags/same_2.py"]
    for result in cold.values():
        result["cached"] = True
    assert warm == cold
    for name in ("dags/same_1.py", "dags/same_2.py"):
        assert not warm[name]["ok"] and [e["kind"] for e in warm[name]["errors"]] == ["duplicate_dag_id"]


def test_a_damaged_entry_is_parsed_again(pytester, project):
    """An entry cut short, with bytes that are not UTF-8, without its result, or empty (a full disk, a
    cache restored in part) is a miss: the file is parsed again, never an error or a stale verdict."""
    run(pytester)
    folder = project / ".pytest_cache" / "pytest-astro" / "parse"
    [pack] = folder.glob("pack-*.jsonl")  # one file for the run, an entry per line
    entries = pack.read_bytes().splitlines()
    assert len(entries) == len(ALL)
    damages = [
        lambda key, body: key + b"\t" + body[: len(body) // 2],
        lambda key, body: key + b"\t" + body.replace(b'"ok": true', b'"ok": "\xff\xfe"'),
        lambda key, body: key + b"\t",
        lambda key, body: b"",
    ]
    damaged = []
    for entry, damage in zip(entries, damages):
        key, _, body = entry.partition(b"\t")
        assert b'"ok": true' in body
        damaged.append(damage(key, body))
    pack.write_bytes(b"\n".join(damaged) + b"\n")
    result, parsed, failed = run(pytester)
    result.assert_outcomes(passed=len(ALL))
    assert parsed == ALL and failed == []
    result, parsed, failed = run(pytester)  # and the entries are whole again, in one pack
    assert parsed == [] and failed == []
    assert len(list(folder.glob("pack-*.jsonl"))) == 1


def test_a_cached_result_is_the_stored_one(tmp_path):
    """A result read back from the cache equals the one stored: its outline (what a run from the
    cache reads: ids, files and lines of its DAGs, warnings) at once, the rest when first used."""
    (tmp_path / "dags").mkdir()
    dag_file = tmp_path / "dags" / "two.py"
    dag_file.write_text("# airflow dag\n")
    project = Project(load_settings(tmp_path))
    stored = FileResult(file="dags/two.py", ok=True, seconds=0.25, peak_memory=123, stdout="hello\n",
                        warnings=["dags/two.py:3: placeholder"], imported=[],
                        dags=[DagSummary(dag_id="a", file="dags/two.py", line=3, tags=["x"], retries=2),
                              DagSummary(dag_id="b", file="include/factory.py", line=9, task_ids=["t"])])
    with ParseCache(project) as cache:
        cache.put(dag_file, stored)
    got = ParseCache(project).get(dag_file)
    assert got is not None and got.cached
    assert got.dag_refs() == [("a", "dags/two.py", 3), ("b", "include/factory.py", 9)]
    assert got.dag_count() == 2 and got.warnings == stored.warnings and got.errors == []
    assert got.to_json() == json.dumps({**stored.to_dict(), "cached": True})  # the kept text, as stored
    assert got.dags == stored.dags and got.seconds == 0.25 and got.stdout == "hello\n"
    assert got == FileResult(**{**{k: v for k, v in vars(stored).items() if not k.startswith("_")}, "cached": True})
    assert got.to_dict() == {**stored.to_dict(), "cached": True}
    # a result with errors (a syntax error, the only failure kept) is read whole
    stored.ok, stored.dags = False, []
    stored.errors = [ParseError(kind="syntax", type="SyntaxError", message="bad", file="dags/two.py", line=1)]
    with ParseCache(project) as cache:
        cache.put(dag_file, stored)
    assert ParseCache(project).get(dag_file) == FileResult(
        **{**{k: v for k, v in vars(stored).items() if not k.startswith("_")}, "cached": True})


def test_each_run_that_stores_leaves_one_pack_and_loses_no_entry(tmp_path):
    """Results live in one pack per run that stored any: it carries on the entries it read and did
    not replace (of DAG files that still exist) and removes the packs they were in. A pack still
    being written is invisible to other processes (an xdist worker), which never remove it."""
    (tmp_path / "dags").mkdir()
    files = {name: tmp_path / "dags" / f"{name}.py" for name in ("a", "b", "c")}
    for path in files.values():
        path.write_text("# airflow dag\n")
    project = Project(load_settings(tmp_path))
    folder = tmp_path / ".pytest_cache" / "pytest-astro" / "parse"

    def result(name: str, seconds: float) -> FileResult:
        return FileResult(file=f"dags/{name}.py", ok=True, seconds=seconds,
                          dags=[DagSummary(dag_id=name, file=f"dags/{name}.py", line=1)])

    def seconds() -> dict[str, float | None]:
        cache = ParseCache(project)
        return {name: getattr(cache.get(path), "seconds", None) for name, path in files.items()}

    with ParseCache(project) as cache:
        for name in files:
            cache.put(files[name], result(name, 1.0))
        assert list(folder.iterdir())[0].name.startswith("tmp-")  # not done yet
        assert seconds() == {"a": None, "b": None, "c": None}
    assert len(list(folder.glob("pack-*.jsonl"))) == 1
    assert seconds() == {"a": 1.0, "b": 1.0, "c": 1.0}
    with ParseCache(project) as cache:  # one file parsed again: the others carried on
        cache.put(files["b"], result("b", 2.0))
    assert len(list(folder.glob("pack-*.jsonl"))) == 1
    assert seconds() == {"a": 1.0, "b": 2.0, "c": 1.0}
    # two processes at once: each pack keeps what it stored; the next run that stores folds both
    first, second = ParseCache(project), ParseCache(project)
    first.put(files["a"], result("a", 3.0))
    second.put(files["c"], result("c", 3.0))
    first.close()
    second.close()
    assert seconds() == {"a": 3.0, "b": 2.0, "c": 3.0}
    files["c"].unlink()  # a DAG file removed: its entry goes with the next pack
    with ParseCache(project) as cache:
        cache.put(files["b"], result("b", 4.0))
    [pack] = folder.glob("pack-*.jsonl")
    assert sorted(json.loads(line.partition(b"\t")[0]) for line in pack.read_bytes().splitlines()
                  if b"\t" in line) == [
        "dags/a.py", "dags/b.py"]
    assert seconds() == {"a": 3.0, "b": 4.0, "c": None}
    with ParseCache(project) as cache:  # nothing stored: nothing written
        assert cache.get(files["a"]) is not None
    assert list(folder.glob("*")) == [pack]
