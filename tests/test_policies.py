"""DAG policies as a user meets them: real `pytest --astro-dags` sessions over real project trees.

Parsing costs an Airflow import in the sandbox (~5 s a session), so one project holds many DAGs,
each built to pass or break specific policies, and the outcome of every item is checked.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from pytest_astro.config import ConfigError
from pytest_astro.policies.builtin import BUILTIN_POLICIES
from pytest_astro.policies.options import PolicyConfig, inline_exemptions

HEAD = '''
from datetime import datetime, timedelta
import pendulum
from airflow import DAG
from airflow.models import BaseOperator
from airflow.providers.standard.operators.empty import EmptyOperator


class Query(BaseOperator):
    def __init__(self, conn_id, **kwargs):
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def execute(self, context):
        return None
'''

GOOD = dict(
    start_date="pendulum.datetime(2024, 1, 1, tz='UTC')", schedule="'@daily'", catchup="False", tags="['etl']",
    default_args="{'owner': 'data', 'retries': 2, 'on_failure_callback': print}",
    description="'loads things'", dagrun_timeout="timedelta(hours=1)", max_active_runs="1",
)


def dag_file(dag_id: str, body: str = "    EmptyOperator(task_id='t')\n", comment: str = "", **args) -> str:
    """A DAG file: GOOD arguments, overridden by ``args`` (None: leave the argument out)."""
    merged = {**GOOD, **args}
    call = ", ".join([repr(dag_id)] + [f"{k}={v}" for k, v in merged.items() if v is not None])
    return HEAD + f"\nwith DAG({call}):{comment}\n{body}"


PROJECT = {
    "pyproject.toml": """
        [tool.pytest-astro.policies]
        extend-select = ["DAG1", "TEAM"]
        ignore = ["DAG108"]

        [tool.pytest-astro.policies.tags]
        allowed = ["etl", "team-*"]

        [tool.pytest-astro.policies.DAG104]
        max = 3

        [tool.pytest-astro.policies.parse_time]
        max-seconds = 20

        [[tool.pytest-astro.policies.exempt]]
        dags = ["legacy_*"]
        codes = ["DAG002"]
        reason = "vendored DAGs, tagged upstream"
    """,
    "airflow_settings.yaml": """
        airflow:
          connections:
            - conn_id: warehouse
              conn_type: postgres
          pools:
            - pool_name: etl_pool
              pool_slot: 2
    """,
    "plugins/airflow_local_settings.py": """
        from airflow.exceptions import AirflowClusterPolicyViolation


        def dag_policy(dag):
            if dag.dag_id.startswith("bad_policy"):
                raise AirflowClusterPolicyViolation(f"DAG {dag.dag_id} must not start with bad_policy")


        def task_policy(task):
            if task.task_id == "forbidden":
                raise AirflowClusterPolicyViolation("task_id 'forbidden' is reserved")
    """,
    # a team rule in the project's own conftest.py
    "conftest.py": """
        from pytest_astro.policies import Policy, Violation


        class NoTmp(Policy):
            code = "TEAM001"
            name = "no_tmp"
            description = "dag_id does not contain 'tmp'"
            hint = "give the DAG its real name"

            def check(self, dag, context):
                return [Violation("a temporary DAG")] if "tmp" in dag.dag_id else []


        def pytest_astro_dag_policies(config):
            return [NoTmp()]
    """,
    "dags/good.py": dag_file("good", body="    Query(task_id='q', conn_id='warehouse', pool='etl_pool')\n"),
    "dags/exemplary.py": dag_file("exemplary", body="    Query(task_id='q', conn_id='warehouse', pool='etl_pool')\n",
                                  default_args="{'owner': 'data@example.com', 'retries': 2, 'on_failure_callback': print}"),
    "dags/bare.py": dag_file("bare", body="    pass\n", schedule=None, catchup=None, tags=None),
    "dags/sloppy.py": dag_file(
        "sloppy", tags="['misc']", default_args="{}", start_date="datetime.now() - timedelta(days=1)",
        description=None, dagrun_timeout=None,
        body="".join(f"    EmptyOperator(task_id='e{i}')\n" for i in range(3))
             + "    Query(task_id='q', conn_id='missing_conn', pool='nope_pool', retries=5, owner='ops')\n"),
    "dags/naive.py": dag_file("naive_tmp", start_date="datetime(2024, 1, 1)",
                              default_args="{'owner': 'data', 'retries': 1, 'on_failure_callback': print}"),
    "dags/twin_a.py": dag_file("twin"),
    "dags/twin_b.py": dag_file("twin"),
    "dags/cycle.py": dag_file("cyclic", body="    a = EmptyOperator(task_id='a')\n    b = EmptyOperator(task_id='b')\n"
                                              "    a >> b >> a\n"),
    # the DAG processor cannot serialize a timetable that no plugin registers (the scheduler never sees it)
    "dags/unserializable.py": dag_file("unserializable", schedule="NightlyTimetable('0 3 * * *', timezone='UTC')")
    .replace("\nwith DAG", "from airflow.timetables.interval import CronDataIntervalTimetable\n"
                           "class NightlyTimetable(CronDataIntervalTimetable):\n    pass\n\nwith DAG"),
    "dags/policy.py": dag_file("bad_policy_dag") + dag_file("forbidden_task", body="    EmptyOperator(task_id='forbidden')\n")
                      .replace(HEAD, ""),
    "dags/exempt.py": dag_file("legacy_import", tags=None)
                      + dag_file("inline_ok", tags=None, comment="  # pytest-astro: ignore[DAG002] generated by a vendor tool").replace(HEAD, "")
                      + dag_file("inline_no_reason", tags=None, comment="  # pytest-astro: ignore[DAG002]").replace(HEAD, ""),
    "dags/deprecated.py": dag_file("deprecated_tag", tags="['etl', 'team-deprecated']"),
}

# the third-party plugin: an installed distribution with a pytest11 entry point
PLUGIN = {
    "site/teamrules/__init__.py": "",
    "site/teamrules/plugin.py": """
        from pytest_astro.policies import Policy, Violation


        class OwnerIsEmail(Policy):
            code = "TEAM100"
            name = "owner_is_email"
            description = "task owners are e-mail addresses"
            hint = "set default_args={'owner': 'team@example.com'}"
            options = {"domain": "example.com"}

            def check(self, dag, context):
                domain = context.options["domain"]
                return [Violation(f"owner {owner!r} is not an address at {domain}", task_id=task)
                        for task, owner in sorted(dag.task_owners.items()) if not owner.endswith("@" + domain)]


        def pytest_astro_dag_policies(config):
            return [OwnerIsEmail()]


        def pytest_astro_check_dag(dag, policy, context):
            if policy.code == "DAG002" and any(t.endswith("deprecated") for t in dag.tags):
                return [Violation("tag 'team-deprecated' is deprecated")]
            return None
    """,
    "site/teamrules-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: teamrules\nVersion: 1.0\n",
    "site/teamrules-1.0.dist-info/entry_points.txt": "[pytest11]\nteamrules = teamrules.plugin\n",
}


def at(file: str, dag_id: str) -> str:
    """``file:line`` of ``with DAG('dag_id'`` in the project's file."""
    lines = textwrap.dedent(PROJECT[file]).lstrip("\n").splitlines()
    return f"{file}:{next(i + 1 for i, t in enumerate(lines) if t.startswith(f'with DAG({dag_id!r}'))}"


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    found = {}
    for line in result.stdout.lines:
        m = re.match(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def section(result: pytest.RunResult, title: str) -> str:
    """The failure (or error) report of the item whose header is ``title`` (its file)."""
    out = result.stdout.str()
    parts = re.split(r"\n_{3,} (.+?) _{3,}\n", out)
    for head, body in zip(parts[1::2], parts[2::2]):
        if head == title or head.endswith(f" {title}"):
            return re.split(r"\n(?:={5,}|-{5,}|_{5,})", body)[0]
    raise AssertionError(f"no report for {title}:\n{out}")


def findings(text: str) -> set[tuple[str, str]]:
    """(code, dag_id) of each finding line (``file:line: CODE dag_id: message``) of a report."""
    return {(m.group(1), m.group(2)) for m in re.finditer(r"^\S+?:(?:\d+:)? ([A-Z]+\d+|exemption) (\S+): ", text, re.M)}


@pytest.fixture
def policy_project(pytester, write_files, monkeypatch):
    write_files(pytester.path, PROJECT)
    write_files(pytester.path, PLUGIN)
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.syspathinsert(pytester.path / "site")
    return pytester.path


def test_policies_on_a_project(policy_project, pytester):
    result = pytester.runpytest("--astro-dags", "-v", "-rs")
    got = outcomes(result)
    # one item per DAG file, and nothing else
    assert sorted(got) == sorted(f"{f}::astro" for f in PROJECT if f.startswith("dags/")), result.stdout.str()
    # every policy, built-in, team and plugin, passes on this DAG
    assert got["dags/exemplary.py::astro"] == "PASSED"
    assert {f for f, outcome in got.items() if outcome != "FAILED"} == {"dags/exemplary.py::astro"}
    expect = {
        "dags/good.py": {("TEAM100", "good")},  # but the plugin's policy
        "dags/bare.py": {("DAG001", "bare"), ("DAG002", "bare"), ("DAG008", "bare"), ("DAG102", "bare")},
        "dags/sloppy.py": {(code, "sloppy") for code in ("DAG002", "DAG003", "DAG101", "DAG007", "DAG103", "DAG104", "DAG106",
                                                         "DAG107", "DAG110", "DAG111", "DAG109", "TEAM100")},
        "dags/naive.py": {("DAG103", "naive_tmp"), ("DAG003", "naive_tmp"), ("TEAM001", "naive_tmp"),
                          ("TEAM100", "naive_tmp")},
        # a parse failure: listed with the findings on its DAG, but what the failure says already (DAG004)
        "dags/twin_a.py": {("TEAM100", "twin")},
        "dags/twin_b.py": {("TEAM100", "twin")},
        "dags/cycle.py": set(),  # Airflow refused the DAG: its parse failure alone
        "dags/unserializable.py": {("DAG006", "unserializable"), ("TEAM100", "unserializable")},
        "dags/policy.py": {("DAG900", "bad_policy_dag"), ("DAG900", "forbidden_task"), ("TEAM100", "bad_policy_dag"),
                           ("TEAM100", "forbidden_task")},
        "dags/exempt.py": {("exemption", "inline_no_reason"), ("DAG002", "inline_no_reason")}
                          | {("TEAM100", d) for d in ("legacy_import", "inline_ok", "inline_no_reason")},
        "dags/deprecated.py": {("DAG002", "deprecated_tag"), ("TEAM100", "deprecated_tag")},
    }
    reports = {file: section(result, file) for file in expect}
    failing = {file: findings("\n".join(line for line in text.splitlines() if not line.startswith("exempted: ")))
               for file, text in reports.items()}
    wrong = {f: (failing[f], codes) for f, codes in expect.items() if failing[f] != codes}
    assert not wrong, result.stdout.str() + f"\n(got, expected): {wrong}"

    def lines(file):
        return pytest.LineMatcher(reports[file].splitlines())

    lines("dags/bare.py").fnmatch_lines([
        f"{at('dags/bare.py', 'bare')}: DAG001 bare: the DAG has no tasks (hint: add tasks to the DAG, or delete it)",
        "(to exempt a DAG: `# pytest-astro: ignore?CODE? <reason>` on its line, or *)"])
    lines("dags/sloppy.py").fnmatch_lines([
        f"{at('dags/sloppy.py', 'sloppy')}: DAG003 sloppy: task 'e0': retries=0 (minimum 2); default_args has no "
        "'retries' (hint: set default_args=*",
        f"{at('dags/sloppy.py', 'sloppy')}: DAG003 sloppy: task 'e2': *"])
    assert "task 'q': retries" not in reports["dags/sloppy.py"]  # the task that retries 5 times
    lines("dags/sloppy.py").fnmatch_lines(["*DAG002 sloppy: tag(s) 'misc' not in the approved list (etl, team-*)*"])
    lines("dags/sloppy.py").fnmatch_lines(["*DAG101 sloppy: task 'e0': owner 'airflow' (the default)*"])
    lines("dags/sloppy.py").fnmatch_lines(["*DAG007 sloppy: start_date is computed at parse time (datetime.now())*"])
    lines("dags/sloppy.py").fnmatch_lines(["*DAG104 sloppy: 4 tasks (at most 3)*"])
    lines("dags/sloppy.py").fnmatch_lines(["*DAG110 sloppy: task 'q': pool 'nope_pool' is not defined*"])
    lines("dags/sloppy.py").fnmatch_lines(["*DAG111 sloppy: task 'q': connection 'missing_conn' is not defined*"])
    lines("dags/bare.py").fnmatch_lines(["*DAG008 bare: *no explicit schedule=*"])
    lines("dags/naive.py").fnmatch_lines(["*DAG103 naive_tmp: start_date 2024-01-01T00:00:00+00:00 was given without a timezone*"])
    lines("dags/naive.py").fnmatch_lines([f"{at('dags/naive.py', 'naive_tmp')}: TEAM001 naive_tmp: a temporary DAG "
                                          "(hint: give the DAG its real name)"])
    lines("dags/twin_a.py").fnmatch_lines([f"dags/twin_a.py:*: DuplicateDagId: dag_id 'twin' is also defined in dags/twin_b.py:*"])
    lines("dags/cycle.py").fnmatch_lines(["dags/cycle.py:*: AirflowDagCycleException: Cycle detected in [Dd][Aa][Gg]: cyclic*"])
    lines("dags/unserializable.py").fnmatch_lines(["*DAG006 unserializable: serialization failed: *Timetable class "
                                                   "*NightlyTimetable' is not registered*"])
    lines("dags/policy.py").fnmatch_lines([
        f"{at('dags/policy.py', 'bad_policy_dag')}: DAG900 bad_policy_dag: dag_policy in plugins/airflow_local_settings.py "
        "refuses it: AirflowClusterPolicyViolation: DAG bad_policy_dag must not start with bad_policy*"])
    lines("dags/policy.py").fnmatch_lines([
        "*DAG900 forbidden_task: task 'forbidden': task_policy in plugins/airflow_local_settings.py refuses it: "
        "*'forbidden' is reserved*"])
    lines("dags/exempt.py").fnmatch_lines([
        f"{at('dags/exempt.py', 'inline_no_reason')}: exemption inline_no_reason: `# pytest-astro: ignore?...?` has no "
        "reason; write *"])
    lines("dags/deprecated.py").fnmatch_lines(["*DAG002 deprecated_tag: tag 'team-deprecated' is deprecated*"])
    lines("dags/good.py").fnmatch_lines(["*TEAM100 good: task 'q': owner 'data' is not an address at example.com*"])
    # exempted findings are listed with their reasons, not as a skip of the file
    lines("dags/exempt.py").fnmatch_lines([
        "exempted: *DAG002 legacy_import: the DAG has 0 tag(s)* [[]exempt at *pyproject.toml:14: vendored DAGs, tagged upstream[]]"])
    lines("dags/exempt.py").fnmatch_lines([
        f"exempted: *DAG002 inline_ok: * [[]exempt at {at('dags/exempt.py', 'inline_ok')}: generated by a vendor tool[]]"])
    assert "SKIPPED" not in result.stdout.str()
    result.stdout.fnmatch_lines(["exempted findings (2):", "  dags/exempt.py:*: DAG002 *: * [[]exempt at *"])
    # ignored by code: never reported
    assert "DAG108" not in result.stdout.str()

    # selection by dag_id and by the code a file breaks works like for any test (results from the cache)
    result = pytester.runpytest("--astro-dags", "-v", "dags/good.py", "dags/sloppy.py", "dags/naive.py", "-k", "DAG104 or good")
    assert sorted(outcomes(result)) == ["dags/good.py::astro", "dags/sloppy.py::astro"]
    result = pytester.runpytest("--astro-dags", "-v", "-k", "naive_tmp")
    assert outcomes(result) == {"dags/naive.py::astro": "FAILED"}
    result = pytester.runpytest("--astro-dags", "-v", "dags/sloppy.py::astro")
    assert outcomes(result) == {"dags/sloppy.py::astro": "FAILED"}


def test_exemption_without_a_reason_is_an_error(pytester, write_files):
    write_files(pytester.path, {
        "pyproject.toml": """
            [tool.pytest-astro]
            timeout = 30

            [[tool.pytest-astro.policies.exempt]]
            dags = ["legacy_*"]
            codes = ["DAG002"]
            reason = "fine"

            [[tool.pytest-astro.policies.exempt]]
            dags = ["old_*"]
            codes = ["DAG003"]
        """,
        "dags/one.py": dag_file("one"),
    })
    result = pytester.runpytest("--astro-dags")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-astro: {pytester.path / 'pyproject.toml'}:9: exemption "
                                 "without a reason; add reason = *"])


