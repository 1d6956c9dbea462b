"""The deploy gate end to end: a real git repository per scenario, `pytest-astro deploy` in a
subprocess, a fake suite that writes the plugin's report, and a fake `astro` on PATH."""

from __future__ import annotations

import json

import pytest

try:  # tests/ is a package in this repository; the fallback keeps the module runnable on its own
    from tests.fake_astro.support import AWS_SECRET, TOKEN, Scenario, git
except ImportError:  # pragma: no cover
    from fake_astro.support import AWS_SECRET, TOKEN, Scenario, git

NULL_SHA = "0" * 40


def github_push(s: Scenario, before: str, branch: str = "main", **extra) -> dict:
    event = s.tmp / "event.json"
    event.write_text(json.dumps({"before": before, "after": git(s.repo, "rev-parse", "HEAD")}))
    return s.env(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="push", GITHUB_REF=f"refs/heads/{branch}",
                 GITHUB_REF_NAME=branch, GITHUB_REF_TYPE="branch", GITHUB_SHA=git(s.repo, "rev-parse", "HEAD"),
                 GITHUB_EVENT_PATH=str(event), **extra)


def assert_nothing_deployed(s: Scenario) -> None:
    assert s.deploys() == []


# ------------------------------------------------------------------ deploy type decisions

