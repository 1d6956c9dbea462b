"""The gate with the real suite: `python -m pytest --astro-dags` (pytest-astro's plugin and parse
engine, real Airflow) on a tiny real project, in a real git repository."""

from __future__ import annotations

import os

import pytest

try:
    from tests.fake_astro.support import DAG, TOKEN, Scenario, git
except ImportError:  # pragma: no cover
    from fake_astro.support import DAG, TOKEN, Scenario, git

pytestmark = pytest.mark.slow

LEAK_CHECK = """\
import os


def test_the_suite_runs_without_deploy_credentials():
    leaked = [k for k in os.environ if k in ("ASTRO_API_TOKEN", "AWS_SECRET_ACCESS_KEY") or k.startswith("AWS_")]
    assert leaked == []
"""


def real(tmp_path) -> Scenario:
    s = Scenario(tmp_path, real_suite=True)
    s.change({"tests/test_nothing.py": None, "tests/test_env.py": LEAK_CHECK}, "a real test")
    return s


def test_real_suite_passes_then_the_gate_deploys(tmp_path):
    s = real(tmp_path)
    s.change({"dags/etl.py": DAG.format(name="etl") + "# passes the default DAG policies too\n"})
    proc = s.gate(env=s.env(AWS_SECRET_ACCESS_KEY="a-secret-that-must-not-leak"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(d[1], d[-1]) for d in s.deploys()] == [("--dags", "clmain000")]
    rec = s.read_record()
    assert rec["suite"]["dag_files_parsed"] == 2 and rec["suite"]["dag_files_failed"] == 0
    assert rec["suite"]["tests"]["passed"] >= 3  # 2 parse items and the project's own test, at least


def test_real_suite_with_a_broken_dag_deploys_nothing(tmp_path):
    s = real(tmp_path)
    s.change({"dags/report.py": "from airflow import DAG\nimport not_installed_module\n"})
    proc = s.gate()
    assert proc.returncode == 1
    assert "DAG files failed to parse: dags/report.py" in proc.stdout, proc.stdout
    assert s.deploys() == []


def test_real_suite_that_collects_nothing_deploys_nothing(tmp_path):
    s = Scenario(tmp_path, real_suite=True)
    git(s.repo, "rm", "-q", "-r", "dags", "tests")
    git(s.repo, "commit", "-q", "-m", "empty project")
    proc = s.gate()
    assert proc.returncode == 1
    assert "no tests were collected" in proc.stdout or "ran no passing test" in proc.stdout, proc.stdout
    assert s.deploys() == []


# Project code that goes looking for the token where /proc leaves it: the environment every ancestor
# process was started with. It records what it finds and prints it (into the JUnit XML with
# junit_logging=all), so a leak shows up in the findings file, the gate's output and the XML.
ANCESTOR_SCAN = '''\
import os

TOKEN_PREFIX = "eyJhbGciOiJSUzI1NiJ9"


def ancestors():
    pid = os.getpid()
    while pid > 1:
        yield pid
        with open(f"/proc/{pid}/status") as fh:
            pid = int(next(line.split()[1] for line in fh if line.startswith("PPid:")))


FOUND = []
for pid in ancestors():
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
    except OSError:
        continue
    for item in raw.split("\\0"):
        name, _, value = item.partition("=")
        if (name == "ASTRO_API_TOKEN" and value.strip("*")) or TOKEN_PREFIX in item:
            FOUND.append(f"{pid}: {item}")
with open(os.environ["LEAK_REPORT"], "w") as fh:
    fh.write("\\n".join(FOUND))


import pytest


@pytest.fixture
def ancestor_findings():
    return FOUND
'''
PRINT_FINDINGS = """\
def test_print_what_the_ancestors_environments_hold(ancestor_findings):
    print("ancestor environments:", ancestor_findings)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="needs /proc")
@pytest.mark.parametrize("two_steps", [True, False])
def test_project_code_finds_no_token_in_any_ancestors_environment(tmp_path, two_steps):
    s = real(tmp_path)
    s.change({"conftest.py": ANCESTOR_SCAN, "tests/test_scan.py": PRINT_FINDINGS})
    leak, junit = tmp_path / "leak.txt", tmp_path / "junit.xml"
    args = ["--dags", "--suite-args", f"-o junit_logging=all --junitxml={junit}"]
    if two_steps:
        check = s.gate("check", *args, env=s.env(ASTRO_API_TOKEN=None, LEAK_REPORT=str(leak)))
        assert check.returncode == 0, check.stdout + check.stderr
        proc = s.gate("apply", env=s.env(LEAK_REPORT=str(leak)))
    else:
        proc = s.gate(*args, env=s.env(LEAK_REPORT=str(leak)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert leak.exists() and leak.read_text() == ""  # the scan ran, and found nothing
    assert "ancestor environments: []" in junit.read_text()
    assert TOKEN not in junit.read_text() and "ASTRO_API_TOKEN" not in junit.read_text()
    assert len(s.deploys()) == 1