POLICIES = BUILTIN_POLICIES


def load(table: dict, tmp_path: Path) -> PolicyConfig:
    return PolicyConfig.load(table, POLICIES, tmp_path / "pyproject.toml")


def test_selection_defaults_prefixes_and_ignore(tmp_path):
    assert [p.code for p in load({}, tmp_path).selected] == [
        "DAG001", "DAG002", "DAG003", "DAG004", "DAG005", "DAG006", "DAG007", "DAG008", "DAG009", "DAG010",
        "DAG900"]
    assert [p.code for p in load({"select": ["DAG1"], "ignore": ["DAG105"]}, tmp_path).selected] == [
        "DAG101", "DAG102", "DAG103", "DAG104", "DAG106", "DAG107", "DAG108", "DAG109", "DAG110", "DAG111",
        "DAG112"]
    assert len(load({"select": ["ALL"]}, tmp_path).selected) == len(POLICIES)
    options = load({"retries": {"min": 4}, "DAG002": {"allowed": ["a"]}}, tmp_path).options
    assert options["DAG003"] == {"min": 4} and options["DAG002"] == {"allowed": ["a"], "min": 1}


@pytest.mark.parametrize("table, message", [
    ({"select": ["DAG7"]}, "select: no policy has the code 'DAG7'; known codes: DAG001, "),
    ({"ignore": ["dag 1"]}, "'DAG 1' is not a policy code or prefix"),
    ({"retries": {"minimum": 3}}, "DAG003 has no option 'minimum' (options: min)"),
    ({"nonsense": {"a": 1}}, "unknown key 'nonsense'"),
    ({"exempt": [{"codes": ["DAG002"], "reason": "why"}]}, "say which DAGs the exemption is for"),
])
def test_config_errors_say_what_to_do(tmp_path, table, message):
    with pytest.raises(ConfigError) as info:
        load(table, tmp_path)
    assert message in str(info.value)


