"""Render a provider's pipeline from ``templates/``.

Every pipeline does the same things: on pull requests, ``python -m pytest --astro-dags`` with the
reports the provider shows (JUnit everywhere, SARIF on GitHub, Code Quality on GitLab); on pushes
to the environment branches, the deploy gate in two steps: ``pytest-astro deploy check`` runs the
suite and writes a plan without any credential in its environment, ``pytest-astro deploy apply``
deploys that plan with the token and runs no project code. Where the provider has jobs, they are two
jobs (the plan passed as an artifact): a job's environment is shared by all its processes, and a
fresh job is the only place the project's code from the check cannot have touched the tools the
token is given to (Jenkins: two steps, the credentials bound around the apply). Tokens are CI
secrets, scoped per
environment where the provider can (GitHub environments, GitLab environment-scoped variables,
CircleCI contexts, Bitbucket deployments, Azure variable groups, Jenkins credentials).

Every job keeps the parse cache (``.pytest_cache/pytest-astro``) between runs in the provider's
cache. A restored entry is only a candidate: the plugin's own key (the file's content, every
project file it read, the installed packages, Python/Airflow versions and settings) decides
whether it applies, so the CI cache key only needs to make hits likely, never to make them right.

Templates use ``@name@`` placeholders (``${{ }}`` belongs to GitHub). A placeholder alone on a line
takes a block: each of its lines is indented like the placeholder; an empty block drops the line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources

from pytest_astro import __version__

PROVIDERS = {  # provider -> (template, default output path)
    "github": ("github.yml", ".github/workflows/astro.yml"),
    "gitlab": ("gitlab-ci.yml", ".gitlab-ci.yml"),
    "circleci": ("circleci.yml", ".circleci/config.yml"),
    "bitbucket": ("bitbucket-pipelines.yml", "bitbucket-pipelines.yml"),
    "azure": ("azure-pipelines.yml", "azure-pipelines.yml"),
    "jenkins": ("Jenkinsfile", "Jenkinsfile"),
}
#: Installs the Astro CLI unless the runner already has it (a self-hosted runner, an image with it).
ASTRO_CLI_INSTALL = "command -v astro >/dev/null || curl -sSL install.astronomer.io | {sudo}bash -s"
CACHE_DIR = ".pytest_cache/pytest-astro"
JUNIT = "test-results/pytest-astro.xml"  # test-results/: where Bitbucket looks for JUnit files
SARIF = "pytest-astro.sarif"
CODE_QUALITY = "gl-code-quality.json"
PLAN = "pytest-astro-plan.json"
RECORD = "pytest-astro-deploy.json"

#: GitHub actions the workflow uses, pinned by commit (zizmor's unpinned-uses); the comment
#: names the release the commit is tagged with, for readers and for Dependabot.
ACTIONS = {
    "checkout": "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1  # v7.0.1",
    "setup-python": "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97  # v7.0.0",
    "cache": "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae  # v5.0.5",
    "upload-artifact": "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f  # v7.0.0",
    "download-artifact": "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c  # "
                         "v8.0.1",
    "upload-sarif": "github/codeql-action/upload-sarif@8aad20d150bbac5944a9f9d289da16a4b0d87c1e  "
                    "# v4.36.2",
}


@dataclass
class Options:
    provider: str
    strategy: str = "single"  # single | multi
    branches: list[str] = field(default_factory=list)  # [] -> main (single) or main, dev (multi)
    dags_repo: bool = False  # this repository holds only the DAGs: DAG-only deploys
    bucket: str | None = None  # s3://... or gs://...: sync the DAG folder there
    python: str = "3.12"
    airflow: str = "3.1.3"
    #: where pytest-astro comes from: a requirement (``pytest-astro==0.1.0``), a git URL, a wheel's
    #: URL or path; default: this version from the package index
    install: str | None = None
    index_url: str | None = None  # a private package index (that also serves Airflow and the rest)
    shards: int = 1  # >1: the pull-request suite runs as N parallel jobs (`--astro-shard`)

    def __post_init__(self) -> None:
        if not self.branches:
            self.branches = ["main"] if self.strategy == "single" else ["main", "dev"]

    @property
    def target(self) -> str:
        if self.bucket:
            return "s3" if self.bucket.startswith("s3://") else "gs"
        return "astro"

    @property
    def per_branch_secrets(self) -> bool:
        return len(self.branches) > 1

    @property
    def sharded(self) -> bool:
        return self.shards > 1


#: providers whose templates have the parallel form (`ci init --shards N`)
SHARDED_PROVIDERS = ("github", "gitlab", "circleci", "azure")


def secrets(opts: Options) -> list[str]:
    return {"astro": ["ASTRO_API_TOKEN"], "s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
            "gs": ["GCP_SA_KEY"]}[opts.target]


def pytest_astro_requirement(opts: Options) -> str:
    """The pip argument that installs pytest-astro (with the bucket extra the target needs).

    A requirement (``pytest-astro==X``) takes the extra after its name; a URL (``git+https://...``,
    ``https://.../x.whl``) becomes a direct reference; a local path takes it as a suffix.
    """
    extra = {"astro": "", "s3": "[s3]", "gs": "[gcs]"}[opts.target]
    spec = opts.install or f"pytest-astro=={__version__}"
    m = re.match(r"pytest[-_]astro(\[[^\]]*\])?", spec, re.IGNORECASE)
    if m and not re.match(r"pytest[-_]astro\S*\s*@", spec, re.IGNORECASE) and "://" not in spec:
        return spec if m.group(1) or not extra else f"pytest-astro{extra}{spec[m.end():]}"
    if "://" in spec:
        return spec if "@" in spec.split("://")[0] else f"pytest-astro{extra} @ {spec}"
    return f"{spec}{extra}"


def constraints_url(opts: Options) -> str:
    return (f"https://raw.githubusercontent.com/apache/airflow/constraints-{opts.airflow}/"
            f"constraints-{opts.python}.txt")


def install_command(opts: Options, constraint: bool = True) -> str:
    """``pip install`` of Airflow (under its constraints), requirements.txt and pytest-astro.

    ``constraint=False`` leaves the constraints to ``PIP_CONSTRAINT`` (GitLab declares it as a
    variable, so a pipeline run can point it elsewhere).
    """
    cmd = (f'python -m pip install "apache-airflow=={opts.airflow}" -r requirements.txt '
           f'"{pytest_astro_requirement(opts)}"')
    if opts.index_url:
        cmd += f' --index-url "{opts.index_url}"'
    if constraint:
        cmd += f' --constraint "{constraints_url(opts)}"'
    return cmd


def apply_install_command(opts: Options) -> str:
    """``pip install`` of pytest-astro alone, for the job that deploys: no project requirement
    (whose installation could run code) gets near the token."""
    cmd = f'python -m pip install "{pytest_astro_requirement(opts)}"'
    return cmd + (f' --index-url "{opts.index_url}"' if opts.index_url else "")


def suite_command(opts: Options, reports: tuple[str, ...] = (), shard: str = "auto") -> str:
    """The pull-request suite, writing JUnit plus the given extra reports ("sarif", "gitlab").

    Sharded (``opts.shards`` > 1), it checks the shard ``shard`` names (``auto``: from the CI's
    variables for its parallel jobs); ``{shard}`` in a report's path becomes ``K-of-N``.
    """
    args = [f"--astro-shard {shard}"] if opts.sharded else []
    args.append(f"--junitxml={JUNIT}")
    if "sarif" in reports:
        args.append(f"--astro-report-sarif={SARIF}")
    if "gitlab" in reports:
        args.append(f"--astro-report-gitlab={CODE_QUALITY}")
    return "python -m pytest --astro-dags " + " ".join(args)


def check_command(opts: Options, prefix: str = "") -> str:
    """The deploy gate's first step: the suite without credentials; writes the plan."""
    cmd = f"{prefix}pytest-astro deploy check --plan {PLAN} --fail-on-unmapped-branch"
    if opts.dags_repo and not opts.bucket:
        cmd += " --dags"
    return cmd + f" --suite-args=--junitxml={JUNIT}"


def apply_lines(opts: Options, prefix: str = "", plan: str = PLAN) -> list[str]:
    """The deploy gate's second step: deploys the checked plan, with the credentials."""
    cmd = f"{prefix}pytest-astro deploy apply --plan {plan}"
    if opts.target == "gs":
        return ['printf \'%s\' "$GCP_SA_KEY" > "$HOME/gcp-key.json"',
                f'GOOGLE_APPLICATION_CREDENTIALS="$HOME/gcp-key.json" {cmd}']
    return [cmd]


def needs_docker(opts: Options) -> bool:
    """Image deploys build the image with Docker; DAG-only and bucket deploys do not."""
    return opts.target == "astro" and not opts.dags_repo


def render(template: str, values: dict[str, str | list[str]]) -> str:
    out: list[str] = []
    for line in template.splitlines():
        m = re.fullmatch(r"(\s*)@(\w+)@\s*", line)
        if m and m.group(2) in values and isinstance(values[m.group(2)], list):
            out += [m.group(1) + v if v else "" for v in values[m.group(2)]]
            continue
        for name, value in values.items():
            if isinstance(value, str):
                line = line.replace(f"@{name}@", value)
        out.append(line)
    text = "\n".join(out) + "\n"
    leftover = re.findall(r"@[a-z_]+@", text)
    if leftover:  # pragma: no cover - a template bug
        raise RuntimeError(f"unfilled placeholders {leftover}")
    return text


def header(opts: Options) -> str:
    bits = [f"--provider {opts.provider}", f"--strategy {opts.strategy}"]
    if opts.dags_repo:
        bits.append("--dags-repo")
    if opts.bucket:
        bits.append(f"--bucket {opts.bucket}")
    if opts.install:
        bits.append(f"--install '{opts.install}'")
    if opts.index_url:
        bits.append(f"--index-url {opts.index_url}")
    if opts.sharded:
        bits.append(f"--shards {opts.shards}")
    return f"Generated by `pytest-astro ci init {' '.join(bits)}` (pytest-astro {__version__})."


def secrets_doc(opts: Options) -> str:
    names = ", ".join(secrets(opts))
    if opts.per_branch_secrets:
        return f"{names}, one value per environment branch ({', '.join(opts.branches)})."
    return f"{names}."


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _slug(branch: str, allowed: str = "A-Za-z0-9_-") -> str:
    return re.sub(f"[^{allowed}]", "_" if "-" not in allowed else "-", branch)


def _github(opts: Options) -> dict:
    env = [f"{name}: ${{{{ secrets.{name} }}}}" for name in secrets(opts)]
    astro = ["- name: Install the Astro CLI", f"  run: {ASTRO_CLI_INSTALL.format(sudo='sudo ')}"]
    return {"branches": _yaml_list(opts.branches),
            # an environment even for one branch: its protection rules and secrets apply to this job
            # only
            "environment": ("environment: ${{ github.ref_name }}  # one GitHub environment (and "
                            "token) per branch"
                            if opts.per_branch_secrets else
                            "environment: ${{ github.ref_name }}  # the secret can live in this "
                            "environment only"),
            "astro_cli": astro if opts.target == "astro" else [],
            "check": check_command(opts), "apply_install": apply_install_command(opts),
            "secret_env": env,
            "apply": apply_lines(opts), **_github_shards(opts),
            **{f"uses_{k.replace('-', '_')}": v for k, v in ACTIONS.items()}}


def _github_shards(opts: Options) -> dict:
    """The test job's parts that change with ``--shards``: a matrix job per shard, each with its own
    parse cache and its own reports (SARIF runs told apart by their per-shard automationDetails)."""
    if not opts.sharded:
        return {"test_matrix": [], "suite_env": [], "shard_key": "", "artifact_suffix": "",
                "suite": suite_command(opts, ("sarif",)), "test_reports": [JUNIT, SARIF],
                "download_reports": ["- uses: " + ACTIONS["download-artifact"], "  with:",
                                     "    name: pytest-astro-reports"],
                "sarif_upload": SARIF, "sarif_category": ["category: pytest-astro"]}
    junit, sarif = JUNIT.replace(".xml", "-{shard}.xml"), SARIF.replace(".sarif", "-{shard}.sarif")
    suite = suite_command(opts, ("sarif",), shard=f'"$SHARD/{opts.shards}"')
    shards = _yaml_list([str(k) for k in range(1, opts.shards + 1)]).replace(chr(34), '')
    return {"test_matrix": ["strategy:", "  fail-fast: false", "  matrix:", f"    shard: {shards}"],
            "suite_env": ["env:", "  SHARD: ${{ matrix.shard }}"],
            "shard_key": "-shard${{ matrix.shard }}",
            "artifact_suffix": "-${{ matrix.shard }}",
            "suite": suite.replace(JUNIT, junit).replace(SARIF, sarif),
            "test_reports": [junit.replace("{shard}", "*"), sarif.replace("{shard}", "*")],
            "download_reports": ["- uses: " + ACTIONS["download-artifact"], "  with:",
                                 "    pattern: pytest-astro-reports-*", "    merge-multiple: true",
                                 "    path: sarif"],
            # no category: each shard's SARIF run names itself (automationDetails.id per shard)
            "sarif_upload": "sarif", "sarif_category": []}


def _gitlab(opts: Options) -> dict:
    regex = "/^(" + "|".join(re.escape(b).replace("/", r"\/") for b in opts.branches) + ")$/"
    docker = needs_docker(opts)
    return {"branch_regex": regex,
            "gitlab_scope": ", scoped to each environment" if opts.per_branch_secrets else
                            ", scoped to the environment",
            "constraints": constraints_url(opts),
            "install": install_command(opts, constraint=False),
            "apply_install": apply_install_command(opts),
            "docker_variables_block": (["variables:", '  DOCKER_HOST: "tcp://docker:2375"',
                                        '  DOCKER_TLS_CERTDIR: ""']
                                       if docker else []),
            "docker_services": ["services:", "  - docker:dind"] if docker else [],
            "astro_cli": [f"- {ASTRO_CLI_INSTALL.format(sudo='')}"] if opts.target == "astro"
            else [],
            "suite": suite_command(opts, ("gitlab",)), "check": check_command(opts),
            "apply": ["- "
                      f"{json.dumps(line) if ':' in line else line}" for line in apply_lines(opts)],
            # each parallel job keeps its own parse cache (its files) and its own artifacts
            "test_parallel": [f"parallel: {opts.shards}"] if opts.sharded else [],
            "shard_key": "-$CI_NODE_INDEX" if opts.sharded else ""}


def _circleci(opts: Options) -> dict:
    jobs: list[str] = []
    for branch in opts.branches:
        context = f"astro-{_slug(branch)}" if opts.per_branch_secrets else "astro"
        only = ["    filters:", "      branches:", f"        only: {json.dumps(branch)}"]
        jobs += ["- deploy-check:", f"    name: deploy-check-{_slug(branch)}", *only,
                 "- deploy:", f"    name: deploy-{_slug(branch)}", f"    context: {context}",
                 f"    requires: [deploy-check-{_slug(branch)}]", *only]
    return {"branches_json": _yaml_list(opts.branches),
            "docker_setup": ["- setup_remote_docker"] if needs_docker(opts) else [],
            "astro_cli": (["- run:", "    name: Install the Astro CLI",
                           f"    command: {ASTRO_CLI_INSTALL.format(sudo='sudo ')}"]
                          if opts.target == "astro" else []),
            "suite": suite_command(opts), "check": check_command(opts),
            "apply_install": apply_install_command(opts),
            "apply": apply_lines(opts), "deploy_jobs": jobs,
            "test_parallel": [f"parallelism: {opts.shards}"] if opts.sharded else [],
            "shard_key": "-{{ .Environment.CIRCLE_NODE_INDEX }}" if opts.sharded else ""}


def _bitbucket(opts: Options) -> dict:
    steps: list[str] = []
    apply = [apply_install_command(opts)]
    if opts.target == "astro":
        apply.append(ASTRO_CLI_INSTALL.format(sudo=""))
    apply += apply_lines(opts)
    for branch in opts.branches:
        deployment = branch if opts.per_branch_secrets else "production"
        steps += [f"{json.dumps(branch)}:", "  - step:",
                  "      name: Test without credentials, write the plan",
                  "      caches: [pip, pytest-astro]", "      script:",
                  f"        - {json.dumps(install_command(opts))}",
                  f"        - {json.dumps(check_command(opts))}",
                  "      artifacts:", f"        - {PLAN}", "        - test-results/**",
                  # deployment variables reach only the step with `deployment:`
                  "  - step:", "      name: Deploy the plan", "      deployment: "
                                                              f"{json.dumps(deployment)}"]
        if needs_docker(opts):
            steps += ["      services:", "        - docker"]
        steps += ["      script:"] + [f"        - {json.dumps(line)}" for line in apply]
        steps += ["      artifacts:", f"        - {RECORD}"]
    return {"branch_steps": steps, "suite": suite_command(opts)}


def _azure_cache_steps(opts: Options, indent: str, sharded: bool = False) -> list[str]:
    key = f'pytest-astro | "$(Agent.OS)" | "{opts.python}"' + (' | "$(System.JobPositionInPhase)"'
                                                               if sharded else "")
    return [f"{indent}- task: Cache@2", f"{indent}  displayName: Keep the parse cache between runs",
            f"{indent}  inputs:", f"{indent}    key: '{key} | \"$(Build.SourceVersion)\"'",
            f"{indent}    restoreKeys: '{key}'", f"{indent}    path: {CACHE_DIR}"]


def _azure(opts: Options) -> dict:
    jobs: list[str] = []
    env = [f"{name}: $({name})" for name in secrets(opts)]
    for branch in opts.branches:
        name = re.sub(r"[^A-Za-z0-9_]", "_", branch)
        group = f"astro-{_slug(branch)}" if opts.per_branch_secrets else "astro"
        condition = f"  condition: eq(variables['Build.SourceBranch'], 'refs/heads/{branch}')"
        python = ["    - task: UsePythonVersion@0", "      inputs:", "        versionSpec: "
                                                                     f"\"{opts.python}\""]
        jobs += [f"- job: check_{name}", "  displayName: Test without credentials, write the "
                                         "plan", condition,
                 "  steps:", "    - checkout: self", "      fetchDepth: \"0\"", *python,
                 *_azure_cache_steps(opts, "    "),
                 f"    - script: {install_command(opts)}", "      displayName: Install the "
                                                           "project and pytest-astro",
                 f"    - script: {check_command(opts)}", "      displayName: Test without "
                                                         "credentials, write the plan",
                 "    - task: PublishTestResults@2", "      condition: succeededOrFailed()",
                 "      inputs:",
                 "        testResultsFormat: JUnit", f"        testResultsFiles: {JUNIT}",
                 f"    - publish: $(System.DefaultWorkingDirectory)/{PLAN}",
                 f"      artifact: pytest-astro-plan-{name}"]
        # a job of its own: nothing the project's code did in the check can reach the token's tools
        jobs += [f"- job: deploy_{name}", "  displayName: Deploy the plan",
                 f"  dependsOn: check_{name}", condition,
                 "  variables:", f"    - group: {group}  # holds the secret variables",
                 "  steps:", "    - checkout: self", *python,
                 f"    - script: {apply_install_command(opts)}",
                 "      displayName: Install pytest-astro (only; the project's code does not run "
                 "here)"]
        if opts.target == "astro":
            jobs += [f"    - script: {ASTRO_CLI_INSTALL.format(sudo='sudo ')}", "      "
                                                                                "displayName: "
                                                                                "Install the "
                                                                                "Astro CLI"]
        jobs += ["    - download: current", f"      artifact: pytest-astro-plan-{name}"]
        plan = f"$(Pipeline.Workspace)/pytest-astro-plan-{name}/{PLAN}"
        jobs += ["    - script: |"] + [f"        {line}" for line in apply_lines(opts, plan=plan)]
        jobs += ["      displayName: Deploy the plan", "      env:"] + [f"        {e}" for e in env]
        jobs += ["    - publish: $(System.DefaultWorkingDirectory)/" + RECORD,
                 f"      artifact: pytest-astro-deploy-{name}-$(System.JobAttempt)",
                 "      condition: succeededOrFailed()", "      displayName: Keep the audit record"]
    return {"branches_json": _yaml_list(opts.branches), "deploy_jobs": jobs,
            "suite": suite_command(opts),
            "test_cache": _azure_cache_steps(opts, "", opts.sharded),
            "test_parallel": ["strategy:", f"  parallel: \"{opts.shards}\""] if opts.sharded
            else []}


def _jenkins(opts: Options) -> dict:
    creds = []
    for name in secrets(opts):
        cid = name.lower().replace("_", "-")
        cid = f'"{cid}-${{env.BRANCH_NAME}}"' if opts.per_branch_secrets else f"'{cid}'"
        creds.append(f"string(credentialsId: {cid}, variable: '{name}')")
    venv = ".venv/bin/"
    return {"install_sh": "python -m venv .venv && "
            + install_command(opts).replace("python -m", f"{venv}python -m", 1),
            "jenkins_when": " ".join(f"branch '{b}';" for b in opts.branches),
            "jenkins_credentials": ", ".join(creds),
            "jenkins_astro_cli": ([f"sh '{ASTRO_CLI_INSTALL.format(sudo='')}'"]
                                  if opts.target == "astro" else []),
            "suite": suite_command(opts).replace("python -m", f"{venv}python -m"),
            "check": check_command(opts, venv), "apply": apply_lines(opts, venv)}


_PER_PROVIDER = {"github": _github, "gitlab": _gitlab, "circleci": _circleci,
                 "bitbucket": _bitbucket,
                 "azure": _azure, "jenkins": _jenkins}


def generate(opts: Options) -> str:
    """The pipeline file's text."""
    if opts.sharded and opts.provider not in SHARDED_PROVIDERS:
        raise ValueError(f"--shards: the {opts.provider} pipeline has no parallel form yet "
                         f"(providers with one: {', '.join(SHARDED_PROVIDERS)}); leave --shards "
                         "out")
    template_name, _ = PROVIDERS[opts.provider]
    template = resources.files("pytest_astro.ci").joinpath("templates", template_name)
    template = template.read_text(encoding="utf-8")
    values: dict = {"header": header(opts), "secrets_doc": secrets_doc(opts), "python": opts.python,
                    "install": install_command(opts), "cache_dir": CACHE_DIR, "junit": JUNIT,
                    "sarif": SARIF, "code_quality": CODE_QUALITY, "plan": PLAN, "record": RECORD}
    values.update(_PER_PROVIDER[opts.provider](opts))
    return render(template, values)


def deploy_snippet(opts: Options) -> str:
    """The ``[tool.pytest-astro.deploy]`` table the pipeline expects, for pyproject.toml."""
    lines = ["[tool.pytest-astro.deploy.branches]"]
    for branch in opts.branches:
        if opts.bucket:
            value = f'{{ bucket = "{opts.bucket}" }}' if len(opts.branches) == 1 else \
                (f'{{ bucket = "{opts.bucket.rstrip("/")}/{branch}" }}'
                 '  # one prefix or bucket per environment')
        else:
            value = f'"<{branch} Deployment id>"  # astro deployment list'
        lines.append(f'{json.dumps(branch) if "/" in branch else branch} = {value}')
    return "\n".join(lines) + "\n"
