"""`pytest --astro-dags` as a user runs it: real pytest sessions (pytester) over real project trees."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import DAG, EXAMPLE

pytestmark = pytest.mark.usefixtures("isolated_airflow_home")

#: a project whose DAG files are checked for parsing alone (the test DAGs have no tags, no retries)
NO_POLICIES = "[tool.pytest-astro.policies]\nselect = []\n"


@pytest.fixture
def isolated_airflow_home(tmp_path_factory, monkeypatch):
    """The user's AIRFLOW_HOME: pytest-astro must never write into it."""
    home = tmp_path_factory.mktemp("users-airflow-home")
    (home / "airflow.cfg").write_text("[core]\nload_examples = False\n")
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    return home


def _snapshot(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_example_project_passes(copy_example, pytester, isolated_airflow_home):
    root = copy_example(EXAMPLE)
    before = _snapshot(isolated_airflow_home)
    result = pytester.runpytest("--astro-dags", "-v", "--astro-report", "report.json")
    result.assert_outcomes(passed=2 + 4)  # the project's 2 tests, and one item per DAG file
    # testpaths = ["tests"] in the example's pyproject: the dags folder is collected all the same
    result.stdout.fnmatch_lines([
        "*tests/test_helpers.py::test_table_name PASSED*",
        "dags/assets.py::astro PASSED*",
        "dags/classic_etl.py::astro PASSED*",
        "dags/example_taskflow.py::astro PASSED*",
        "dags/reports/regional_reports.py::astro PASSED*",
        "*4 DAG files (0 unchanged, from cache), 0 failed to parse, 7 DAGs*",
    ])
    assert "scratch" not in result.stdout.str()  # excluded by dags/.airflowignore
    report = json.loads((root / "report.json").read_text())
    dag_ids = sorted(d["dag_id"] for f in report["files"] for d in f["dags"])
    # DAGs made by an @dag function, in a loop, and two in one file
    assert dag_ids == ["classic_etl", "example_taskflow", "orders_consumer", "orders_producer",
                       "report_amer", "report_apac", "report_emea"]
    assert report["tests"] == {"passed": 6, "failed": 0, "errors": 0, "skipped": 0, "total": 6}
    etl = next(d for f in report["files"] for d in f["dags"] if d["dag_id"] == "classic_etl")
    assert etl["file"] == "dags/classic_etl.py" and etl["line"] == 16
    assert etl["edges"] == [["count_rows", "greet"], ["extract", "count_rows"], ["start", "extract"]]
    assert etl["retries"] == 2 and etl["owner"] == "data-platform" and etl["schedule"] == "0 3 * * *"
    assert etl["tags"] == ["etl", "example"] and etl["pools"] == ["default_pool", "warehouse_pool"]
    consumer = next(d for f in report["files"] for d in f["dags"] if d["dag_id"] == "orders_consumer")
    assert consumer["schedule"] == "assets"
    # nothing written into the user's AIRFLOW_HOME, no metadata database anywhere
    assert _snapshot(isolated_airflow_home) == before
    assert not list(root.rglob("*.db"))


BROKEN_EXPECTED = {
    "dag_cycle.py": ["dags/dag_cycle.py:6: AirflowDagCycleException: Cycle detected in [Dd][Aa][Gg]: dag_cycle*"],
    # the file's DAG also breaks two default policies: listed under the parse failure, in the same item
    "duplicate_a.py": ["dags/duplicate_a.py:5: DuplicateDagId: dag_id 'shared_id' is also defined in dags/duplicate_b.py:5",
                       "hint: *",
                       "dags/duplicate_a.py:5: DAG001 shared_id: the DAG has no tasks (hint: *)",
                       "dags/duplicate_a.py:5: DAG002 shared_id: the DAG has 0 tag(s), at least 1 required (hint: *)"],
    "duplicate_b.py": ["dags/duplicate_b.py:5: DuplicateDagId: dag_id 'shared_id' is also defined in dags/duplicate_a.py:5",
                       "hint: *", "dags/duplicate_b.py:5: DAG001 shared_id: *", "dags/duplicate_b.py:5: DAG002 shared_id: *"],
    "infinite_loop.py": ["dags/infinite_loop.py:*: Timeout: importing the file took longer than 5 s*",
                         '  File "dags/infinite_loop.py", line *, in <module>'],
    "memory_hog.py": ["dags/memory_hog.py:5: MemoryError: used * at import, over the 1 GiB limit"],
    "missing_module.py": ["dags/missing_module.py:3: ModuleNotFoundError: No module named "
                          "'snowflake_toolkit_not_installed' (is the package that provides "
                          "'snowflake_toolkit_not_installed' missing from requirements.txt?*"],
    "os_exit.py": ["dags/os_exit.py:5: the file called os._exit(3) while being imported*"],
    "raises_in_helper.py": ["dags/raises_in_helper.py:5: KeyError: 'warehouse' (at include/config_loader.py:6)",
                            "Traceback (your code only):",
                            '  File "dags/raises_in_helper.py", line 5, in <module>',
                            "    from include.config_loader import WAREHOUSE",
                            '  File "include/config_loader.py", line 6, in <module>'],
    "segfault.py": ["dags/segfault.py:5: SIGSEGV: the process importing the file died of a segmentation fault",
                    '  File "dags/segfault.py", line 5, in <module>'],
    "syntax_error.py": ["dags/syntax_error.py:5: SyntaxError: invalid syntax. Perhaps you forgot a comma?",
                        '    with DAG("syntax_error", start_date=datetime(2024, 1, 1) schedule=None):',
                        "                                        ^"],
    "sys_exit.py": ["dags/sys_exit.py:7: SystemExit: the file called sys.exit(1) while being imported",
                    "    sys.exit(1)"],
}


def test_broken_project_fails_file_by_file(copy_example, pytester):
    root = copy_example("broken-project")
    result = pytester.runpytest("--astro-dags", "-rf")
    # one item per file: each listed once, with everything it has to say
    result.assert_outcomes(passed=1, failed=len(BROKEN_EXPECTED))
    out = result.stdout.str()
    for name, lines in BROKEN_EXPECTED.items():
        assert out.count(f"_ dags/{name} _") == 1, name
        section = out.split(f"_ dags/{name} _")[1].split("\n____")[0].split("\n----")[0]
        pytester_lines = pytest.LineMatcher(section.splitlines())
        pytester_lines.fnmatch_lines(lines)
        assert "site-packages" not in section, f"{name}: the report shows library frames"
    assert f"FAILED dags/{'sys_exit.py'}::astro" in out
    assert "good_neighbour.py::astro PASSED" in pytester.runpytest("--astro-dags", "-v").stdout.str()
    assert not list(root.rglob("*.db"))


def test_single_file_argument(copy_example, pytester):
    copy_example("broken-project")
    result = pytester.runpytest("--astro-dags", "dags/good_neighbour.py", "dags/sys_exit.py", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*2 DAG files*"])


def test_a_dags_package_is_not_imported_by_pytest(pytester, write_files):
    """``dags/__init__.py`` makes the DAG folder a package (for ``from dags.common import ...``):
    pytest would collect it as a Package and import ``__init__.py`` in its own process. Only the
    sandbox may run it."""
    record = 'import os\nopen(os.path.join(os.path.dirname(__file__), "{}imported-by"), "a").write(f"{{os.getpid()}}\\n")\n'
    write_files(pytester.path, {
        "dags/__init__.py": record.format("../"),
        "dags/common.py": "OWNER = 'data'\n",
        "dags/team/__init__.py": record.format("../../"),
        "dags/team/etl.py": DAG.format(dag_id="etl") + "from dags.common import OWNER\nimport dags.team\n",
    })
    (pytester.path / "pyproject.toml").write_text(NO_POLICIES)
    result = pytester.runpytest("--astro-dags", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*dags/team/etl.py::astro PASSED*"])
    pids = pytester.path.joinpath("imported-by").read_text().split()
    assert pids and str(os.getpid()) not in pids  # the sandbox imported the packages, pytest did not


def test_a_run_of_dag_files_only_leaves_its_objects_out_of_garbage_collection(pytester, write_files):
    """Only pytest-astro's items in the session: the objects alive after collection are frozen
    (``gcfreeze``) while they run, and stay so when it ends (Python's collection at exit would walk
    them all again). A session with a test of the user's never freezes, and one that starts in the
    same process first undoes an earlier freeze."""
    import gc

    log = pytester.path / "freeze.log"
    hook = ("import gc\ndef pytest_runtest_setup(item):\n"
            f"    open({str(log)!r}, 'a').write(f'{{item.nodeid}} {{gc.get_freeze_count() > 0}}\\n')\n")
    write_files(pytester.path, {"pyproject.toml": NO_POLICIES, "conftest.py": hook,
                                "dags/etl.py": DAG.format(dag_id="etl"),
                                "tests/test_x.py": "def test_x():\n    pass\n"})
    pytester.runpytest("--astro-dags", "dags").assert_outcomes(passed=1)
    assert log.read_text().splitlines() == ["dags/etl.py::astro True"]
    assert gc.get_freeze_count() > 0
    log.unlink()
    pytester.runpytest("--astro-dags", "dags", "tests").assert_outcomes(passed=2)
    assert log.read_text().splitlines() == ["dags/etl.py::astro False", "tests/test_x.py::test_x False"]
    assert gc.get_freeze_count() == 0


def test_a_conftest_applies_to_the_checks_under_its_folder(pytester, write_files):
    """A conftest.py's hooks run for the DAG checks under its folder, as for any test, and for no
    others. (Our nodes share their DAG file's hook proxy, which pytest would recompute at every
    access; it must not be kept before every conftest.py has loaded: ``tests/`` loads after ``dags/``.)"""
    hook = 'def pytest_runtest_setup(item):\n    open({!r}, "a").write(item.nodeid + "\\n")\n'
    write_files(pytester.path, {
        "pyproject.toml": '[tool.pytest-astro.policies]\nselect = ["DAG001"]\n',
        "dags/team/conftest.py": hook.format(str(pytester.path / "team.log")),
        "dags/team/etl.py": DAG.format(dag_id="etl"),
        "dags/other.py": DAG.format(dag_id="other"),
        "tests/conftest.py": hook.format(str(pytester.path / "tests.log")),
        "tests/test_x.py": "def test_x():\n    pass\n",
    })
    result = pytester.runpytest("--astro-dags", "dags", "tests")
    result.assert_outcomes(passed=3)
    team = pytester.path.joinpath("team.log").read_text().split()
    assert sorted(team) == ["dags/team/etl.py::astro"]
    assert pytester.path.joinpath("tests.log").read_text().split() == ["tests/test_x.py::test_x"]


@pytest.mark.parametrize("rootdir", [".", "tests"])
def test_locations_are_pytests_own(pytester, write_files, rootdir):
    """Reports locate a DAG check as pytest locates any test: the path relative to the rootdir
    (``../dags/...`` when the DAG folder is outside it) and the 0-based line of the DAG."""
    write_files(pytester.path, {
        "pyproject.toml": '[tool.pytest-astro.policies]\nselect = ["DAG001"]\n',
        "dags/team/etl.py": DAG.format(dag_id="etl"),
        "tests/test_x.py": "def test_x():\n    pass\n",
        "record_locations.py": "def pytest_runtest_logreport(report):\n"
                               "    if report.when == 'call':\n"
                               "        open('locations', 'a').write(repr((report.nodeid, report.location)) + '\\n')\n",
    })
    pytester.syspathinsert()
    result = pytester.runpytest("--astro-dags", "-p", "record_locations", "--rootdir", rootdir, "dags")
    result.assert_outcomes(passed=1)
    found = dict(eval(line) for line in pytester.path.joinpath("locations").read_text().splitlines())
    path = os.path.join("dags", "team", "etl.py") if rootdir == "." else os.path.join("..", "dags", "team", "etl.py")
    assert list(found.values()) == [(path, 0, "dags/team/etl.py")]


def test_a_symlink_loop_in_the_dags_folder_is_a_usage_error(pytester, write_files):
    write_files(pytester.path, {"dags/etl.py": DAG.format(dag_id="etl")})
    (pytester.path / "dags" / "sub").mkdir()
    (pytester.path / "dags" / "sub" / "up").symlink_to(pytester.path / "dags", target_is_directory=True)
    result = pytester.runpytest("--astro-dags")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-astro: *dags/sub/up/sub: symlink loop in the dags folder*remove the link"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_off_without_the_switch_and_on_with_the_ini(copy_example, pytester):
    copy_example(EXAMPLE)
    # No --astro-dags: only the project's own tests; neither Airflow nor the engine is imported.
    pytester.makeconftest("""
        import sys
        def pytest_sessionfinish(session):
            loaded = sorted(m for m in sys.modules if m.split(".")[0] == "airflow" or m == "pytest_astro.session")
            print("LOADED:", loaded)
    """)
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=2)
    assert "LOADED: []" in result.stdout.str()
    # The ini switch turns the checks on like the option does
    pytester.path.joinpath("pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\nastro_dags = true\n')
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=6)
    # and even then the pytest process never imports Airflow or a DAG file
    assert "LOADED: ['pytest_astro.session']" in result.stdout.str()


def test_help_does_not_import_airflow(pytester):
    result = pytester.run(
        sys.executable, "-c",
        "import sys, pytest; pytest.main(['--help']); "
        "print('AIRFLOW LOADED' if any(m.startswith('airflow') for m in sys.modules) else 'CLEAN')")
    result.stdout.fnmatch_lines(["*--astro-dags*", "CLEAN"])


def test_isolation_between_files(pytester, write_files):
    """One file's side effects never change another file's verdict (one worker: same process lineage)."""
    write_files(pytester.path, {
        "dags/a_vandal.py": """
            # airflow dag: breaks everything it can reach, then defines no DAG
            import os, sys
            from airflow import DAG
            def broken(*args, **kwargs):
                raise RuntimeError("patched by a_vandal")
            DAG.__init__ = broken
            sys.path[:] = ["/nonexistent"]
            sys.modules.pop("include", None)
            os.environ["VANDAL"] = "1"
            os.chdir("/")
        """,
        "dags/b_victim.py": """
            import os
            from datetime import datetime
            from airflow import DAG
            from include.values import NAME
            assert os.environ.get("VANDAL") is None
            # read relative to the project root, as the Astro image's working directory is
            TEXT = open("include/name.txt").read().strip()
            with DAG(NAME + TEXT, start_date=datetime(2024, 1, 1), schedule=None):
                pass
        """,
        "include/__init__.py": "",
        "include/values.py": "NAME = 'victim'\n",
        "include/name.txt": "_ok\n",
    })
    (pytester.path / "pyproject.toml").write_text(NO_POLICIES)
    result = pytester.runpytest("--astro-dags", "--astro-workers", "1", "-v", "--astro-report", "r.json")
    result.assert_outcomes(passed=2)
    report = json.loads(pytester.path.joinpath("r.json").read_text())
    victim = next(f for f in report["files"] if f["file"] == "dags/b_victim.py")
    assert [d["dag_id"] for d in victim["dags"]] == ["victim_ok"]
    # the project files it imported or read are recorded (they key the cache)
    assert victim["imported"] == ["include/__init__.py", "include/name.txt", "include/values.py"]


def test_hard_timeout_when_the_alarm_is_blocked(pytester, write_files):
    write_files(pytester.path, {"dags/stuck.py": """
        # airflow dag
        import signal, time
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        while True:
            time.sleep(0.05)
    """, "dags/fine.py": DAG.format(dag_id="fine")})
    (pytester.path / "pyproject.toml").write_text(NO_POLICIES)
    result = pytester.runpytest("--astro-dags", "--astro-timeout", "1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["dags/stuck.py:5: Timeout: importing the file did not finish within 1 s and was killed",
                                 '  File "dags/stuck.py", line 5, in <module>'])


def test_metadata_database_is_never_created(pytester, write_files, isolated_airflow_home):
    write_files(pytester.path, {"dags/reads_db.py": """
        from datetime import datetime
        from airflow import DAG
        from airflow.models import DagRun
        runs = DagRun.find(dag_id="anything")
        with DAG("reads_db", start_date=datetime(2024, 1, 1), schedule=None):
            pass
    """})
    result = pytester.runpytest("--astro-dags")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["dags/reads_db.py:4: *"])
    assert not list(pytester.path.rglob("*.db"))
    assert sorted(os.listdir(isolated_airflow_home)) == ["airflow.cfg"]


