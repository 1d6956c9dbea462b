"""The deploy gate verifies instead of trusting: a tree that is not HEAD is refused, a deploy counts only
when the Astro CLI printed its bundle version or image tag (and, by default, saw the Deployment
healthy), the check phase runs without any credential and writes a plan of the files to ship with
their hashes, and the apply phase deploys exactly those files. A real git repository per scenario, the
fake `astro` (tests/fake_astro/astro, modelled on the CLI's code) on PATH."""

from __future__ import annotations

import json
import os

import pytest

try:
    from tests.fake_astro.support import TOKEN, Scenario, git, write
except ImportError:  # pragma: no cover
    from fake_astro.support import TOKEN, Scenario, git, write

from pytest_astro.deploy import targets
from pytest_astro.deploy.targets import DeployError


def no_token(s: Scenario) -> dict:
    return s.env(ASTRO_API_TOKEN=None)


def suite_ran(s: Scenario) -> bool:
    return (s.spec_path.parent / "env.json").exists()


def deploy_calls(s: Scenario) -> list[dict]:
    return [c for c in s.astro_calls() if c["argv"][:1] == ["deploy"]]


# ------------------------------------------------------------------ verify, don't trust

def test_a_tracked_file_that_differs_from_head_is_refused_and_listed(tmp_path):
    s = Scenario(tmp_path)
    (s.root / "requirements.txt").write_text("stamped-by-ci==1.0\n")  # a CI step rewrote a tracked file
    proc = s.gate()
    assert proc.returncode == 1, proc.stdout
    assert "tracked files differ from the commit HEAD (requirements.txt)" in proc.stdout
    assert not suite_ran(s) and deploy_calls(s) == []
    assert s.read_record()["outcome"] == "refused"


def test_astro_exit_0_without_a_deploy_is_a_failure(tmp_path):
    """The real CLI prints a message and exits 0 without deploying on a dirty tree: without the
    "Deployed ..." line nothing proves a deploy, whatever the status."""
    s = Scenario(tmp_path)
    (s.root / "dags/etl.py").write_text("# changed, not committed\n")
    env = s.env()
    with pytest.raises(DeployError, match="exited 0 but printed no \"Deployed DAG bundle:\" line") as info:
        targets.astro_deploy("clmain000", "dags", "d", env, s.root, lambda line: None)
    assert not info.value.detail.deployed
    assert [c.get("shipped") for c in deploy_calls(s)] == [None]  # the fake did not deploy either


def test_the_deploy_is_recorded_with_the_clis_proof_and_the_final_state(tmp_path):
    s = Scenario(tmp_path)
    proc = s.gate("--dags")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deploy = s.read_record()["deploy"]
    assert deploy["dag_bundle"].endswith("-fake") and deploy["state"] == "healthy" and deploy["exit_code"] == 0
    assert "Deployment healthy" in proc.stdout
    assert deploy_calls(s)[0]["wait_seconds"] == 300  # the CLI's default, passed explicitly
    assert "DAG bundle `" in s.summary.read_text()


def test_wait_time_is_configurable_and_no_wait_records_not_waited(tmp_path):
    s = Scenario(tmp_path, wait_time="10m")
    assert s.gate("--image").returncode == 0
    assert "--wait-time=600s" in s.deploys()[0] and deploy_calls(s)[0]["wait_seconds"] == 600
    assert s.read_record()["deploy"]["image_tag"].startswith("deploy-")
    assert s.gate("--image", "--wait-time", "1h30m").returncode == 0
    assert deploy_calls(s)[1]["wait_seconds"] == 5400
    proc = s.gate("--image", "--no-wait")
    assert proc.returncode == 0, proc.stdout
    assert "--wait" not in s.deploys()[2] and s.read_record()["deploy"]["state"] == "not waited"


def test_a_deployment_that_never_becomes_healthy_is_not_recorded_as_deployed(tmp_path):
    s = Scenario(tmp_path)
    proc = s.gate("--dags", env=s.env(FAKE_ASTRO_HEALTH="unhealthy"))
    assert proc.returncode == 1
    assert "did not become healthy within 300 s" in proc.stdout
    rec = s.read_record()
    assert rec["outcome"] == "unhealthy" and rec["deploy"]["state"] == "timed out"
    assert rec["deploy"]["dag_bundle"]  # the deploy was made: the record says which