def test_dag_only_change_makes_a_dag_only_deploy_with_the_token_and_a_description(tmp_path):
    s = Scenario(tmp_path)
    s.change({"dags/etl.py": "# airflow dag\nfrom airflow.sdk import DAG\n"}, "tune the etl DAG")
    short = git(s.repo, "rev-parse", "--short", "HEAD")
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    proc = s.gate(env=github_push(s, s.first, TMPDIR=str(tmp)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(tmp.iterdir()) == []  # the suite's report was read, then removed
    assert s.deploys() == [["deploy", "--dags", "--wait", f"--description={short} tune the etl DAG", "--", "clmain000"]]
    deploy_call = [c for c in s.astro_calls() if c["argv"][0] == "deploy"][0]
    assert deploy_call["env"]["ASTRO_API_TOKEN"] == TOKEN  # the CLI gets the token...
    assert "ASTRO_API_TOKEN" not in s.suite_env  # ...the suite does not
    rec = s.read_record()
    assert rec["outcome"] == "deployed" and rec["deploy_type"] == "dags"
    assert rec["branch"] == "main" and rec["commit"] == git(s.repo, "rev-parse", "HEAD")
    assert rec["target"] == {"kind": "astro", "deployment_id": "clmain000"}
    assert rec["suite"]["tests"]["passed"] == 3
    assert rec["versions"]["astro-cli"] == "Astro CLI Version: 1.99.0-fake"
    assert {"pytest-astro", "python", "airflow"} <= set(rec["versions"])
    assert "| Outcome | deployed |" in s.summary.read_text()


def test_a_push_of_several_commits_is_judged_on_the_whole_range(tmp_path):
    s = Scenario(tmp_path)
    s.change({"requirements.txt": "apache-airflow-providers-snowflake\n"}, "add a provider")
    s.change({"dags/etl.py": "# airflow dag v2\n"}, "use it in a DAG")  # the last commit alone is DAG-only
    proc = s.gate(env=github_push(s, s.first))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--dags" not in s.deploys()[0] and s.deploys()[0][-1] == "clmain000"  # image: no --dags
    assert "requirements.txt" in s.read_record()["decision"]["reason"]


@pytest.mark.parametrize(("files", "expected"), [
    ({"dags/report.py": None}, "dags"),  # a deleted DAG file
    ({"dags/new/nested.py": "# airflow dag\n"}, "dags"),
    ({"include/helpers.py": None}, "image"),  # a deleted supporting file
    ({"include/dags/x.py": "x = 1\n"}, "image"),  # "dags/" in the path, but not the DAG folder
    ({"tests/dags/test_x.py": "def test(): pass\n"}, "image"),
    ({"packages.txt": "libpq-dev\n"}, "image"),
])
def test_deploy_type_follows_the_changed_paths(tmp_path, files, expected):
    s = Scenario(tmp_path)
    s.change(files)
    proc = s.gate(env=github_push(s, s.first))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("--dags" in s.deploys()[0]) == (expected == "dags"), proc.stdout


def test_a_rename_out_of_the_dag_folder_counts_both_sides(tmp_path):
    s = Scenario(tmp_path)
    git(s.repo, "mv", "dags/report.py", "include/report.py")
    git(s.repo, "commit", "-q", "-m", "move")
    proc = s.gate(env=github_push(s, s.first))
    assert proc.returncode == 0
    assert "--dags" not in s.deploys()[0]
    decision = s.read_record()["decision"]
    assert {"dags/report.py", "include/report.py"} <= set(decision["changed"])
    assert decision["outside_dags"] == ["include/report.py"]


def test_project_in_a_subfolder_only_its_dag_folder_counts(tmp_path):
    s = Scenario(tmp_path, subdir="astro")
    s.change({"../docs/dags/notes.md": "outside the project\n", "dags/etl.py": "# airflow dag\n"})
    proc = s.gate(env=github_push(s, s.first))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--dags" in s.deploys()[0]
    assert s.read_record()["decision"]["changed"] == ["dags/etl.py"]


def test_configured_dags_folder_is_the_dag_folder(tmp_path):
    s = Scenario(tmp_path)
    pyproject = s.root / "pyproject.toml"
    pyproject.write_text('[tool.pytest-astro]\ndags_folder = "pipelines"\n' + pyproject.read_text())
    s.set_suite(passed=1, dags_folder="pipelines")
    git(s.repo, "mv", "dags", "pipelines")
    git(s.repo, "commit", "-q", "-am", "rename the DAG folder")
    base = git(s.repo, "rev-parse", "HEAD")
    s.change({"dags/x.py": "# airflow dag\n"}, "a file under dags/, no longer the DAG folder")
    assert s.gate(env=github_push(s, base)).returncode == 0
    s.change({"pipelines/etl.py": "# airflow dag 3\n"})
    assert s.gate(env=github_push(s, git(s.repo, "rev-parse", "HEAD~1"))).returncode == 0
    assert ["--dags" in d for d in s.deploys()] == [False, True]


@pytest.mark.parametrize("flag", ["--dags", "--image"])
def test_forced_type_wins(tmp_path, flag):
    s = Scenario(tmp_path)
    s.change({"requirements.txt": "x\n"} if flag == "--dags" else {"dags/etl.py": "# airflow dag\n"})
    proc = s.gate(flag, env=github_push(s, s.first))
    assert proc.returncode == 0
    assert ("--dags" in s.deploys()[0]) == (flag == "--dags")


def test_new_branch_falls_back_to_an_image_deploy_and_says_why(tmp_path):
    s = Scenario(tmp_path)
    s.change({"dags/etl.py": "# airflow dag\n"})
    proc = s.gate(env=github_push(s, NULL_SHA))
    assert proc.returncode == 0
    assert "--dags" not in s.deploys()[0]
    assert "new branch" in proc.stdout and "image deploy" in proc.stdout


def test_shallow_clone_missing_the_base_falls_back_to_an_image_deploy(tmp_path):
    s = Scenario(tmp_path)
    s.change({"dags/etl.py": "# airflow dag 2\n"})
    s.change({"dags/report.py": "# airflow dag 2\n"})
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{s.repo}", str(clone))
    s.root = clone
    proc = s.gate(env=github_push(s, s.first))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--dags" not in s.deploys()[0]
    assert "shallow clone" in proc.stdout and "fetch-depth: 0" in proc.stdout


def test_manual_run_falls_back_to_an_image_deploy(tmp_path):
    s = Scenario(tmp_path)
    s.change({"dags/etl.py": "# airflow dag\n"})
    env = s.env(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="workflow_dispatch", GITHUB_REF_NAME="main",
                GITHUB_REF_TYPE="branch")
    proc = s.gate(env=env)
    assert proc.returncode == 0
    assert "--dags" not in s.deploys()[0]
    assert "workflow" not in proc.stderr and "manual run" in proc.stdout


def test_without_a_ci_range_the_last_commit_decides(tmp_path):
    s = Scenario(tmp_path)
    s.change({"requirements.txt": "x\n"})
    s.change({"dags/etl.py": "# airflow dag\n"})
    proc = s.gate()  # local run on main, no CI variables
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--dags" in s.deploys()[0]
    assert "the last commit" in proc.stdout


def test_a_merge_commit_is_judged_on_the_whole_merged_branch(tmp_path):
    s = Scenario(tmp_path)
    git(s.repo, "checkout", "-q", "-b", "feature")
    s.change({"requirements.txt": "x\n"}, "feature part 1")
    s.change({"dags/etl.py": "# airflow dag\n"}, "feature part 2")
    git(s.repo, "checkout", "-q", "main")
    s.change({"dags/report.py": "# airflow dag\n"}, "meanwhile on main")
    git(s.repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    proc = s.gate(env=s.env(BITBUCKET_BUILD_NUMBER="7", BITBUCKET_BRANCH="main",
                            BITBUCKET_COMMIT=git(s.repo, "rev-parse", "HEAD")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--dags" not in s.deploys()[0]
    assert "requirements.txt" in proc.stdout


def test_gitlab_before_sha_and_jenkins_previous_successful_commit_give_the_range(tmp_path):
    s = Scenario(tmp_path, branches={"main": "clmain000"})
    s.change({"dags/etl.py": "# airflow dag\n"})
    s.change({"dags/report.py": "# airflow dag\n"})
    gitlab = s.env(GITLAB_CI="true", CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH="main",
                   CI_COMMIT_SHA=git(s.repo, "rev-parse", "HEAD"), CI_COMMIT_BEFORE_SHA=s.first)
    jenkins = s.env(JENKINS_URL="http://jenkins.invalid/", BRANCH_NAME="main",
                    GIT_COMMIT=git(s.repo, "rev-parse", "HEAD"), GIT_PREVIOUS_SUCCESSFUL_COMMIT=s.first)
    for env in (gitlab, jenkins):
        proc = s.gate(env=env)
        assert proc.returncode == 0
        assert f"pushed range {s.first[:12]}..HEAD" in proc.stdout
        assert s.read_record()["decision"]["changed"] == ["dags/etl.py", "dags/report.py"]


# ------------------------------------------------------------------ the suite decides

@pytest.mark.parametrize(("spec", "why"), [
    ({"exit": 1, "passed": 2, "failed": 1}, "tests failed"),
    ({"exit": 5, "passed": 0}, "no tests were collected"),
    ({"exit": 0, "passed": 0, "skipped": 4}, "ran no passing test"),
    ({"exit": 1, "passed": 3, "broken": ["dags/etl.py"]}, "DAG files failed to parse: dags/etl.py"),
    ({"exit": 0, "passed": 3, "broken": ["dags/report.py"]}, "DAG files failed to parse: dags/report.py"),
    ({"exit": 0, "passed": 3, "omit": ["dags/report.py"]}, "not parsed by the suite (e.g. dags/report.py)"),
    ({"crash": True}, "killed by signal 9"),
])
def test_nothing_is_deployed_unless_the_suite_passed_and_ran_tests(tmp_path, spec, why):
    s = Scenario(tmp_path)
    s.set_suite(**spec)
    s.change({"dags/etl.py": "# airflow dag\n"})
    proc = s.gate(env=github_push(s, s.first))
    assert proc.returncode == 1
    assert "NOT deploying" in proc.stdout and why in proc.stdout, proc.stdout
    assert_nothing_deployed(s)
    rec = s.read_record()
    assert rec["outcome"] == "refused" and why in rec["reason"]


def test_suite_gets_no_credentials_and_the_configured_args(tmp_path):
    s = Scenario(tmp_path, suite_args=["tests", "-x"], scrub_env=["SNOWFLAKE_*"])
    env = github_push(s, s.first, AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
                      GOOGLE_APPLICATION_CREDENTIALS="/secrets/sa.json", GITHUB_TOKEN="ghs_abcdefghijklmnop",
                      ACTIONS_ID_TOKEN_REQUEST_TOKEN="oidc-request-token-value", SNOWFLAKE_PASSWORD="hunter2hunter2",
                      AIRFLOW_VAR_ENV="ci")
    proc = s.gate("--suite-args", "-k etl", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suite_env = s.suite_env
    for name in ("ASTRO_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS",
                 "GITHUB_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "SNOWFLAKE_PASSWORD"):
        assert name not in suite_env, name
    assert suite_env["AIRFLOW_VAR_ENV"] == "ci"  # what tests need stays
    assert "fake suite: extra args ['tests', '-x', '-k', 'etl']" in proc.stdout
    for secret in (TOKEN, AWS_SECRET, "hunter2hunter2", "oidc-request-token-value"):
        assert secret not in proc.stdout + proc.stderr + s.record.read_text()


# ------------------------------------------------------------------ targets: environments, tokens

MULTI = {"main": "clmain000", "dev": {"deployment": "cldev000"}, "release/*": "clrelease0"}


@pytest.mark.parametrize(("branch", "deployment"), [("main", "clmain000"), ("dev", "cldev000"),
                                                     ("release/2.1", "clrelease0")])
def test_multiple_environments_each_branch_deploys_to_its_deployment(tmp_path, branch, deployment):
    s = Scenario(tmp_path, branches=MULTI)
    git(s.repo, "checkout", "-q", "-B", branch)
    s.change({"dags/etl.py": "# airflow dag\n"})
    env = s.env(GITLAB_CI="true", CI_PIPELINE_SOURCE="push", CI_COMMIT_BRANCH=branch,
                CI_COMMIT_SHA=git(s.repo, "rev-parse", "HEAD"), CI_COMMIT_BEFORE_SHA=s.first)
    proc = s.gate(env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [d[-1] for d in s.deploys()] == [deployment]


def test_a_branch_without_a_deployment_deploys_nothing_and_exits_0(tmp_path):
    s = Scenario(tmp_path, branches=MULTI)
    git(s.repo, "checkout", "-q", "-b", "feature/x")
    proc = s.gate()
    assert proc.returncode == 0
    assert "branch 'feature/x' has no target" in proc.stdout and "mapped: main, dev, release/*" in proc.stdout
    assert not (s.spec_path.parent / "env.json").exists()  # the suite did not even run
    assert_nothing_deployed(s)
    assert s.read_record()["outcome"] == "skipped"


def test_an_unmapped_branch_can_be_made_to_fail(tmp_path):
    s = Scenario(tmp_path, branches=MULTI, unmapped_branch="fail")
    git(s.repo, "checkout", "-q", "-b", "feature/x")
    assert s.gate().returncode == 1
    s2 = Scenario(tmp_path / "two", branches=MULTI)
    git(s2.repo, "checkout", "-q", "-b", "feature/x")
    assert s2.gate("--fail-on-unmapped-branch").returncode == 1
    assert_nothing_deployed(s)
    assert_nothing_deployed(s2)


def test_deployment_id_overrides_the_branch_map(tmp_path):
    s = Scenario(tmp_path, branches=MULTI)
    git(s.repo, "checkout", "-q", "-b", "feature/x")
    proc = s.gate("--deployment-id", "cloverride", "--image")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [d[-1] for d in s.deploys()] == ["cloverride"]


def test_pull_request_builds_deploy_nothing(tmp_path):
    s = Scenario(tmp_path)
    env = s.env(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="pull_request", GITHUB_HEAD_REF="main",
                GITHUB_BASE_REF="main", GITHUB_REF_NAME="1/merge")
    proc = s.gate(env=env)
    assert proc.returncode == 0 and "pull-request build" in proc.stdout
    assert_nothing_deployed(s)


def test_missing_token_is_a_clear_error_before_the_suite_runs(tmp_path):
    s = Scenario(tmp_path)
    proc = s.gate(env=s.env(ASTRO_API_TOKEN=None))
    assert proc.returncode == 1
    assert "ASTRO_API_TOKEN is not set" in proc.stdout and "Deployment (or Workspace) API token" in proc.stdout
    assert not (s.spec_path.parent / "env.json").exists()
    assert_nothing_deployed(s)
    assert s.read_record()["outcome"] == "failed"


def test_astro_cli_errors_are_shown_masked_and_fail_the_gate(tmp_path):
    s = Scenario(tmp_path)
    proc = s.gate(env=s.env(FAKE_ASTRO_FAIL="1"))
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "401 Unauthorized" in out and "Bearer ***" in out and "deploy FAILED" in out
    everything = out + s.record.read_text() + s.summary.read_text()
    assert TOKEN not in everything and TOKEN[:40] not in everything
    assert s.read_record()["outcome"] == "failed"


def test_a_token_that_is_not_a_jwt_is_masked_too(tmp_path):
    s = Scenario(tmp_path)
    plain = "plain-token-0123456789"
    proc = s.gate(env=s.env(FAKE_ASTRO_FAIL="1", ASTRO_API_TOKEN=plain))
    assert proc.returncode == 1
    assert plain not in proc.stdout + proc.stderr + s.record.read_text()
    assert "with token ***" in proc.stdout


def test_dry_run_prints_the_plan_and_deploys_nothing(tmp_path):
    s = Scenario(tmp_path)
    s.change({"dags/etl.py": "# airflow dag\n"})
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    proc = s.gate("--dry-run", env=github_push(s, s.first, ASTRO_API_TOKEN=None, TMPDIR=str(tmp)))
    assert proc.returncode == 0
    assert list(tmp.iterdir()) == []
    for text in ("target:   Astro Deployment clmain000", "type:     dags", "suite:",
                 "deploy --dags --wait '--description=", "-- clmain000", "ASTRO_API_TOKEN is not set", "dry run"):
        assert text in proc.stdout, text
    assert not (s.spec_path.parent / "env.json").exists()
    assert s.astro_calls() == []
    assert s.read_record()["outcome"] == "dry-run"


def test_any_command_can_deploy(tmp_path):
    s = Scenario(tmp_path, branches={"main": {"command": "env | grep ^PYTEST_ASTRO_ > deployed.txt"}})
    s.change({"dags/etl.py": "# airflow dag\n"})
    proc = s.gate(env=github_push(s, s.first))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = (s.root / "deployed.txt").read_text()
    assert "PYTEST_ASTRO_DEPLOY_TYPE=dags" in seen and "PYTEST_ASTRO_BRANCH=main" in seen
    failing = s.gate("--command", "echo token is $ASTRO_API_TOKEN; exit 3", env=github_push(s, s.first))
    assert failing.returncode == 1 and "exited with status 3" in failing.stdout
    assert TOKEN not in failing.stdout and "token is ***" in failing.stdout


def test_default_suite_is_pytest_with_astro_dags_and_the_report(tmp_path):
    s = Scenario(tmp_path, real_suite=True)
    proc = s.gate("--dry-run")
    assert "-m pytest --astro-dags --astro-report=" in proc.stdout


# ------------------------------------------------------------------ configuration errors

def test_a_branch_written_directly_under_deploy_is_an_error_with_a_hint(tmp_path):
    s = Scenario(tmp_path)
    py = s.root / "pyproject.toml"
    py.write_text(py.read_text().replace("[tool.pytest-astro.deploy]\n", '[tool.pytest-astro.deploy]\nmain = "clx"\n'))
    proc = s.gate()
    assert proc.returncode == 2
    assert f"{py}:2: [tool.pytest-astro.deploy] main: unknown key" in proc.stdout
    assert "[tool.pytest-astro.deploy.branches]: main = 'clx'" in proc.stdout


@pytest.mark.parametrize(("value", "message"), [
    ('{ bucket = "ftp://x" }', "expected s3://BUCKET[/PREFIX] or gs://BUCKET[/PREFIX]"),
    ('{ deployment = "a", bucket = "s3://b/c" }', "set exactly one of deployment, bucket, command"),
    ('{ deploymnet = "a" }', "unknown key(s) deploymnet"),
    ("3", "expected a Deployment id or a table"),
])
def test_bad_branch_targets_name_the_file_line_and_key(tmp_path, value, message):
    s = Scenario(tmp_path, branches={})
    py = s.root / "pyproject.toml"
    py.write_text(py.read_text() + f"main = {value}\n")
    proc = s.gate()
    assert proc.returncode == 2
    assert "[tool.pytest-astro.deploy] branches.main" in proc.stdout and message in proc.stdout, proc.stdout
    assert f"{py}:" in proc.stdout