def test_inline_exemptions():
    lines = ["# pytest-astro: ignore[DAG003] retried by the sensor", "with DAG('x'):  # pytest-astro: ignore[DAG002,DAG1] vendor",
             "    pass", "x()  # pytest-astro: ignore[DAG004]"]
    found = inline_exemptions(lines, 2)
    assert [(e.codes, e.reason, e.line, e.error) for e in found] == [
        (["DAG002", "DAG1"], "vendor", 2, ""), (["DAG003"], "retried by the sensor", 1, "")]
    assert inline_exemptions(lines, 3) == []
    assert "has no reason" in inline_exemptions(lines, 4)[0].error


def test_every_builtin_is_documented(tmp_path):
    """docs/policies.md's table is generated from the classes (scripts/mkdocs_hooks.py): each needs the
    text it is made from, and the page asks for the table."""
    import importlib.util

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", repo / "scripts" / "mkdocs_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    assert "<!-- generate: policies -->" in (repo / "docs" / "policies.md").read_text()
    table = hooks.policies()
    for policy in POLICIES:
        assert policy.description and policy.hint and policy.example, policy.code
        assert f"| {policy.code} | `{policy.name}` |" in table, policy.code


def test_serialization_runs_only_when_its_policy_is_selected(pytester, write_files):
    from tests.conftest import DAG as TEMPLATE

    write_files(pytester.path, {"dags/a.py": TEMPLATE.format(dag_id="a")})

    def checks(table: str) -> dict:
        (pytester.path / "pyproject.toml").write_text(f"[tool.pytest-astro.policies]\n{table}\n")
        pytester.runpytest("--astro-dags", "--astro-report", "r.json")
        report = json.loads((pytester.path / "r.json").read_text())
        return report["files"][0]["dags"][0]["checks"]

    assert checks("select = []").get("serialize") is None  # the costliest check is skipped...
    assert checks('select = ["DAG00"]')["serialize"] == {"ok": True}  # ...unless DAG006 may run
    assert checks('ignore = ["DAG006"]').get("serialize") is None