@pytest.mark.parametrize(("key", "value", "message"), [
    ("wait-time", "soon", "expected a wait time in seconds or as 10m"),
    ("airflowignored", "maybe", "expected 'warn' or 'refuse'"),
])
def test_bad_wait_and_airflowignored_settings_name_the_line(tmp_path, key, value, message):
    s = Scenario(tmp_path, **{key.replace("-", "_"): value})
    proc = s.gate()
    assert proc.returncode == 2 and f"[tool.pytest-astro.deploy] {key}" in proc.stdout and message in proc.stdout


# ------------------------------------------------------------------ what is shipped is what was checked

IGNORED = {"dags/.airflowignore": "helpers/\n", "dags/helpers/util.py": "# airflow dag helper\nX = 1\n",
           "dags/sql/q.sql": "select 1\n"}


def test_the_airflowignore_warning_and_the_shipped_files_equal_the_plan(tmp_path):
    s = Scenario(tmp_path)
    s.change(IGNORED)
    proc = s.gate("--dags")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: 1 file(s) are shipped but were not parsed, because .airflowignore excludes them: " \
           "dags/helpers/util.py" in proc.stdout
    rec = s.read_record()
    shipped = deploy_calls(s)[0]["shipped"]  # what the CLI put in the DAG tarball
    assert shipped == {p: h for p, h in rec["shipped"].items() if p.startswith("dags/")}
    assert {"dags/.airflowignore", "dags/helpers/util.py", "dags/sql/q.sql", "dags/etl.py"} <= set(shipped)
    assert rec["shipped"]["dags/sql/q.sql"].startswith("sha256:")


def test_airflowignored_refuse_stops_the_deploy(tmp_path):
    s = Scenario(tmp_path, airflowignored="refuse")
    s.change(IGNORED)
    proc = s.gate("--dags")
    assert proc.returncode == 1 and "NOT deploying" in proc.stdout and "dags/helpers/util.py" in proc.stdout
    assert deploy_calls(s) == []


def test_a_suite_that_rewrites_a_dag_file_after_its_parse_deploys_nothing(tmp_path):
    s = Scenario(tmp_path)
    s.set_suite(passed=5, rewrite={"dags/etl.py": "import broken\n", "dags/extra.py": "# new\n"})
    proc = s.gate("--dags")
    assert proc.returncode == 1, proc.stdout
    assert "the suite changed files that the deploy would ship, after they were checked" in proc.stdout
    assert "dags/etl.py (changed)" in proc.stdout and "dags/extra.py (new)" in proc.stdout
    assert deploy_calls(s) == []


def test_a_link_leaving_the_project_is_refused(tmp_path):
    s = Scenario(tmp_path)
    outside = tmp_path / "elsewhere"
    write(outside, {"secret.py": "KEY = 'not for the bucket'\n", "lib/x.py": "x = 1\n"})
    (s.root / "dags/secret.py").symlink_to(outside / "secret.py")
    (s.root / "dags/lib").symlink_to(outside / "lib")
    proc = s.gate("--dags")
    assert proc.returncode == 1
    assert "dags/lib is a symbolic link to" in proc.stdout and "dags/secret.py is a symbolic link to" in proc.stdout
    assert not suite_ran(s) and deploy_calls(s) == []


# ------------------------------------------------------------------ two phases

