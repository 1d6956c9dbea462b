"""The check phase of the deploy gate (no credential): resolve the target, decide the deploy type,
refuse a tree that is not HEAD, hash the files to ship, run the suite, hash them again, and build
the plan. Stops early by raising ``Refused``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from pytest_astro.config import ConfigError
from pytest_astro.deploy import buckets, changes, ci_env, context, suite, targets
from pytest_astro.deploy import plan as plans
from pytest_astro.deploy import settings as deploy_settings
from pytest_astro.deploy.context import Refused, Run
from pytest_astro.deploy.mask import scrubbed_environment


def _resolve_target(run: Run, ctx: ci_env.CIContext, branch: str | None) -> deploy_settings.Target:
    opts, cfg = run.opts, run.cfg
    if opts.deployment_id or opts.bucket or opts.command:
        return deploy_settings.Target(deployment=opts.deployment_id, bucket=opts.bucket,
                                      command=opts.command, source="command line")
    if ctx.event == ci_env.PULL_REQUEST and not opts.dry_run:
        run.say(f"pytest-astro deploy: this is a pull-request build ({ctx.provider}); the gate "
                "deploys pushes to environment branches only. Nothing deployed (run `pytest "
                "--astro-dags` to check a pull request).")
        raise Refused("skipped", 0, "pull-request build")
    target = cfg.target_for(branch)
    if target is None:
        mapped = ", ".join(cfg.branches) or "none"
        why = ("this is a tag build" if ctx.event == ci_env.TAG else
               "no branch is checked out (detached HEAD); pass --branch" if not branch else
               f"branch {branch!r} has no target")
        fail = opts.fail_unmapped or cfg.unmapped_branch == "fail"
        run.say(f"pytest-astro deploy: {why} in {cfg.path} [tool.pytest-astro.deploy.branches] "
                f"(mapped: {mapped}). Nothing "
                "deployed." + (" Failing because unmapped-branch = \"fail\"." if fail else
                               " Add the branch there, or pass --deployment-id."))
        raise Refused("skipped", 1 if fail else 0, why)
    return target


def _preflight(run: Run, target, deploy_type: str, description: str,
               with_deploy: bool) -> tuple[str, str | None]:
    """The deploy line for the plan, and a problem that stops the run before the suite (exit 2 for a
    configuration error: a bucket root, a command that does not parse)."""
    cfg, opts = run.cfg, run.opts
    if target.kind == "bucket" and buckets.is_bucket_root(target.bucket) and not (
            opts.allow_bucket_root or cfg.allow_bucket_root):
        raise Refused("failed", 2, f"{target.bucket} is a whole bucket: the sync deletes every "
                                   "object in it that is not a DAG folder file (backups, logs, "
                                   "...). Give the DAGs a prefix of their own (s3://BUCKET/dags), "
                                   "or set allow-bucket-root = true in [tool.pytest-astro.deploy] "
                                   "(--allow-bucket-root) if the bucket holds nothing else; "
                                   "--dry-run lists what it would delete")
    if target.kind == "command":
        problem = targets.check_command(target.command, run.env, run.root)
        if problem:
            raise Refused("failed", 2, problem)
    line, problem = context.deploy_line(run, target, deploy_type, description)
    return line, (problem if with_deploy else None)


def check(run: Run, with_deploy: bool) -> tuple[int, dict]:
    """The check phase; returns (exit status, plan). Raises Refused to stop early."""
    opts, cfg, root = run.opts, run.cfg, run.root
    ctx = ci_env.detect(run.env, root)
    branch = opts.branch or ctx.branch
    sha, short, subject = context.commit_info(root)
    run.rec.update(ci=ctx.to_dict(), branch=branch, commit=sha or ctx.commit,
                   commit_subject=subject)
    target = _resolve_target(run, ctx, branch)
    run.rec["target"] = target.to_dict()
    forced = opts.type or target.type or cfg.type
    if target.kind == "bucket":
        if forced in ("image", "image-only"):
            raise Refused("failed", 2, "a bucket target syncs the DAG folder only; it cannot make "
                                       f"an {forced} deploy (drop --{forced} or the type setting)")
        decision = changes.Decision("dags", "a bucket target syncs the DAG folder")
    else:
        decision = changes.decide(root, run.settings.dags_path, ctx, forced, opts.base)
    run.rec.update(deploy_type=decision.type, decision=decision.to_dict())
    description = opts.description or " ".join(x for x in (short, (subject or "")[:100])
                                               if x) or "pytest-astro deploy"
    wait = cfg.wait if opts.wait is None else opts.wait
    wait_seconds = (opts.wait_seconds or cfg.wait_seconds) if wait else None
    # the suite's report: read back, then removed with its folder, whatever the outcome
    report_dir = tempfile.mkdtemp(prefix="pytest-astro-deploy-")
    report_path = Path(report_dir) / "report.json"
    try:
        suite_cmd = suite.build_command(cfg.suite, [*cfg.suite_args, *opts.suite_args], report_path)
        plan = {"project": str(root), "project_in_repo": context.in_repo(root), "branch": branch,
                "commit": sha, "commit_subject": subject, "target": target.to_dict(),
                "target_source": target.source,
                "deploy_type": decision.type, "decision": decision.to_dict(),
                "description": description, "wait_seconds": wait_seconds,
                "dags_folder": context.dags_rel(run), "allowed": False}
        line, problem = _preflight(run, target, decision.type, description, with_deploy)
        _say_plan(run, ctx, branch, short, subject, target, decision, suite_cmd, line, problem)
        if opts.dry_run:
            if target.kind == "bucket":
                _dry_run_bucket(run, target)
            run.say("pytest-astro deploy: dry run: nothing was run or deployed")
            raise Refused("dry-run", 0, problem or "")
        if problem:
            raise Refused("failed", 1, problem)
        dirty = context.dirty(run)
        if dirty:
            raise Refused("refused", 1, "tracked files differ from the commit HEAD "
                                        f"({context.listing(dirty)}): the deploy would not be the "
                                        "commit that is recorded. Commit them, or undo them (git "
                                        "stash / git checkout -- FILE); a CI step that rewrites "
                                        "tracked files must run before the commit")
        kind = target.kind if target.kind != "astro" else decision.type
        before = plans.shipped_files(root, run.settings.dags_path, kind, run.own_files())
        if before.problems:
            raise Refused("refused", 1, "the deploy would ship files from outside the "
                                        "project", before.problems)
        result = _run_suite(run, suite_cmd, report_path)
        plan["suite"] = result.to_dict()
        run.rec["suite"] = result.to_dict()
        if result.leftovers:
            run.say(f"pytest-astro deploy: warning: the suite left {len(result.leftovers)} "
                    f"process(es) running ({context.listing(result.leftovers)}): killed, so that "
                    "none of the project's code runs beside the deploy")
        if not result.ok:
            raise Refused("refused", 1, "; ".join(result.problems),
                          [f"- {p}" for p in result.problems])
        _accept(run, plan, result, before, kind)
        return 0, plan
    finally:
        shutil.rmtree(report_dir, ignore_errors=True)


def _accept(run: Run, plan: dict, result: suite.SuiteResult, before: plans.Manifest,
            kind: str) -> None:
    """After a passing suite: the files to ship are still those checked, and .airflowignore kept
    none of them from the parse (or that is allowed); the plan gets them. Refused otherwise."""
    root, cfg = run.root, run.cfg
    after = plans.shipped_files(root, run.settings.dags_path, kind, run.own_files())
    changed = after.differences(before) + [f"{p} (tracked, differs from HEAD)"
                                           for p in context.dirty(run)]
    if changed:
        raise Refused("refused", 1, "the suite changed files that the deploy would ship, after "
                                    f"they were checked: {context.listing(changed)}; find the test "
                                    "or conftest.py that writes them")
    ignored = _airflowignored(run, after)
    plan["airflowignored"] = ignored
    if ignored:
        text = (f"{len(ignored)} file(s) are shipped but were not parsed, because .airflowignore "
                f"excludes them: {context.listing(ignored)} (Airflow skips them only where it "
                "reads .airflowignore the same way)")
        if cfg.airflowignored == "refuse":
            raise Refused("refused", 1, text + "; airflowignored = \"refuse\" in "
                                               "[tool.pytest-astro.deploy]")
        run.say(f"pytest-astro deploy: warning: {text}")
    plan.update(files=after.files, allowed=True)
    tests = result.tests
    run.say(f"pytest-astro deploy: suite passed ({tests.get('passed', 0)} passed, "
            f"{(result.report or {}).get('parsed', '?')} DAG files parsed); {len(after.files)} "
            "files to ship")


def _say_plan(run, ctx, branch, short, subject, target, decision, suite_cmd, line, problem) -> None:
    run.say(f"pytest-astro deploy: plan for {run.root}")
    run.say(f"  branch:   {branch or '-'} "
            f"({ctx.provider or 'git'}{', ' + ctx.event if ctx.event else ''})")
    run.say(f"  commit:   {short or '-'} {subject or ''}")
    run.say(f"  target:   {target.describe()} (from {target.source or 'pyproject'})")
    run.say(f"  type:     {decision.type}: {decision.reason}")
    suite_line = (f"{len(run.opts.reports)} shard report(s): "
                  f"{', '.join(run.opts.reports)}" if run.opts.reports
                  else f"{context.join_masked(run, suite_cmd)} (without deploy credentials)")
    run.say(f"  suite:    {suite_line}")
    run.say(f"  deploy:   {line}")
    if problem:
        run.say(f"  problem:  {problem}")


def _run_suite(run: Run, suite_cmd: list[str], report_path: Path) -> suite.SuiteResult:
    from pytest_astro.project import Project

    try:
        project = Project(run.settings)
        dag_rel = [project.relative(p) for p in project.all_dag_files]
    except (OSError, ConfigError) as exc:
        raise Refused("failed", 1, f"cannot list the DAG folder {run.settings.dags_path}: "
                                   f"{exc}") from None
    if run.opts.reports:
        return suite.from_reports([Path(r) for r in run.opts.reports], dag_rel)
    suite_env = scrubbed_environment(run.env, run.cfg.scrub_env)
    # the suite must not leave bytecode in the DAG folder: it would be shipped, and "changed by the
    # suite"
    suite_env.update(PYTEST_ASTRO_DEPLOY_GATE="1", PYTHONDONTWRITEBYTECODE="1")
    run.say("pytest-astro deploy: running the suite")
    return suite.run(suite_cmd, run.root, suite_env, lambda line: run.say("  | " + line),
                     report_path, dag_rel)


def _airflowignored(run: Run, shipped: plans.Manifest) -> list[str]:
    """Shipped Python or zip files of the DAG folder that .airflowignore kept from the parse."""
    from pytest_astro.project import IGNORE_FILE, Project

    project = Project(run.settings)
    parsed_scope = {project.relative(p) for p in project.dag_folder_files()}
    dags = context.dags_rel(run) + "/"
    return [p for p, digest in shipped.files.items()
            if p.startswith(dags) and digest.startswith("sha256:") and p not in parsed_scope
            and (p.endswith((".py", ".zip"))) and not p.endswith(IGNORE_FILE)
            and "/__pycache__/" not in p]


def _dry_run_bucket(run: Run, target) -> None:
    """List the bucket and say what a sync would upload and delete (needs the bucket's
    credentials)."""
    manifest = plans.shipped_files(run.root, run.settings.dags_path, "bucket", run.own_files())
    try:
        buckets.sync(target.bucket, [run.root / p for p in manifest.files],
                     run.root / context.dags_rel(run),
                     context.is_dag(run), run.say, retries=0, dry_run=True)
    except Exception as exc:  # noqa: BLE001 - a dry run reports, it does not fail
        run.say(f"pytest-astro deploy: cannot list {target.bucket} ({type(exc).__name__}: {exc})")
