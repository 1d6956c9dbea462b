"""Where pytest's per-file and per-test machinery has nothing to do for a DAG file, it is skipped:
the DAG files of a folder come straight from the discovery (session.DagFolder), and the parse
checks run directly (direct_run.py). Only where nothing but pytest would decide otherwise; the
collection, the reports and the outcomes are the ones pytest's own way makes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import DAG

pytestmark = pytest.mark.usefixtures("isolated_airflow_home")

# pytest's runner sets PYTEST_CURRENT_TEST to the item in its phase hooks: not set, it ran directly
RECORDER = '''
import json, os
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    with open("phases.jsonl", "a") as out:
        hooked = os.environ.get("PYTEST_CURRENT_TEST") == f"{item.nodeid} ({call.when})"
        out.write(json.dumps([item.nodeid, call.when, hooked]) + "\\n")
'''

FILES = {
    "pyproject.toml": '[tool.pytest-astro]\nmissing_variables = "placeholder"\n'
                      "[tool.pytest-astro.policies]\nselect = []\n",
    "conftest.py": RECORDER,
    "dags/good.py": DAG.format(dag_id="good"),
    "dags/broken.py": DAG.format(dag_id="broken") + "\nraise ValueError('boom')\n",
    "dags/warns.py": DAG.format(dag_id="warns") + "\nfrom airflow.models import Variable\nVariable.get('bucket')\n",
    "tests/test_user.py": "def test_user():\n    print('from the test')\n",
}


@pytest.fixture
def isolated_airflow_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("users-airflow-home")
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    return home


def _phases(pytester) -> dict[tuple[str, str], bool]:
    """(nodeid, phase) -> whether the phase ran through pytest's phase hooks."""
    path = pytester.path / "phases.jsonl"
    found = {(nodeid, when): env for nodeid, when, env in map(json.loads, path.read_text().splitlines())}
    path.unlink()
    return found


def _testcases(path) -> dict[tuple[str, str], list]:
    """JUnit XML test cases without their times."""
    return {(case.get("classname"), case.get("name")): sorted(
                (child.tag, child.get("message"), child.text, sorted(child.items()) if child.tag == "property" else None)
                for child in case.iter() if child is not case)
            for case in ET.parse(path).getroot().iter("testcase")}


def test_parse_checks_run_directly_with_pytests_own_reports(pytester, write_files):
    write_files(pytester.path, FILES)
    args = ["--astro-dags", "dags", "tests", "--astro-no-cache", "-rA", "-W", "default"]
    direct = pytester.runpytest(*args, "--junitxml", "direct.xml")
    direct.assert_outcomes(passed=3, failed=1, warnings=1)
    phases = _phases(pytester)
    parse_checks = [f"dags/{name}.py::astro" for name in ("broken", "good", "warns")]
    assert {nodeid for nodeid, _ in phases} == {*parse_checks, "tests/test_user.py::test_user"}
    for nodeid in parse_checks:  # all three phases, each reported, none through the phase hooks
        assert [phases.get((nodeid, when), "missing") for when in ("setup", "call", "teardown")] == [False] * 3
    assert phases["tests/test_user.py::test_user", "call"] is True

    usual = pytester.runpytest(*args, "--junitxml", "usual.xml", "-p", "no:astro-direct-run")
    usual.assert_outcomes(passed=3, failed=1, warnings=1)
    assert _phases(pytester)["dags/good.py::astro", "call"] is True
    assert _testcases(pytester.path / "direct.xml") == _testcases(pytester.path / "usual.xml")
    for result in (direct, usual):
        result.stdout.fnmatch_lines(["*_ dags/broken.py _*", "dags/broken.py:*: ValueError: boom",
                                     "*warnings summary*", "dags/warns.py::astro",
                                     "*AstroParseWarning: dags/warns.py:*: variable 'bucket' is not defined*", "*Captured stdout call*",
                                     "from the test", "FAILED dags/broken.py::astro*"])


def test_marks_on_parse_checks_are_honoured(pytester, write_files):
    """A mark (here from a conftest.py) makes pytest's skip/xfail evaluation apply: the usual protocol."""
    write_files(pytester.path, {**FILES, "conftest.py": RECORDER + '''
def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid == "dags/good.py::astro":
            item.add_marker(pytest.mark.skip(reason="not today"))
        if item.nodeid == "dags/broken.py::astro":
            item.add_marker(pytest.mark.xfail(reason="known", strict=True))
'''})
    result = pytester.runpytest("--astro-dags", "dags", "--astro-no-cache", "-x")
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    phases = _phases(pytester)
    assert phases["dags/broken.py::astro", "call"] is True
    assert phases["dags/warns.py::astro", "call"] is False  # no mark: directly