def test_check_without_the_token_then_apply_with_it(tmp_path):
    s = Scenario(tmp_path)
    s.change({"conftest.py": "open('imported-conftest', 'w').close()\n"})
    check = s.gate("check", "--dags", env=no_token(s))
    assert check.returncode == 0, check.stdout + check.stderr
    plan = json.loads(s.plan.read_text())
    assert plan["allowed"] and plan["deploy_type"] == "dags" and plan["target"]["deployment_id"] == "clmain000"
    assert plan["commit"] == git(s.repo, "rev-parse", "HEAD") and plan["suite"]["tests"]["passed"] == 3
    assert set(plan["files"]) == {"dags/etl.py", "dags/report.py"}
    assert all(h.startswith("sha256:") for h in plan["files"].values())
    assert deploy_calls(s) == [] and not s.record.exists()
    (s.spec_path.parent / "env.json").unlink()
    apply = s.gate("apply")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert not suite_ran(s) and not (s.root / "imported-conftest").exists()  # no project code ran
    assert s.deploys()[0][-2:] == ["--", "clmain000"] and "--dags" in s.deploys()[0]
    rec = s.read_record()
    assert rec["outcome"] == "deployed" and rec["shipped"] == plan["files"]


def test_apply_in_another_checkout_of_the_same_commit(tmp_path):
    """CI may run the phases as two jobs: the apply job has its own clone and the plan as an artifact."""
    s = Scenario(tmp_path, subdir="astro")
    assert s.gate("check", "--dags", env=no_token(s)).returncode == 0
    clone = tmp_path / "second-job"
    git(tmp_path, "clone", "-q", str(s.repo), str(clone))
    s.root = clone / "astro"
    proc = s.gate("apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert deploy_calls(s)[0]["cwd"] == str(clone / "astro")
    s.root.joinpath("dags/etl.py").write_text("# not what was checked\n")
    git(clone, "commit", "-qam", "x")
    assert s.gate("apply").returncode == 1


def test_check_refuses_to_start_with_the_token_in_its_environment(tmp_path):
    s = Scenario(tmp_path)
    proc = s.gate("check")
    assert proc.returncode == 2
    assert "ASTRO_API_TOKEN in the environment this process was started with" in proc.stdout
    assert "/proc/PID/environ" in proc.stdout
    assert TOKEN not in proc.stdout and not suite_ran(s)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: write(s.root, {"dags/new_untracked.py": "# airflow dag\n"}), "dags/new_untracked.py (new)"),
    (lambda s: write(s.root, {"dags/etl.py": "# edited\n"}), "tracked files differ from the commit HEAD (dags/etl.py)"),
    (lambda s: s.change({"dags/report.py": "# committed later\n"}), "the plan was made for commit"),
])
def test_apply_refuses_a_tree_that_is_not_the_checked_one(tmp_path, change, expected):
    s = Scenario(tmp_path)
    assert s.gate("check", "--dags", env=no_token(s)).returncode == 0
    change(s)
    proc = s.gate("apply")
    assert proc.returncode == 1 and expected in proc.stdout, proc.stdout
    assert deploy_calls(s) == [] and s.read_record()["outcome"] == "refused"


def test_apply_without_an_allowed_plan_deploys_nothing(tmp_path):
    s = Scenario(tmp_path)
    missing = s.gate("apply")
    assert missing.returncode == 2 and "run `pytest-astro deploy check` first" in missing.stdout
    s.set_suite(exit=1, passed=1, failed=1)
    assert s.gate("check", env=no_token(s)).returncode == 1
    refused = s.gate("apply")
    assert refused.returncode == 1 and "the check phase refused this deploy" in refused.stdout
    assert deploy_calls(s) == []


@pytest.mark.parametrize(("edit", "expected"), [
    # another Deployment: the plan's target is not the one the commit maps its branch to
    (lambda p: p["target"].update(deployment_id="clprod0000"),
     "the plan's target (Astro Deployment clprod0000) is not the target pyproject.toml"),
    # another branch and its Deployment, consistent with the commit's mapping: this build's branch says no
    (lambda p: p.update(branch="release", target={"kind": "astro", "deployment_id": "clrel00000"}),
     "the plan was made for branch 'release', but this build is on 'main'"),
    # a command instead of the Deployment
    (lambda p: p.update(target={"kind": "command", "command": "sh -c 'echo pwned'"}),
     "the plan's target (command `sh -c 'echo pwned'`) is not"),
    # the target claimed to come from the check's command line: nothing confirms it
    (lambda p: p.update(target={"kind": "astro", "deployment_id": "clprod0000"}, target_source="command line"),
     "pass the same target option to `pytest-astro deploy apply`"),
])
def test_apply_refuses_a_plan_whose_target_was_changed(tmp_path, edit, expected):
    """The plan is an artifact between two CI jobs: its target is checked against the commit's
    configuration (or apply's own target options), never trusted."""
    s = Scenario(tmp_path, branches={"main": "clmain000", "release": "clrel00000"})
    assert s.gate("check", "--dags", env=no_token(s)).returncode == 0
    plan = json.loads(s.plan.read_text())
    assert plan["target_source"] == "branches.main"
    edit(plan)
    s.plan.write_text(json.dumps(plan))
    proc = s.gate("apply")
    assert proc.returncode == 1 and expected in proc.stdout, proc.stdout
    assert deploy_calls(s) == [] and s.read_record()["outcome"] == "refused"