def test_cache_reparses_exactly_what_changed(pytester, write_files):
    write_files(pytester.path, {
        "dags/uses_helper.py": "from include.helper import DAG_ID\n" + DAG.replace('"{dag_id}"', "DAG_ID"),
        "dags/uses_config.py": "import json\nDAG_ID = json.load(open('include/config.json'))['id']\n"
                               + DAG.replace('"{dag_id}"', "DAG_ID"),
        "dags/plain.py": DAG.format(dag_id="plain"),
        "include/__init__.py": "",
        "include/helper.py": "DAG_ID = 'helped'\n",
        "include/config.json": '{"id": "configured"}',
        "pyproject.toml": NO_POLICIES,
    })

    def run() -> dict[str, bool]:
        report = pytester.path / "r.json"
        pytester.runpytest("--astro-dags", "--astro-report", str(report)).assert_outcomes(passed=3)
        return {f["file"]: f["cached"] for f in json.loads(report.read_text())["files"]}

    assert run() == {"dags/plain.py": False, "dags/uses_config.py": False, "dags/uses_helper.py": False}
    assert run() == {"dags/plain.py": True, "dags/uses_config.py": True, "dags/uses_helper.py": True}
    (pytester.path / "include/helper.py").write_text("DAG_ID = 'helped_again'\n")
    assert run() == {"dags/plain.py": True, "dags/uses_config.py": True, "dags/uses_helper.py": False}
    (pytester.path / "include/config.json").write_text('{"id": "reconfigured"}')
    assert run() == {"dags/plain.py": True, "dags/uses_config.py": False, "dags/uses_helper.py": True}
    result = pytester.runpytest("--astro-dags", "--astro-no-cache")
    result.stdout.fnmatch_lines(["*3 DAG files (0 unchanged, from cache)*"])