def test_start_date_is_read_from_the_source_once_in_the_sandbox(pytester):
    """DAG007 reads the DAG's constructor call from the source. The sandbox does it while parsing
    (so a run from the cache does not parse every DAG file again); a result without that record
    (a cache entry from before, or a read that failed) makes the policy read the source itself."""
    from types import SimpleNamespace

    from pytest_astro.policies.builtin import StaticStartDate
    from pytest_astro.results import DagSummary

    (pytester.path / "dags").mkdir()
    (pytester.path / "dags/moving.py").write_text(dag_file("moving", start_date="datetime.now() - timedelta(days=1)"))
    (pytester.path / "dags/fixed.py").write_text(dag_file("fixed"))
    result = pytester.runpytest("--astro-dags", "--astro-report", "r.json", "-v")
    result.stdout.fnmatch_lines(["*DAG007 moving: start_date is computed at parse time*"])
    files = {f["file"]: f for f in json.loads((pytester.path / "r.json").read_text())["files"]}
    moving, fixed = files["dags/moving.py"]["dags"][0], files["dags/fixed.py"]["dags"][0]
    assert moving["checks"]["start_date_static"] == "datetime.now()"
    assert fixed["checks"]["start_date_static"] is None

    context = SimpleNamespace(project=SimpleNamespace(root=pytester.path))
    for dag, expected in ((moving, ["start_date is computed at parse time (datetime.now())"]), (fixed, [])):
        without = {k: v for k, v in dag["checks"].items() if k != "start_date_static"}
        found = StaticStartDate().check(DagSummary.from_dict({**dag, "checks": without}), context)
        assert [v.message.split(":")[0] for v in found] == expected