def test_the_first_failure_stops_a_run_with_x(pytester, write_files):
    write_files(pytester.path, FILES)
    result = pytester.runpytest("--astro-dags", "dags", "--astro-no-cache", "-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


# ---------------------------------------------------------------------------------------- collection

DECISIONS = '''
def pytest_collection_finish(session):
    astro = session.config.pluginmanager.get_plugin("astro-session")
    folders = {item.parent.parent for item in session.items if item.nodeid.startswith("dags/")}
    with open("direct.txt", "w") as out:
        for folder in sorted(folders, key=lambda f: f.nodeid):
            out.write(f"{folder.nodeid} {astro.collects_directly(folder)}\\n")
'''

COLLECTION = {
    "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n",
    "conftest.py": DECISIONS,
    "dags/etl.py": DAG.format(dag_id="etl"),
    "dags/test_named.py": DAG.format(dag_id="test_named"),  # named like a test module: still a DAG file
    "dags/test_helpers.py": "def test_helper():\n    assert 1 + 1 == 2\n",  # a test module in the folder
    "dags/team/sales.py": DAG.format(dag_id="sales"),
}


def _collected(pytester, *args: str) -> tuple[list[str], str]:
    result = pytester.runpytest("--astro-dags", "dags", "--co", "-q", *args)
    nodeids = sorted(line for line in result.outlines if "::" in line)
    return nodeids, pytester.path.joinpath("direct.txt").read_text()


needs_folder_nodes = pytest.mark.skipif(not hasattr(pytest, "Dir"), reason="pytest >= 8: folders are nodes")


@needs_folder_nodes
def test_a_dag_folder_is_collected_directly_as_pytest_would_collect_it(pytester, write_files):
    write_files(pytester.path, COLLECTION)
    every = ["dags/etl.py::astro", "dags/team/sales.py::astro", "dags/test_helpers.py::test_helper",
             "dags/test_named.py::astro"]
    assert _collected(pytester) == (every, "dags True\ndags/team True\n")
    # pytest's options and conftest variables that leave files out: pytest's hooks decide
    assert _collected(pytester, "--ignore", "dags/etl.py") == (every[1:], "dags False\ndags/team False\n")
    assert _collected(pytester, "--ignore-glob", "*/team/*") == (
        [every[0], *every[2:]], "dags False\n")
    # paths on the command line: the folder that leads to them keeps its children on their way
    result = pytester.runpytest("--astro-dags", "dags/etl.py", "dags/team", "--co", "-q")
    assert sorted(line for line in result.outlines if "::" in line) == [every[0], every[1]]
    write_files(pytester.path, {"dags/team/conftest.py": "collect_ignore = ['sales.py']\n"})
    assert _collected(pytester) == (
        [every[0], *every[2:]], "dags True\n")


@needs_folder_nodes
def test_a_plugin_collecting_every_python_file_still_gets_the_dag_files(pytester, write_files):
    """pytest-mypy, pytest-flake8 and the like make an item of each .py file: their hook is asked."""
    write_files(pytester.path, {**COLLECTION, "conftest.py": DECISIONS + '''
import pytest

class Lines(pytest.Item):
    def runtest(self):
        pass

class Linted(pytest.File):
    def collect(self):
        yield Lines.from_parent(self, name="lines")

def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name != "conftest.py":
        return Linted.from_parent(parent, path=file_path)
'''})
    nodeids, decisions = _collected(pytester)
    assert decisions == "dags False\ndags/team False\n"
    assert [n for n in nodeids if n.endswith("::lines")] == [
        "dags/etl.py::lines", "dags/team/sales.py::lines", "dags/test_helpers.py::lines", "dags/test_named.py::lines"]


# ------------------------------------------------------------------------------------------ policies

TEAM_POLICY = '''
from pytest_astro.policies import Policy, Violation


class Loud(Policy):
    code = "TEAM001"
    name = "loud"
    description = "prints, as the user's code may"

    def check(self, dag, context):
        print("checked", dag.dag_id)
        return []


def pytest_astro_dag_policies(config):
    return [Loud()]
'''


def test_builtin_policies_run_directly_and_the_users_do_not(pytester, write_files):
    """A built-in policy runs only our code; a policy of the user's, or a pytest_astro_check_dag hook,
    runs theirs, under pytest's capture (its print is the test's captured output)."""
    write_files(pytester.path, {
        "pyproject.toml": '[tool.pytest-astro.policies]\nselect = ["DAG001", "TEAM001"]\n',
        "conftest.py": RECORDER + TEAM_POLICY,
        "dags/etl.py": DAG.format(dag_id="etl"),
    })
    result = pytester.runpytest("--astro-dags", "dags", "-rP")
    result.assert_outcomes(passed=1)
    # the policies run while the item sets up: an internal error there makes it an error, not a failure
    result.stdout.fnmatch_lines(["*_ dags/etl.py _*", "*Captured stdout setup*", "checked etl"])
    assert _phases(pytester)["dags/etl.py::astro", "call"] is True

    write_files(pytester.path, {"pyproject.toml": '[tool.pytest-astro.policies]\nselect = ["DAG001"]\n'})
    pytester.runpytest("--astro-dags", "dags").assert_outcomes(passed=1)
    assert _phases(pytester)["dags/etl.py::astro", "call"] is False  # the conftest's policy is not selected

    write_files(pytester.path, {"conftest.py": RECORDER + TEAM_POLICY + '''

def pytest_astro_check_dag(dag, policy, context):
    return None
'''})
    pytester.runpytest("--astro-dags", "dags").assert_outcomes(passed=1)
    assert _phases(pytester)["dags/etl.py::astro", "call"] is True
