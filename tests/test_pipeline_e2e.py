"""The generated GitLab pipeline, run for real: gitlab-ci-local (npm; shell executor, with its own
copy of the checkout per job and its own cache folder, as a runner has) runs the `astro-test` and
`astro-deploy` jobs of `pytest-astro ci init --provider gitlab` over a git checkout of the example
project. pytest-astro comes from a wheel built from this repository, installed by the job's own
`pip install` line (the pinned version, found in a local folder through PIP_FIND_LINKS, with
PIP_NO_INDEX: nothing is downloaded); the Astro CLI is tests/fake_astro. `scripts/dev.sh test`
installs gitlab-ci-local, Node 22 and rsync; without them these tests skip and say why.

The job's Python is a virtualenv made for this test with the packages of the one running the tests
(Airflow, providers, pytest) minus pytest-astro: the job installs pytest-astro into it from the wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_astro import __version__
from pytest_astro.cli import main
from tests.conftest import EXAMPLES
from tests.fake_astro.support import TOKEN
from tests.test_ci import tools_bin

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FAKE_ASTRO = REPO / "tests" / "fake_astro" / "astro"
DEPLOYMENT = "clfakedeployment00000000000"
# the project's own test, run by the suite in both jobs: the suite never sees the deploy token
NO_TOKEN_TEST = '''\
import os


def test_the_suite_runs_without_the_deploy_token():
    assert "ASTRO_API_TOKEN" not in os.environ
'''


def run(*args: str, cwd: Path, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def git(repo: Path, *args: str) -> str:
    return run("git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false",
               *args, cwd=repo).stdout


@pytest.fixture(scope="module")
def gitlab_ci_local() -> Path:
    exe = tools_bin("gitlab-ci-local")
    tools_bin("node")  # gitlab-ci-local 4.75 needs Node 22 (`#!/usr/bin/env node`: its folder goes first on PATH)
    if not shutil.which("rsync"):
        pytest.skip("rsync is not installed (gitlab-ci-local's shell executor copies the checkout with it): "
                    "`apt-get install rsync`, which `bash scripts/dev.sh test` does when it runs as root")
    return exe


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory) -> Path:
    """pytest-astro's wheel and sdist, built from this checkout as the release workflow builds them
    (`python -m build`), and checked as it checks them (`twine check --strict`)."""
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src") / "pytest-astro"
    # a clean copy: the build must not pick up caches or another helper's build folders
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".pytest_cache", "__pycache__", "dist", "build",
                                                              "*.egg-info", ".gitlab-ci-local"))
    run(sys.executable, "-m", "build", "--outdir", str(out), str(src), cwd=src, timeout=600)
    run(sys.executable, "-m", "twine", "check", "--strict", *map(str, out.iterdir()), cwd=out)
    assert (out / f"pytest_astro-{__version__}-py3-none-any.whl").is_file()
    return out


@pytest.fixture(scope="module")
def job_python(tmp_path_factory) -> Path:
    """The bin folder of a virtualenv with pip and everything the test venv has except pytest-astro."""
    venv = tmp_path_factory.mktemp("job") / "venv"
    uv = [sys.executable, "-m", "uv"]
    if subprocess.run([*uv, "--version"], capture_output=True).returncode != 0:
        pytest.skip("uv is not installed in the test virtualenv (scripts/dev.sh installs it)")
    frozen = run(*uv, "pip", "freeze", "--python", sys.executable, cwd=REPO).stdout.splitlines()
    reqs = venv.parent / "requirements.txt"
    reqs.write_text("\n".join(line for line in frozen if not re.match(r"(-e |pytest[-_]astro\b)", line)) + "\n")
    run(*uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(venv), cwd=REPO)
    run(*uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r", str(reqs), cwd=REPO,
        timeout=600)
    return venv / "bin"


def make_checkout(root: Path, *ci_args: str, branches: str = f'main = "{DEPLOYMENT}"') -> Path:
    """A git checkout of the example project with the generated .gitlab-ci.yml committed on main."""
    repo = root / "project"
    # without the example's tests that run whole DAGs (dag.test(): slow, and they parse every DAG file
    # in every shard for their parametrization; tests/test_task_fixtures.py runs them)
    shutil.copytree(EXAMPLES / "astro-project", repo,
                    ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__", "test_tasks.py"))
    (repo / "tests" / "test_no_token.py").write_text(NO_TOKEN_TEST)
    with (repo / "pyproject.toml").open("a") as fh:
        fh.write(f"\n[tool.pytest-astro.deploy.branches]\n{branches}\n")
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert main(["ci", "init", "--provider", "gitlab", "--python", py, "--output", str(repo / ".gitlab-ci.yml"),
                 *ci_args]) == 0
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the project")
    return repo


def run_job(exe: Path, job_bin: Path, repo: Path, job: str, *variables: str, env: dict | None = None,
            isolation: bool = True) -> subprocess.CompletedProcess:
    """One job (with the jobs it needs), as a runner runs it: the cache restored from and saved to
    gitlab-ci-local's cache folder, artifacts collected and passed on. With ``isolation`` each job
    works in its own copy of the checkout; without, in the checkout itself (the same path for every
    job, as on a GitLab runner: the deploy plan names the project's path)."""
    path = os.pathsep.join([str(job_bin), str(FAKE_ASTRO.parent), str(exe.parent), os.environ.get("PATH", "")])
    args = [str(exe), "--force-shell-executor", *(["--shell-isolation"] if isolation else []), "--needs",
            "--no-artifacts-to-source", "--ignore-predefined-vars", "CI_PIPELINE_SOURCE",
            "--variable", "PIP_NO_INDEX=1", "--variable", f"PIP_FIND_LINKS={env['WHEELS']}",
            "--variable", "PIP_CONSTRAINT=",  # the template's constraints URL: the packages are installed already
            *[a for v in variables for a in ("--variable", v)], job]
    full_env = {**os.environ, "PATH": path, **(env or {})}
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_CURRENT_TEST", "COV_CORE_SOURCE", "VIRTUAL_ENV",
                 "PYTHONPATH"):
        full_env.pop(name, None)
    return subprocess.run(args, cwd=repo, env=full_env, capture_output=True, text=True, timeout=900)