TEAM_IN_TESTS = '''
from pytest_astro.policies import Policy, Violation


class Owner(Policy):
    code = "TEAM010"
    name = "team_owner"
    description = "the DAG's tasks belong to the data team"
    hint = "set default_args={'owner': 'data'}"
    default = True

    def check(self, dag, context):
        if dag.dag_id == "explodes":
            raise ValueError("the team's policy has a bug")
        return [Violation("not the data team's", task_id=t) for t, o in sorted(dag.task_owners.items()) if o != "data"]


def pytest_astro_dag_policies(config):
    return [Owner()]
'''

# a bug in a built-in policy, as a real bug would show: the policy's check raises (for this session
# only: pytester's in-process run shares our modules)
BROKEN_BUILTIN = '''
from pytest_astro.policies import builtin

KEPT = builtin.Tags.check


def crash(self, dag, context):
    if dag.dag_id == "crashes":
        return {}["no such key"]
    return KEPT(self, dag, context)


def pytest_configure(config):
    builtin.Tags.check = crash


def pytest_unconfigure(config):
    builtin.Tags.check = KEPT
'''


def test_a_policy_in_tests_conftest_applies_and_errors_are_named(pytester, write_files):
    """``tests/conftest.py`` loads after ``dags/`` is collected: its policy applies all the same. A
    policy that raises makes the file's item an error naming it (a team's: its own; ours: a bug in
    pytest-astro, with our traceback and none of pytest's runner), and every other file is checked."""
    write_files(pytester.path, {
        "pyproject.toml": '[tool.pytest-astro.policies]\nselect = ["DAG001", "DAG002", "TEAM"]\n',
        "tests/conftest.py": TEAM_IN_TESTS,
        "tests/test_x.py": "def test_x():\n    pass\n",
        "conftest.py": BROKEN_BUILTIN,
        "dags/good.py": dag_file("good"),
        "dags/someone_elses.py": dag_file("someone_elses", default_args="{'owner': 'ops', 'retries': 2}"),
        "dags/explodes.py": dag_file("explodes"),
        "dags/crashes.py": dag_file("crashes"),
    })
    result = pytester.runpytest("--astro-dags", "dags", "tests", "-v")
    assert outcomes(result) == {"dags/crashes.py::astro": "ERROR", "dags/explodes.py::astro": "ERROR",
                                "dags/good.py::astro": "PASSED", "dags/someone_elses.py::astro": "FAILED",
                                "tests/test_x.py::test_x": "PASSED"}, result.stdout.str()
    section(result, "dags/someone_elses.py")  # the team's policy, from tests/conftest.py, found it
    assert "TEAM010 someone_elses: task 't': not the data team's (hint: set default_args={'owner': 'data'})" \
        in section(result, "dags/someone_elses.py")
    team = section(result, "ERROR at setup of dags/explodes.py")
    assert team.splitlines()[0] == (
        "policy TEAM010 team_owner (from tests/conftest.py) raised an exception on "
        "explodes (dags/explodes.py:16) (an error of that policy, not a finding: fix the policy or report it to its "
        "authors)")
    assert "ValueError: the team's policy has a bug" in team and "this is a bug in pytest-astro" not in team
    ours = section(result, "ERROR at setup of dags/crashes.py")
    assert ours.splitlines()[0] == (
        "pytest-astro: internal error in policy DAG002 tags on crashes (dags/crashes.py:16): this is a bug in "
        "pytest-astro, not in your DAG; please report it with the traceback below")
    assert "KeyError: 'no such key'" in ours and 'return {}["no such key"]' in ours
    for text in (team, ours):
        assert "_pytest" not in text and "CallInfo" not in text and "pluggy" not in text, text
    result.stdout.fnmatch_lines(["*1 failed, 2 passed, 2 errors*"])


