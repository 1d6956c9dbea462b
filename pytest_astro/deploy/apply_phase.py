"""The apply phase of the deploy gate (holds the token, runs no project code): verify that the tree
is still what the plan checked, deploy, confirm from the tool's output, wait, record.
"""

from __future__ import annotations

import time

from pytest_astro.deploy import buckets, ci_env, context, record, targets
from pytest_astro.deploy import plan as plans
from pytest_astro.deploy import settings as deploy_settings
from pytest_astro.deploy.context import Refused, Run
from pytest_astro.deploy.targets import DeployError
from pytest_astro.user_errors import user_message


def verify(run: Run, plan: dict) -> None:
    """The tree is the plan's commit and its files still have the plan's hashes; Refused
    otherwise."""
    root = run.root
    if not plan.get("allowed"):
        if plan.get("outcome") == "skipped":
            run.say(f"pytest-astro deploy: nothing to deploy ({plan.get('reason')})")
            raise Refused("skipped", 0, plan.get("reason") or "")
        raise Refused("refused", 1, "the check phase refused this deploy: "
                                    f"{plan.get('reason') or 'see its output'}")
    # the checkout may be elsewhere (another CI job)
    if plan.get("project_in_repo", ".") != context.in_repo(root):
        raise Refused("refused", 1, f"the plan is for the project {plan['project']}, not {root}")
    head = ci_env.git(["rev-parse", "HEAD"], root)
    if plan.get("commit") and head != plan["commit"]:
        raise Refused("refused", 1, f"the plan was made for commit {plan['commit'][:12]}, but HEAD "
                                    f"is {(head or '?')[:12]}: run `pytest-astro deploy check` "
                                    "again on this commit")
    verify_target(run, plan)
    dirty = context.dirty(run)
    if dirty:
        raise Refused("refused", 1, "tracked files differ from the commit HEAD "
                                    f"({context.listing(dirty)}): the deploy would not be what was "
                                    "checked. Commit or undo them, then check again")
    kind = (plan["target"].get("kind") if plan["target"].get("kind") != "astro"
            else plan["deploy_type"])
    now = plans.shipped_files(root, root / plan.get("dags_folder", "dags"), kind, run.own_files())
    if now.problems:
        raise Refused("refused", 1, "the deploy would ship files from outside the "
                                    "project", now.problems)
    differ = now.differences(plans.Manifest(dict(plan["files"])))
    if differ:
        raise Refused("refused", 1, "files changed since they were checked: "
                                    f"{context.listing(differ)}; run `pytest-astro deploy check` "
                                    "again")


def verify_target(run: Run, plan: dict) -> None:
    """The plan's target is the one the checked commit gives it: apply's own target options when it
    has them, else the branch's entry in [tool.pytest-astro.deploy.branches] of the commit (which
    :func:`verify` has checked is HEAD), for the branch this build is on. A plan edited after the
    check (another Deployment, bucket or command) is refused; Refused otherwise."""
    opts, recorded = run.opts, plan.get("target") or {}
    again = "run `pytest-astro deploy check` again"
    if opts.deployment_id or opts.bucket or opts.command:
        expected = deploy_settings.Target(deployment=opts.deployment_id, bucket=opts.bucket,
                                          command=opts.command)
        where = "the target given to `pytest-astro deploy apply`"
    elif plan.get("target_source") == "command line":
        raise Refused("refused", 1, "the plan's target was given on the check's command line, so "
                                    "nothing in the repository confirms it: pass the same target "
                                    "option to `pytest-astro deploy apply` (e.g. --deployment-id)")
    else:
        branch = opts.branch or ci_env.detect(run.env, run.root).branch
        if branch and plan.get("branch") and branch != plan["branch"]:
            raise Refused("refused", 1, f"the plan was made for branch {plan['branch']!r}, but this "
                                        f"build is on {branch!r}: {again} on this branch (or pass the "
                                        "same --branch to both phases)")
        expected = run.cfg.target_for(plan.get("branch"))
        where = (f"the target {run.cfg.path.name} [tool.pytest-astro.deploy.branches] gives branch "
                 f"{plan.get('branch')!r} at this commit")
    want = expected.to_dict() if expected is not None else {"kind": "none"}
    if want != recorded:
        raise Refused("refused", 1, f"the plan's target ({_describe(recorded)}) is not {where} "
                                    f"({_describe(want)}): the plan was changed after the check, "
                                    f"or the options differ; {again}")


def _describe(target: dict) -> str:
    return "none" if target.get("kind") == "none" else deploy_settings.Target.from_dict(target).describe()