def test_a_target_given_on_the_command_line_is_confirmed_by_apply(tmp_path):
    s = Scenario(tmp_path)
    assert s.gate("check", "--dags", "--deployment-id", "clother000", env=no_token(s)).returncode == 0
    assert "pass the same target option" in s.gate("apply").stdout and deploy_calls(s) == []
    assert "is not the target given to" in s.gate("apply", "--deployment-id", "clmain000").stdout
    proc = s.gate("apply", "--deployment-id", "clother000")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert s.deploys()[0][-2:] == ["--", "clother000"]


def test_an_unmapped_branch_checks_and_applies_to_nothing(tmp_path):
    s = Scenario(tmp_path)
    git(s.repo, "checkout", "-q", "-b", "feature/x")
    assert s.gate("check", env=no_token(s)).returncode == 0
    proc = s.gate("apply")
    assert proc.returncode == 0 and "nothing to deploy" in proc.stdout
    assert deploy_calls(s) == [] and s.read_record()["outcome"] == "skipped"


def test_one_command_hides_the_token_from_the_suites_parent(tmp_path):
    """The suite (project code) reads its parent's starting environment: the one-command gate has
    overwritten the token there before the suite started."""
    s = Scenario(tmp_path, suite=["{python}", "-c", READ_PARENT, "{report}"])
    proc = s.gate("--dags")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parent environ has ASTRO_API_TOKEN: False" in proc.stdout and "token seen: False" in proc.stdout


READ_PARENT = """
import json, os, sys
raw = open(f"/proc/{os.getppid()}/environ", "rb").read().decode()
token = os.environ.get("READ_PARENT_TOKEN", "")
found = [v for v in raw.split("\\0") if v.startswith("ASTRO_API_TOKEN=") and v.strip("*").split("=", 1)[1]]
print("parent environ has ASTRO_API_TOKEN:", bool(found))
print("token seen:", "eyJhbGciOiJSUzI1NiJ9" in raw)
files = [{"file": f"dags/{n}", "ok": True} for n in ("etl.py", "report.py")]
json.dump({"files": files, "parsed": 2, "failed": 0, "tests": {"passed": 2}}, open(sys.argv[1], "w"))
"""


def test_one_command_refuses_when_an_ancestor_was_started_with_the_token(tmp_path):
    s = Scenario(tmp_path)
    inner = " ".join(["python", "-m", "pytest_astro", "deploy", "--record", str(s.record), "--plan", str(s.plan)])
    import subprocess

    proc = subprocess.run(["sh", "-c", f"{inner}; exit $?"], cwd=s.root, env=s.env(), capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ASTRO_API_TOKEN in the environment ancestor process" in proc.stdout
    assert "`pytest-astro deploy check` in a step (or shell) without the credential" in proc.stdout
    assert not suite_ran(s) and deploy_calls(s) == []


# ------------------------------------------------------------------ shard reports (issue 22)

def shard(tmp_path, name: str, files: list[str], passed: int = 1, failed: int = 0) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "files": [{"file": f, "ok": True} for f in files],
                                "parsed": len(files), "failed": 0,
                                "tests": {"passed": passed, "failed": failed, "errors": 0, "skipped": 0}}))
    return str(path)