def test_an_internal_error_of_the_sandbox_makes_the_item_an_error(pytester):
    """A result that says our own sandbox code failed on the file is no verdict: the file's item
    errors with our notice and traceback, and the other files keep their outcomes."""
    from tests.test_verdicts import BREAKS_US, GOOD

    (pytester.path / "dags").mkdir()
    (pytester.path / "pyproject.toml").write_text("[tool.pytest-astro.policies]\nselect = []\n")
    (pytester.path / "dags/breaks_us.py").write_text(BREAKS_US)
    (pytester.path / "dags/good.py").write_text(GOOD.format(dag_id="good"))
    (pytester.path / "dags/broken.py").write_text("from airflow import DAG\nraise ValueError('mine')\n")
    result = pytester.runpytest("--astro-dags", "-v")
    assert outcomes(result) == {"dags/breaks_us.py::astro": "ERROR", "dags/broken.py::astro": "FAILED",
                                "dags/good.py::astro": "PASSED"}, result.stdout.str()
    text = section(result, "ERROR at setup of dags/breaks_us.py")
    assert "this is a bug in pytest-astro, not in your DAG" in text and "Traceback (pytest-astro):" in text


CRON_DESCRIPTIONS = '''
import json
from airflow.timetables.trigger import CronTriggerTimetable


def describe():
    out = []
    for expression in ["@daily", "0 3 * * *", "*/5 * * * *", "0 0 1 * 1", "0 12 * * MON-FRI", "not a cron",
                       "0 0 * * * * *", "1 2 3", "61 * * * *"]:
        try:
            out.append(CronTriggerTimetable(expression, timezone="UTC").description)
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


real = describe()
from pytest_astro.parse.adapter import adapter  # installs the memo

adapter()
print(json.dumps({"real": real, "first": describe(), "again": describe()}))
'''