def assert_junit_passed(path: Path) -> None:
    """The JUnit report of a passing run over the example project: every DAG file and the project's
    own tests in it, nothing failed."""
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite.get("failures") == suite.get("errors") == "0" and int(suite.get("tests")) >= 5
    text = path.read_text()
    assert all(stem in text for stem in ("assets", "classic_etl", "example_taskflow", "regional_reports",
                                         "test_the_suite_runs_without_the_deploy_token"))


def parse_counts(log: str) -> tuple[int, int]:
    """(DAG files, of which from the cache), from the job log's pytest-astro summary."""
    m = re.search(r"(\d+) DAG files \((\d+) unchanged, from cache\)", log)
    assert m, log[-4000:]
    return int(m.group(1)), int(m.group(2))


def rerun_with_one_dag_changed(exe: Path, job_bin: Path, repo: Path, env: dict) -> str:
    """The next merge request pipeline: one DAG file changed and committed, the test job run again
    from a fresh copy of the checkout and the cache it saved; its log."""
    with (repo / "dags" / "classic_etl.py").open("a") as fh:
        fh.write("\n# a change that keeps the DAG valid\n")
    git(repo, "commit", "-q", "-am", "touch one DAG file")
    proc = run_job(exe, job_bin, repo, "astro-test", "CI_PIPELINE_SOURCE=merge_request_event", env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    return log


def test_the_merge_request_job_passes_publishes_its_reports_and_stays_warm(
        tmp_path, gitlab_ci_local, job_python, wheel_dir):
    repo = make_checkout(tmp_path)
    env = {"WHEELS": str(wheel_dir)}
    first = run_job(gitlab_ci_local, job_python, repo, "astro-test", "CI_PIPELINE_SOURCE=merge_request_event", env=env)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-6000:]
    assert f"Successfully installed pytest-astro-{__version__}" in log  # the pinned version, from the wheel
    assert parse_counts(log) == (4, 0)
    artifacts = repo / ".gitlab-ci-local" / "artifacts" / "astro-test"
    assert_junit_passed(artifacts / "test-results" / "pytest-astro.xml")
    assert json.loads((artifacts / "gl-code-quality.json").read_text()) == []  # a clean project: no findings

    log = rerun_with_one_dag_changed(gitlab_ci_local, job_python, repo, env)
    assert "imported cache 'pytest-astro-py" in log
    assert parse_counts(log) == (4, 3)  # only the changed file is parsed again


def shard_counts(log: str) -> dict[str, tuple[int, int]]:
    """{shard label: (DAG files, of which from the cache)} from the logs of a job's parallel copies."""
    counts = {}
    for job, text in re.findall(r"^(astro-test: \[\d+/\d+\]) > (.*)$", log, re.MULTILINE):
        m = re.search(r"(\d+) DAG files \((\d+) unchanged, from cache\)", text)
        if m:
            counts[job] = (int(m.group(1)), int(m.group(2)))
    return counts