@pytest.mark.parametrize(("shards", "code", "message"), [
    ([["dags/etl.py"], ["dags/report.py"]], 0, "suite passed (2 passed, 2 DAG files parsed)"),
    ([["dags/etl.py", "dags/report.py"], ["dags/report.py"]], 1, "DAG files parsed by more than one shard: dags/report.py"),
    ([["dags/etl.py"]], 1, "1 DAG file(s) were not parsed by the suite (e.g. dags/report.py)"),
])
def test_check_judges_shard_reports_instead_of_running_the_suite(tmp_path, shards, code, message):
    s = Scenario(tmp_path)
    paths = [shard(tmp_path, f"shard{i}.json", files) for i, files in enumerate(shards)]
    proc = s.gate("check", "--dags", "--reports", *paths, env=no_token(s))
    assert proc.returncode == code and message in proc.stdout, proc.stdout
    assert not suite_ran(s)
    assert json.loads(s.plan.read_text())["allowed"] is (code == 0)


def test_a_failed_test_in_one_shard_refuses(tmp_path):
    s = Scenario(tmp_path)
    paths = [shard(tmp_path, "a.json", ["dags/etl.py"]), shard(tmp_path, "b.json", ["dags/report.py"], failed=1)]
    proc = s.gate("check", "--reports", *paths, env=no_token(s))
    assert proc.returncode == 1 and "the report counts failures" in proc.stdout
    missing = s.gate("check", "--reports", paths[0], str(tmp_path / "never-written.json"), env=no_token(s))
    assert missing.returncode == 1 and "never-written.json does not exist" in missing.stdout


def test_sharded_reports_are_checked_together(tmp_path):
    """Reports of a sharded run (`--astro-shard K/N`) are checked as one split: a dag_id defined in two
    shards' files, which neither shard could see, refuses the deploy; a missing shard too."""
    s = Scenario(tmp_path)

    def sharded(name, index, files, dag_ids):
        path = tmp_path / name
        section = {"index": index, "total": 2, "label": f"{index}/2", "source": "option", "key": "k1",
                   "files": files, "durations": {}}
        path.write_text(json.dumps({"version": 1, "shard": section, "parsed": len(files), "failed": 0,
                                    "files": [{"file": f, "ok": True, "dags": [{"dag_id": d}]}
                                              for f, d in zip(files, dag_ids)],
                                    "tests": {"passed": 1, "failed": 0, "errors": 0, "skipped": 0}}))
        return str(path)

    good = [sharded("a.json", 1, ["dags/etl.py"], ["etl"]), sharded("b.json", 2, ["dags/report.py"], ["report"])]
    assert s.gate("check", "--dags", "--reports", *good, env=no_token(s)).returncode == 0
    clash = [good[0], sharded("c.json", 2, ["dags/report.py"], ["etl"])]
    proc = s.gate("check", "--dags", "--reports", *clash, env=no_token(s))
    assert proc.returncode == 1 and "dag_id 'etl' is defined in dags/etl.py, dags/report.py" in proc.stdout, proc.stdout
    proc = s.gate("check", "--dags", "--reports", good[0], env=no_token(s))
    assert proc.returncode == 1 and "expected each of 1..2 once" in proc.stdout, proc.stdout


# ------------------------------------------------------------------ findings of the review (issue 20)

def test_a_token_with_a_newline_is_masked_on_every_line(tmp_path):
    s = Scenario(tmp_path)
    token = "first-half-of-the-token\nsecond-half-of-the-token"
    proc = s.gate("--dags", env=s.env(ASTRO_API_TOKEN=token, FAKE_ASTRO_FAIL="1"))
    assert proc.returncode == 1
    everything = proc.stdout + proc.stderr + s.record.read_text() + s.summary.read_text()
    assert "first-half-of-the-token" not in everything and "second-half-of-the-token" not in everything
    assert "with token ***" in proc.stdout