def test_cron_descriptions_are_memoized_without_changing_them(tmp_path):
    """The sandbox describes each cron expression once (adapter.memoize_cron_descriptions); every
    description, and every failure, is what Airflow gives without the memo, on first use and after."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", CRON_DESCRIPTIONS], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["real"] == seen["first"] == seen["again"]
    assert "At 03:00" in seen["real"] and "" in seen["real"]  # described ones and undescribable ones
    probe = subprocess.run([sys.executable, "-c", "from pytest_astro.parse.adapter import adapter; adapter();"
                            "from airflow.timetables import _cron; print(_cron.ExpressionDescriptor._pytest_astro_memo)"],
                           capture_output=True, text=True, env=env)
    assert probe.stdout.strip() == "True", probe.stderr


def _tamper(root: Path) -> int:
    """Mark every cached finding's message (``TAMPERED``): a run that shows it read the cache."""
    path = root / ".pytest_cache" / "pytest-astro" / "findings" / "index.json"
    data = json.loads(path.read_text())
    marked = 0
    for _, stored in data["files"].values():
        for finding in stored:
            finding[6] = "TAMPERED " + finding[6]  # [index, file, line, code, name, dag_id, message, ...]
            marked += 1
    path.write_text(json.dumps(data))
    return marked


def test_findings_cache_is_never_stale(pytester, write_files):
    """A file's findings come from the cache only while nothing they depend on changed: the policy
    options, select/ignore, the exemptions, a team's policy in conftest.py, the file itself."""
    write_files(pytester.path, {
        "pyproject.toml": """
            [tool.pytest-astro.policies.tags]
            min = 1
        """,
        "dags/untagged.py": dag_file("untagged", tags=None),
        "dags/tagged.py": dag_file("tagged"),
    })

    def run(*args):
        result = pytester.runpytest("--astro-dags", "-v", *args)
        return result, result.stdout.str()

    result, out = run()
    assert outcomes(result) == {"dags/untagged.py::astro": "FAILED", "dags/tagged.py::astro": "PASSED"}, out
    assert "DAG002 untagged: the DAG has 0 tag(s), at least 1 required" in out
    assert _tamper(pytester.path) == 1
    # nothing changed: the findings are the cached ones (the mark shows), the verdicts the same
    result, out = run()
    assert "DAG002 untagged: TAMPERED the DAG has 0 tag(s)" in out, out
    assert outcomes(result) == {"dags/untagged.py::astro": "FAILED", "dags/tagged.py::astro": "PASSED"}

    # an option of the policy
    write_files(pytester.path, {"pyproject.toml": "[tool.pytest-astro.policies.tags]\nmin = 2\n"})
    result, out = run()
    assert "TAMPERED" not in out and "at least 2 required" in out, out
    assert outcomes(result)["dags/tagged.py::astro"] == "FAILED"  # one tag of two

    # the selection
    _tamper(pytester.path)
    write_files(pytester.path, {"pyproject.toml": "[tool.pytest-astro.policies]\nignore = ['DAG002']\n"})
    result, out = run()
    assert "TAMPERED" not in out and "DAG002" not in out, out
    assert set(outcomes(result).values()) == {"PASSED"}

    # an exemption in pyproject.toml (its line is part of what a finding says)
    write_files(pytester.path, {"pyproject.toml": """
        [[tool.pytest-astro.policies.exempt]]
        dags = ["untagged"]
        codes = ["DAG002"]
        reason = "tagged later"
    """})
    run()
    _tamper(pytester.path)
    write_files(pytester.path, {"pyproject.toml": """
        # a line more: the exemption moved
        [[tool.pytest-astro.policies.exempt]]
        dags = ["untagged"]
        codes = ["DAG002"]
        reason = "tagged later"
    """})
    result, out = run("-rA")
    assert "TAMPERED" not in out and "[exempt at *pyproject.toml:2: tagged later]" not in out, out
    result.stdout.fnmatch_lines(["*DAG002 untagged: the DAG has 0 tag(s)* [[]exempt at *pyproject.toml:2: tagged later[]]*"])

    # a team's policy in conftest.py: it runs (never cached), and the cached findings are made again
    write_files(pytester.path, {"pyproject.toml": "", "conftest.py": """
        from pytest_astro.policies import Policy, Violation

        class NoUntagged(Policy):
            code, name, default = "TEAM001", "no_untagged", True
            description = hint = "no 'untagged' in a dag_id"

            def check(self, dag, context):
                return [Violation("named untagged")] if "untagged" in dag.dag_id else []

        def pytest_astro_dag_policies(config):
            return [NoUntagged()]
    """})
    run()
    _tamper(pytester.path)
    (pytester.path / "conftest.py").write_text((pytester.path / "conftest.py").read_text().replace(
        "named untagged", "NAMED untagged"))
    result, out = run()
    # the team policy's change shows; ours come from the cache (the policies' codes are the same)
    assert "TEAM001 untagged: NAMED untagged" in out and "DAG002 untagged: TAMPERED" in out, out
    (pytester.path / "conftest.py").unlink()
    result, out = run()
    assert "TAMPERED" not in out and "TEAM001" not in out and "DAG002 untagged: the DAG has 0 tag(s)" in out, out

    # the file itself: an inline exemption added
    _tamper(pytester.path)
    path = pytester.path / "dags/untagged.py"
    path.write_text("\n".join(line + "  # pytest-astro: ignore[DAG002] tagged later"
                              if line.startswith("with DAG('untagged'") else line
                              for line in path.read_text().split("\n")))
    result, out = run()
    assert "TAMPERED" not in out, out
    assert outcomes(result)["dags/untagged.py::astro"] == "PASSED", out
    # --cache-clear forgets the findings with the results
    _tamper(pytester.path)
    result, out = run("--cache-clear", "-rA")
    assert "TAMPERED" not in out and "[exempt at dags/untagged.py:16: tagged later]" in out, out
