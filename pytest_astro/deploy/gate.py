"""``pytest-astro deploy``: resolve target -> decide type -> run the suite -> deploy -> record.

Exit status: 0 deployed (or nothing to deploy for this branch, or ``--dry-run``); 1 refused (the
suite failed, ran no test, or a DAG file failed to parse) or the deploy failed; 2 a configuration or
usage error.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_astro.config import ConfigError, find_project_root, load_settings
from pytest_astro.deploy import buckets, changes, ci_env, record, suite, targets
from pytest_astro.deploy import config as deploy_config
from pytest_astro.deploy.mask import Masker, scrubbed_environment
from pytest_astro.deploy.targets import DeployError

DEFAULT_RECORD = "pytest-astro-deploy.json"


@dataclass
class GateOptions:
    project: Path = field(default_factory=Path.cwd)
    deployment_id: str | None = None
    bucket: str | None = None
    command: str | None = None
    type: str | None = None  # None: from pyproject (default auto)
    base: str | None = None
    branch: str | None = None
    suite_args: list[str] = field(default_factory=list)
    dry_run: bool = False
    record: str | None = None
    fail_unmapped: bool = False
    description: str | None = None


def project_dag_files(settings) -> tuple[list[Path], Callable[[Path], bool], list[str]]:
    """(every non-ignored file of the dags folder, is-a-DAG-file test, DAG files relative to the root)."""
    from pytest_astro.project import Project

    project = Project(settings)
    files = [p for p in project.dag_folder_files() if p.is_file()]
    dag_files = [project.relative(p) for p in project.all_dag_files]
    return files, project.is_dag_candidate, dag_files


def _commit_info(root: Path) -> tuple[str | None, str | None, str | None]:
    out = ci_env.git(["log", "-1", "--format=%H%n%h%n%s"], root)
    if not out:
        return None, None, None
    sha, short, *subject = out.split("\n")
    return sha, short, (subject[0] if subject else "")


def run_gate(opts: GateOptions, out: Callable[[str], None] = print, env: dict | None = None) -> int:
    started = time.monotonic()
    env = dict(os.environ if env is None else env)
    masker = Masker.from_environment(env)
    say = lambda text: out(masker(text))  # noqa: E731 - every line the gate prints is masked
    try:
        root = find_project_root(opts.project)
        settings = load_settings(root)
        cfg = deploy_config.load(settings.table, root / "pyproject.toml")
        if opts.bucket:
            deploy_config.check_bucket_url(opts.bucket, "--bucket")
        if opts.type and opts.type not in deploy_config.TYPES:
            raise ConfigError(f"--type: expected one of {', '.join(deploy_config.TYPES)}, got {opts.type!r}")
    except ConfigError as exc:
        say(f"pytest-astro deploy: error: {exc}")
        return 2
    masker = Masker.from_environment(env, cfg.scrub_env)
    rec: dict = {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "project": str(root), "dry_run": opts.dry_run}
    record_path = Path(opts.record or cfg.record or DEFAULT_RECORD)
    if not record_path.is_absolute():
        record_path = Path.cwd() / record_path

    def finish(outcome: str, code: int, reason: str = "") -> int:
        rec.update(outcome=outcome, reason=reason, exit_code=code,
                   duration_s=round(time.monotonic() - started, 3))
        rec.setdefault("versions", record.versions())
        try:
            record.write(rec, record_path, masker)
            record.step_summary(rec, masker, env)
            say(f"pytest-astro deploy: audit record written to {record_path}")
        except OSError as exc:
            say(f"pytest-astro deploy: warning: cannot write the audit record {record_path}: {exc}")
        return code

    # 1. target
    ctx = ci_env.detect(env, root)
    branch = opts.branch or ctx.branch
    sha, short, subject = _commit_info(root)
    rec.update(ci=ctx.to_dict(), branch=branch, commit=sha or ctx.commit, commit_subject=subject)
    if opts.deployment_id or opts.bucket or opts.command:
        target = deploy_config.Target(deployment=opts.deployment_id, bucket=opts.bucket, command=opts.command,
                                      source="command line")
        if sum(bool(x) for x in (opts.deployment_id, opts.bucket, opts.command)) > 1:
            say("pytest-astro deploy: error: give only one of --deployment-id, --bucket, --command")
            return 2
    else:
        if ctx.event == ci_env.PULL_REQUEST and not opts.dry_run:
            say(f"pytest-astro deploy: this is a pull-request build ({ctx.provider}); the gate deploys pushes to "
                "environment branches only. Nothing deployed (run `pytest --astro-dags` to check a pull request).")
            return finish("skipped", 0, "pull-request build")
        target = cfg.target_for(branch)
        if target is None:
            mapped = ", ".join(cfg.branches) or "none"
            why = ("this is a tag build" if ctx.event == ci_env.TAG else
                   "no branch is checked out (detached HEAD); pass --branch" if not branch else
                   f"branch {branch!r} has no target")
            fail = opts.fail_unmapped or cfg.unmapped_branch == "fail"
            say(f"pytest-astro deploy: {why} in {cfg.path} [tool.pytest-astro.deploy.branches] (mapped: {mapped}). "
                f"Nothing deployed." + (" Failing because unmapped-branch = \"fail\"." if fail else
                                        " Add the branch there, or pass --deployment-id."))
            return finish("skipped", 1 if fail else 0, why)
    rec["target"] = target.to_dict()

    # 2. deploy type
    forced = opts.type or target.type or cfg.type
    if target.kind == "bucket":
        if forced in ("image", "image-only"):
            say(f"pytest-astro deploy: error: a bucket target syncs the DAG folder only; it cannot make an "
                f"{forced} deploy (drop --{forced} or the type setting)")
            return finish("failed", 2, "image deploy to a bucket")
        decision = changes.Decision("dags", "a bucket target syncs the DAG folder")
    else:
        decision = changes.decide(root, settings.dags_path, ctx, forced, opts.base)
    rec["deploy_type"] = decision.type
    rec["decision"] = decision.to_dict()

    # 3. the suite's command and environment; the deploy's description
    description = opts.description or " ".join(x for x in (short, (subject or "")[:100]) if x) or "pytest-astro deploy"
    report_dir = Path(tempfile.mkdtemp(prefix="pytest-astro-deploy-"))
    report_path = report_dir / "report.json"
    suite_cmd = suite.build_command(cfg.suite, [*cfg.suite_args, *opts.suite_args], report_path)
    suite_env = scrubbed_environment(env, cfg.scrub_env)
    suite_env["PYTEST_ASTRO_DEPLOY_GATE"] = "1"

    say(f"pytest-astro deploy: plan for {root}")
    say(f"  branch:   {branch or '-'} ({ctx.provider or 'git'}{', ' + ctx.event if ctx.event else ''})")
    say(f"  commit:   {short or '-'} {subject or ''}")
    say(f"  target:   {target.describe()} (from {target.source or 'pyproject'})")
    say(f"  type:     {decision.type}: {decision.reason}")
    say(f"  suite:    {shlex.join(suite_cmd)} (without deploy credentials)")
    deploy_line, problem = _deploy_line(target, decision.type, description, cfg, env)
    say(f"  deploy:   {deploy_line}")
    if problem:
        say(f"  problem:  {problem}")
    if opts.dry_run:
        say("pytest-astro deploy: dry run: nothing was run or deployed")
        return finish("dry-run", 0, problem or "")
    if problem:
        say(f"pytest-astro deploy: error: {problem}")
        return finish("failed", 1, problem)

    # 4. the suite
    try:
        files, is_dag, dag_rel = project_dag_files(settings)
    except (OSError, ConfigError) as exc:
        say(f"pytest-astro deploy: error: cannot list the DAG folder {settings.dags_path}: {exc}")
        return finish("failed", 1, str(exc))
    say("pytest-astro deploy: running the suite")
    result = suite.run(suite_cmd, root, suite_env, lambda line: say("  | " + line), report_path, dag_rel)
    rec["suite"] = result.to_dict()
    if not result.ok:
        say("pytest-astro deploy: NOT deploying:")
        for p in result.problems:
            say(f"  - {p}")
        return finish("refused", 1, "; ".join(result.problems))
    tests = result.tests
    say(f"pytest-astro deploy: suite passed ({tests.get('passed', 0)} passed, "
        f"{(result.report or {}).get('parsed', len(dag_rel))} DAG files parsed)")

    # 5. deploy
    deploy_started = time.monotonic()
    say(f"pytest-astro deploy: deploying to {target.describe()} ({decision.type})")
    try:
        if target.kind == "astro":
            argv = targets.astro_deploy(target.deployment, decision.type, description, env, root, say,
                                        cfg.astro_args)
            rec["deploy_command"] = argv[1:]
            rec["versions"] = record.versions(targets.astro_version(env))
        elif target.kind == "bucket":
            plan = buckets.sync(target.bucket, files, settings.dags_path, is_dag, say, retries=cfg.retries)
            rec["bucket_sync"] = {"uploaded": [k for k, _ in plan.uploads], "deleted": plan.deletes,
                                  "unchanged": plan.unchanged}
        else:
            cmd_env = {**env, "PYTEST_ASTRO_DEPLOY_TYPE": decision.type, "PYTEST_ASTRO_BRANCH": branch or "",
                       "PYTEST_ASTRO_COMMIT": sha or "", "PYTEST_ASTRO_DESCRIPTION": description,
                       "PYTEST_ASTRO_DAGS_FOLDER": str(settings.dags_path)}
            targets.run_command(target.command, cmd_env, root, say)
    except DeployError as exc:
        rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
        say(f"pytest-astro deploy: deploy FAILED: {exc}")
        return finish("failed", 1, str(exc))
    except Exception as exc:  # noqa: BLE001 - an SDK error must still be reported masked, with a record
        rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
        say(f"pytest-astro deploy: deploy FAILED: {type(exc).__name__}: {exc}")
        return finish("failed", 1, f"{type(exc).__name__}: {exc}")
    rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
    say(f"pytest-astro deploy: deployed {short or ''} to {target.describe()} ({decision.type})")
    return finish("deployed", 0)


def _deploy_line(target, deploy_type: str, description: str, cfg, env) -> tuple[str, str | None]:
    """What the deploy step will run, and the problem that would stop it (preflight)."""
    problem = None
    if target.kind == "astro":
        try:
            exe = targets.check_astro(env)
        except DeployError as exc:
            exe, problem = "astro", str(exc)
        argv = targets.astro_argv(exe, target.deployment, deploy_type, description, cfg.astro_args)
        return shlex.join(argv) + f" (token from ${targets.TOKEN_VARIABLE})", problem
    if target.kind == "bucket":
        try:
            # the SDK is imported when the sync starts; check now that it is installed
            __import__("boto3" if target.bucket.startswith("s3://") else "google.cloud.storage")
        except ImportError:
            extra = "s3" if target.bucket.startswith("s3://") else "gcs"
            problem = f"the {target.bucket.split(':')[0]} client is not installed: pip install 'pytest-astro[{extra}]'"
        return f"sync the DAG folder to {target.bucket} (uploads first, then deletions)", problem
    cmd = target.command if isinstance(target.command, str) else shlex.join(target.command)
    return cmd, problem