def test_bad_option_value_is_a_usage_error(copy_example, pytester):
    copy_example(EXAMPLE)
    result = pytester.runpytest("--astro-dags", "--astro-timeout", "soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*timeout: cannot read 'soon' as seconds*"])


def test_items_are_made_without_parsing(pytester, write_files):
    """A DAG file's item needs only its path: `--collect-only` parses nothing, and the batch is parsed
    after deselection, once (``-k`` asks for keywords: the dag_ids the source spells out, no parse)."""
    marker = pytester.path / "imported"
    counted = f"open({str(marker)!r}, 'a').write('x')\n"
    write_files(pytester.path, {"pyproject.toml": NO_POLICIES, "dags/etl.py": counted + DAG.format(dag_id="etl"),
                                "dags/other.py": DAG.format(dag_id="other")})
    result = pytester.runpytest("--astro-dags", "--astro-no-cache", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["dags/etl.py::astro", "dags/other.py::astro"])
    assert not marker.exists()
    result = pytester.runpytest("--astro-dags", "--astro-no-cache", "-v", "-k", "other")
    assert "dags/other.py::astro PASSED" in result.stdout.str() and "etl.py::astro" not in result.stdout.str()
    assert not marker.exists()  # -k read etl.py's dag_id without parsing it (selection.py), and deselected it


def test_the_deprecated_dagbag_module_gets_no_warning_of_ours(copy_example, pytester):
    """Airflow 3 hands DagBag out of airflow.models.dagbag through a module __getattr__ that warns:
    patching DagBag on import must not ask it there (the demo showed our inprocess.py warning)."""
    from importlib.metadata import version

    if version("apache-airflow").startswith("2."):
        pytest.skip("on Airflow 2 airflow.models.dagbag is DagBag's home (and cannot be imported twice)")
    root = copy_example(EXAMPLE)
    (root / "tests" / "test_old_path.py").write_text('''
import sys
import warnings


def test_old_path(dagbag):
    sys.modules.pop("airflow.models.dagbag", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import airflow.models.dagbag  # noqa: F401
    assert [str(w.message) for w in caught if "pytest_astro" in w.filename] == []
''')
    # its own process: the test imports Airflow's module anew, which must not leak into other runs
    result = pytester.runpytest_subprocess("--astro-dags")
    result.assert_outcomes(passed=2 + 4 + 1)  # the project's tests, its DAG files, this test
