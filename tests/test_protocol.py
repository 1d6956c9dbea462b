"""The parse checks' direct run (pytest_astro/protocol.py): pytest's phase hooks are skipped only
where nothing but pytest hooks them, and the reports are the ones pytest's own protocol makes."""

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
    parse_checks = [f"dags/{name}.py::parse" for name in ("broken", "good", "warns")]
    assert {nodeid for nodeid, _ in phases} == {*parse_checks, "tests/test_user.py::test_user"}
    for nodeid in parse_checks:  # all three phases, each reported, none through the phase hooks
        assert [phases.get((nodeid, when), "missing") for when in ("setup", "call", "teardown")] == [False] * 3
    assert phases["tests/test_user.py::test_user", "call"] is True

    usual = pytester.runpytest(*args, "--junitxml", "usual.xml", "-p", "no:astro-direct-run")
    usual.assert_outcomes(passed=3, failed=1, warnings=1)
    assert _phases(pytester)["dags/good.py::parse", "call"] is True
    assert _testcases(pytester.path / "direct.xml") == _testcases(pytester.path / "usual.xml")
    for result in (direct, usual):
        result.stdout.fnmatch_lines(["*_ parse dags/broken.py _*", "dags/broken.py:*: ValueError: boom",
                                     "*warnings summary*", "dags/warns.py::parse",
                                     "*AstroParseWarning: dags/warns.py:*: variable 'bucket' is not defined*", "*Captured stdout call*",
                                     "from the test", "FAILED dags/broken.py::parse*"])


def test_marks_on_parse_checks_are_honoured(pytester, write_files):
    """A mark (here from a conftest.py) makes pytest's skip/xfail evaluation apply: the usual protocol."""
    write_files(pytester.path, {**FILES, "conftest.py": RECORDER + '''
def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid == "dags/good.py::parse":
            item.add_marker(pytest.mark.skip(reason="not today"))
        if item.nodeid == "dags/broken.py::parse":
            item.add_marker(pytest.mark.xfail(reason="known", strict=True))
'''})
    result = pytester.runpytest("--astro-dags", "dags", "--astro-no-cache", "-x")
    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    phases = _phases(pytester)
    assert phases["dags/broken.py::parse", "call"] is True
    assert phases["dags/warns.py::parse", "call"] is False  # no mark: directly


def test_the_first_failure_stops_a_run_with_x(pytester, write_files):
    write_files(pytester.path, FILES)
    result = pytester.runpytest("--astro-dags", "dags", "--astro-no-cache", "-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
