"""`pytest-astro ci init`: every generated pipeline (and action.yml) validates against the provider's
published JSON schema, vendored by check-jsonschema (no network), and does what the strategy says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_astro.cli import main
from pytest_astro.deploy import config as deploy_config

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
}


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
    deploy = single["jobs"]["deploy"]
    assert deploy["if"] == "github.event_name == 'push'" and "environment" not in deploy
    assert deploy["steps"][-1]["env"] == {"ASTRO_API_TOKEN": "${{ secrets.ASTRO_API_TOKEN }}"}
    multi = yaml.safe_load(init(tmp_path, "github", "--strategy", "multi", name="m")[0])
    assert multi[True]["push"]["branches"] == ["main", "dev"]
    assert multi["jobs"]["deploy"]["environment"] == "${{ github.ref_name }}"  # a token per environment


def test_dags_repo_makes_dag_only_deploys_without_docker(tmp_path):
    for provider in ("gitlab", "circleci", "bitbucket"):
        text, _ = init(tmp_path, provider, "--dags-repo")
        assert "pytest-astro deploy --dags" in text
        assert not any(word in text for word in ("docker:dind", "setup_remote_docker", "- docker\n"))
    gitlab, _ = init(tmp_path, "gitlab", name="image")
    assert "docker:dind" in gitlab  # image deploys build the image
    assert "setup_remote_docker" in init(tmp_path, "circleci", name="image")[0]
    assert "- docker\n" in init(tmp_path, "bitbucket", name="image")[0]


def test_bucket_pipelines_carry_cloud_secrets_and_no_astro_cli(tmp_path):
    s3, _ = init(tmp_path, "github", "--bucket", "s3://my-dags/prod")
    assert '"pytest-astro[s3]"' in s3 and "secrets.AWS_SECRET_ACCESS_KEY" in s3
    assert "install.astronomer.io" not in s3 and "ASTRO_API_TOKEN" not in s3
    gs, _ = init(tmp_path, "azure", "--bucket", "gs://my-dags/prod")
    assert '"pytest-astro[gcs]"' in gs and "GCP_SA_KEY: $(GCP_SA_KEY)" in gs
    assert 'GOOGLE_APPLICATION_CREDENTIALS="$HOME/gcp-key.json" pytest-astro deploy' in gs


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
    assert ".venv/bin/pytest-astro deploy" in text and "install.astronomer.io" not in text


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
    cfg = deploy_config.load(table, tmp_path / "pyproject.toml")
    assert cfg.target_for("dev").deployment == "cldev"
    assert main(["ci", "init", "--provider", "gitlab"]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["ci", "init", "--provider", "gitlab", "--force"]) == 0


def test_bad_arguments_are_rejected(capsys):
    assert main(["ci", "init", "--provider", "github", "--bucket", "ftp://x"]) == 2
    assert "expected s3://BUCKET" in capsys.readouterr().err
    assert main(["ci", "init", "--provider", "github", "--branches", "main,dev"]) == 2
    with pytest.raises(SystemExit):
        main(["ci", "init", "--provider", "travis"])


def test_importing_the_commands_imports_no_heavy_client():
    code = ("import sys, pytest_astro.deploy.cli, pytest_astro.deploy.gate, pytest_astro.ci.cli;"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'boto3', 'botocore')"
            " or m.startswith('google.cloud'))))")
    proc = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True)
    assert json.loads(proc.stdout) == [], proc.stderr