def test_sharded_merge_request_jobs_split_the_dag_files_and_each_stays_warm(
        tmp_path, gitlab_ci_local, job_python, wheel_dir):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True)
    if "--astro-shard" not in proc.stdout:
        pytest.skip("`pytest --astro-dags --astro-shard` (the shards helper's work) is not in this checkout yet")
    repo = make_checkout(tmp_path, "--shards", "2")
    env = {"WHEELS": str(wheel_dir)}
    first = run_job(gitlab_ci_local, job_python, repo, "astro-test", "CI_PIPELINE_SOURCE=merge_request_event", env=env)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-6000:]
    counts = shard_counts(log)
    assert len(counts) == 2 and sum(files for files, _ in counts.values()) == 4, (counts, log[-6000:])
    assert all(cached == 0 for _, cached in counts.values())
    log = rerun_with_one_dag_changed(gitlab_ci_local, job_python, repo, env)
    assert re.search(r"imported cache 'pytest-astro-py[\d.]+-main-1'", log)
    assert re.search(r"imported cache 'pytest-astro-py[\d.]+-main-2'", log)  # a parse cache per shard
    again = shard_counts(log)
    assert again.keys() == counts.keys()
    assert sum(files - cached for files, cached in again.values()) == 1  # only the changed file, in its shard


@pytest.fixture
def two_step_gate(tmp_path: Path) -> None:
    """Skips while the deploy gate has no `check` / `apply` steps (they are built in parallel)."""
    for step in ("check", "apply"):
        proc = subprocess.run([sys.executable, "-m", "pytest_astro.cli", "deploy", step, "--plan",
                               str(tmp_path / "no-plan.json"), "--dry-run"], cwd=tmp_path, capture_output=True, text=True)
        if f"unrecognized arguments: {step}" in proc.stderr or "invalid choice" in proc.stderr:
            pytest.skip(f"`pytest-astro deploy {step}` (the two-step deploy gate) is not in this checkout yet")


def scoped_token(repo: Path) -> None:
    """ASTRO_API_TOKEN as the template's header asks: a CI/CD variable scoped to the environment
    `main`, so only the job with `environment: main` (the deploy job) gets it."""
    (repo / ".gitlab-ci-local-variables.yml").write_text(
        f"ASTRO_API_TOKEN:\n  values:\n    main: {json.dumps(TOKEN)}\n")


def test_the_deploy_jobs_check_without_the_token_then_deploy_and_keep_the_record(
        two_step_gate, tmp_path, gitlab_ci_local, job_python, wheel_dir):
    repo = make_checkout(tmp_path, "--dags-repo")  # a DAG-only deploy: no Docker service in the job
    scoped_token(repo)
    log_file = tmp_path / "astro-calls.jsonl"
    env = {"WHEELS": str(wheel_dir), "FAKE_ASTRO_LOG": str(log_file)}
    proc = run_job(gitlab_ci_local, job_python, repo, "astro-deploy", env=env, isolation=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "PASS  astro-check" in log and "PASS  astro-deploy" in log  # astro-deploy needs astro-check
    assert TOKEN not in log
    calls = [json.loads(line) for line in log_file.read_text().splitlines()]
    deploys = [c for c in calls if c["argv"][:1] == ["deploy"]]
    assert len(deploys) == 1 and DEPLOYMENT in deploys[0]["argv"] and "--dags" in deploys[0]["argv"]
    assert deploys[0]["env"]["ASTRO_API_TOKEN"] == TOKEN
    artifacts = repo / ".gitlab-ci-local" / "artifacts"
    record = json.loads((artifacts / "astro-deploy" / "pytest-astro-deploy.json").read_text())
    assert DEPLOYMENT in json.dumps(record)
    assert (artifacts / "astro-deploy" / "pytest-astro-plan.json").is_file()
    assert_junit_passed(artifacts / "astro-check" / "test-results" / "pytest-astro.xml")


def test_the_deploy_job_fails_on_a_branch_without_a_target(two_step_gate, tmp_path, gitlab_ci_local, job_python,
                                                           wheel_dir):
    repo = make_checkout(tmp_path, "--dags-repo", branches=f'production = "{DEPLOYMENT}"')
    scoped_token(repo)
    log_file = tmp_path / "astro-calls.jsonl"
    env = {"WHEELS": str(wheel_dir), "FAKE_ASTRO_LOG": str(log_file)}
    proc = run_job(gitlab_ci_local, job_python, repo, "astro-deploy", env=env, isolation=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "FAIL  astro-check" in log, log[-6000:]
    assert re.search(r"main.*(no target|unmapped)", log), log[-6000:]
    calls = [json.loads(line) for line in log_file.read_text().splitlines()] if log_file.exists() else []
    assert not [c for c in calls if c["argv"][:1] == ["deploy"]]  # nothing deployed