def deploy(run: Run, plan: dict) -> int:
    """Deploy what ``plan`` allows (after :func:`_verify`); the exit status, with the record
    written."""
    target = deploy_settings.Target.from_dict(plan["target"])
    deploy_type, root = plan["deploy_type"], run.root
    wait_seconds = plan.get("wait_seconds") if run.opts.wait is None else (
        (run.opts.wait_seconds or run.cfg.wait_seconds) if run.opts.wait else None)
    run.rec.update(target=plan["target"], deploy_type=deploy_type, commit=plan.get("commit"),
                   branch=plan.get("branch"), commit_subject=plan.get("commit_subject"),
                   suite=plan.get("suite"),
                   decision=plan.get("decision"), shipped=plan["files"])
    line, problem = context.deploy_line(run, target, deploy_type, plan["description"], wait_seconds)
    run.say(f"pytest-astro deploy: {line}")
    if run.opts.dry_run:
        return run.finish("dry-run", 0, problem or "")
    if problem:
        run.say(user_message(problem))
        return run.finish("failed", 1, problem)
    sync_plan = buckets.SyncPlan()
    deploy_started = time.monotonic()
    run.say(f"pytest-astro deploy: deploying to {target.describe()} ({deploy_type})")
    try:
        if target.kind == "astro":
            result = targets.astro_deploy(target.deployment, deploy_type, plan["description"],
                                          run.env, root, run.say,
                                          run.cfg.astro_args, wait_seconds)
            run.rec["deploy"] = result.to_dict()
            run.rec["deploy_command"] = result.argv[1:]
            run.rec["versions"] = record.versions(targets.astro_version(run.env))
        elif target.kind == "bucket":
            dags = root / plan.get("dags_folder", "dags")
            files = {root / p: digest for p, digest in plan["files"].items()}
            buckets.sync(target.bucket, list(files), dags, context.is_dag(run), run.say,
                         retries=run.cfg.retries, hashes=files, plan=sync_plan)
            run.rec["bucket_sync"] = _sync_record(sync_plan)
        else:
            cmd_env = {**run.env, "PYTEST_ASTRO_DEPLOY_TYPE": deploy_type,
                       "PYTEST_ASTRO_BRANCH": plan.get("branch") or "",
                       "PYTEST_ASTRO_COMMIT": plan.get("commit") or "",
                       "PYTEST_ASTRO_DESCRIPTION": plan["description"],
                       "PYTEST_ASTRO_DAGS_FOLDER": str(root / plan.get("dags_folder", "dags"))}
            targets.run_command(target.command, cmd_env, root, run.say)
    except KeyboardInterrupt:
        run.rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
        if target.kind == "bucket":
            run.rec["bucket_sync"] = _sync_record(sync_plan)
        run.say("pytest-astro deploy: INTERRUPTED during the deploy"
                + (f" ({len(sync_plan.uploaded)} of {len(sync_plan.uploads)} uploads and "
                   f"{len(sync_plan.deleted)} deletions done; nothing is deleted before every "
                   "upload is done)" if target.kind == "bucket" else ""))
        return run.finish("interrupted", 130, "interrupted (Ctrl-C) during the deploy")
    except DeployError as exc:
        run.rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
        if exc.detail is not None:
            run.rec["deploy"] = exc.detail.to_dict()
        if target.kind == "bucket":
            run.rec["bucket_sync"] = _sync_record(sync_plan)
        run.say(f"pytest-astro deploy: deploy FAILED: {exc}")
        unhealthy = exc.detail is not None and exc.detail.deployed
        return run.finish("unhealthy" if unhealthy else "failed", 1, str(exc))
    except Exception as exc:  # noqa: BLE001
        # an SDK error must still be reported masked, with a record
        run.rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
        if target.kind == "bucket":
            run.rec["bucket_sync"] = _sync_record(sync_plan)
        run.say(f"pytest-astro deploy: deploy FAILED: {type(exc).__name__}: {exc}")
        return run.finish("failed", 1, f"{type(exc).__name__}: {exc}")
    run.rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
    proof = run.rec.get("deploy") or {}
    what = ", ".join(f"{k.replace('_', ' ')} {proof[k]}" for k in ("dag_bundle", "image_tag")
                     if proof.get(k))
    run.say(f"pytest-astro deploy: deployed {(plan.get('commit') or '')[:7]} to "
            f"{target.describe()} ({deploy_type})"
            + (f": {what}, Deployment {proof.get('state')}" if what else ""))
    return run.finish("deployed", 0)


def _sync_record(plan: buckets.SyncPlan) -> dict:
    return {"uploaded": plan.uploaded, "deleted": plan.deleted, "unchanged": plan.unchanged,
            "planned_uploads": [k for k, _ in plan.uploads], "planned_deletes": plan.deletes}