def test_base64_and_url_encodings_of_the_token_are_masked(tmp_path):
    s = Scenario(tmp_path)
    token = "plain/token+with=odd&chars-0123"
    command = ('python -c "import base64, os, urllib.parse; t = os.environ[\'ASTRO_API_TOKEN\']; '
               'print(base64.b64encode(t.encode()).decode()); print(urllib.parse.quote(t, safe=\'\')); '
               'print(urllib.parse.quote_plus(t)); print(base64.urlsafe_b64encode(t.encode()).decode().rstrip(\'=\'))"')
    proc = s.gate("--command", command, env=s.env(ASTRO_API_TOKEN=token))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import base64
    import urllib.parse
    for form in (base64.b64encode(token.encode()).decode(), urllib.parse.quote(token, safe=""),
                 urllib.parse.quote_plus(token), base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")):
        assert form not in proc.stdout, form
    assert proc.stdout.count("***") >= 4


def test_a_token_with_quotes_and_a_backslash_is_masked_in_the_plan_line_and_the_record(tmp_path):
    token = "tok'en\"with\\back-slash-0123"
    s = Scenario(tmp_path, branches={"main": {"command": ["echo", "deploying", token]}})
    proc = s.gate("--dry-run", env=s.env(ASTRO_API_TOKEN=token))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deploy_line = next(line for line in proc.stdout.splitlines() if line.startswith("  deploy:"))
    assert deploy_line == "  deploy:   echo deploying '***'"
    text = s.record.read_text()
    assert json.loads(text)["target"]["command"] == ["echo", "deploying", "***"]
    for form in (token, json.dumps(token)[1:-1], "back-slash-0123"):
        assert form not in proc.stdout + text


@pytest.mark.parametrize("args", [("--deployment-id=-f",), ("--deployment-id=--force",),
                                  ("--deployment-id", "clmain000 -f")])
def test_a_deployment_id_that_is_an_option_is_refused(tmp_path, args):
    s = Scenario(tmp_path)
    proc = s.gate(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "expected an Astro Deployment id (lowercase letters and digits" in proc.stdout
    assert deploy_calls(s) == [] and not suite_ran(s)


def test_a_deployment_id_in_pyproject_that_is_an_option_is_refused(tmp_path):
    s = Scenario(tmp_path, branches={"main": {"deployment": "-f"}})
    proc = s.gate()
    assert proc.returncode == 2 and "branches.main.deployment: expected an Astro Deployment id" in proc.stdout


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_a_whitespace_deployment_id_is_a_clear_error(tmp_path, dry_run):
    s = Scenario(tmp_path, branches={"main": {"deployment": "   "}})
    proc = s.gate(*dry_run)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "expected an Astro Deployment id" in proc.stdout
    assert f"{s.root / 'pyproject.toml'}:" in proc.stdout


def test_unbalanced_quotes_in_suite_args_are_clear_errors(tmp_path):
    s = Scenario(tmp_path)
    proc = s.gate("--suite-args", "-k 'etl")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--suite-args: No closing quotation" in proc.stdout
    s2 = Scenario(tmp_path / "two", suite_args="tests -k 'etl")
    proc = s2.gate()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "[tool.pytest-astro.deploy] suite-args: No closing quotation" in proc.stdout
    assert f"{s2.root / 'pyproject.toml'}:2" in proc.stdout


def test_a_command_that_does_not_parse_fails_before_the_suite(tmp_path):
    s = Scenario(tmp_path)
    proc = s.gate("--command", "echo 'unbalanced")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the deploy command does not parse as a shell command" in proc.stdout
    assert not suite_ran(s)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc (Linux)")
def test_a_process_the_suite_leaves_running_is_killed_before_the_deploy(tmp_path):
    """A detached process from the check phase would still be there when the apply step holds the
    token (CI steps share the machine): the gate kills what the suite left behind."""
    import time

    s = Scenario(tmp_path)
    marker = tmp_path / "daemon"
    s.set_suite(passed=3, daemon=str(marker))
    proc = s.gate("check", "--dags", env=no_token(s))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pid = int((tmp_path / "daemon.pid").read_text())
    assert f"the suite left 1 process(es) running ({pid} (python" in proc.stdout
    time.sleep(3.5)
    assert not (tmp_path / "daemon.woke").exists()
    assert json.loads(s.plan.read_text())["suite"]["leftover_processes_killed"][0].startswith(f"{pid} ")
