"""``pytest-astro deploy [check|apply]``: two phases, the token only in the second.

- **check** (:func:`run_check`, no credential): resolve the target -> decide the type -> refuse a
  tree that differs from HEAD -> hash the files the deploy would ship -> run the suite -> hash them
  again (the suite must not have changed them) -> write the plan (:mod:`.plan`).
- **apply** (:func:`run_apply`, holds the token, runs no project code): read the plan -> the tree is
  still HEAD and the files still have the plan's hashes -> deploy -> confirm from the CLI's output
  -> wait -> record.
- ``pytest-astro deploy`` alone (:func:`run_gate`) does both in one process, for local use: it hides
  the credentials from its own ``/proc/PID/environ`` first and refuses when an ancestor was started
  with one (:mod:`.exposure`).

Exit status: 0 deployed, plan allowed, nothing to deploy for this branch, or ``--dry-run``; 1 refused
(suite, parse, tree, plan) or the deploy failed; 2 a configuration or usage error; 130 interrupted.
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
from pytest_astro.deploy import buckets, changes, ci_env, exposure, record, suite, targets
from pytest_astro.deploy import settings as deploy_settings
from pytest_astro.deploy import plan as plans
from pytest_astro.deploy.mask import Masker, scrubbed_environment
from pytest_astro.deploy.targets import DeployError
from pytest_astro.user_errors import user_message

DEFAULT_RECORD = "pytest-astro-deploy.json"
_SHOWN = 10


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
    plan: str | None = None
    wait: bool | None = None  # None: from pyproject (default: wait)
    wait_seconds: int | None = None
    allow_bucket_root: bool = False
    reports: list[str] = field(default_factory=list)  # shard reports instead of running the suite


class Refused(Exception):
    """Stop the phase: ``outcome`` (refused, failed, skipped) with exit ``code`` and the reason."""

    def __init__(self, outcome: str, code: int, reason: str, lines: list[str] | None = None):
        super().__init__(reason)
        self.outcome, self.code, self.reason, self.lines = outcome, code, reason, lines or []


@dataclass
class Run:
    """One gate run's context: the project, its settings, what it prints and records."""

    opts: GateOptions
    env: dict
    out: Callable[[str], None]
    root: Path = None  # type: ignore[assignment]
    settings: object = None
    cfg: deploy_settings.DeployConfig = None  # type: ignore[assignment]
    masker: Masker = field(default_factory=Masker)
    rec: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        for line in self.masker(str(text)).split("\n"):  # masked whole first: a secret may span lines
            self.out(line)

    def path(self, value: str | None, default: str) -> Path:
        path = Path(value or default)
        return path if path.is_absolute() else Path.cwd() / path

    @property
    def record_path(self) -> Path:
        return self.path(self.opts.record or self.cfg.record, DEFAULT_RECORD)

    @property
    def plan_path(self) -> Path:
        return self.path(self.opts.plan or self.cfg.plan, plans.DEFAULT_PLAN)

    def own_files(self) -> set[str]:
        """The plan and the record, relative to the root: ours, never part of what is shipped."""
        out = set()
        for path in (self.plan_path, self.record_path):
            try:
                out.add(path.resolve().relative_to(self.root.resolve()).as_posix())
            except ValueError:
                pass
        return out

    def finish(self, outcome: str, code: int, reason: str = "") -> int:
        self.rec.update(outcome=outcome, reason=reason, exit_code=code,
                        duration_s=round(time.monotonic() - self.started, 3))
        self.rec.setdefault("versions", record.versions())
        try:
            record.write(self.rec, self.record_path, self.masker)
            record.step_summary(self.rec, self.masker, self.env)
            self.say(f"pytest-astro deploy: audit record written to {self.record_path}")
        except OSError as exc:
            self.say(f"pytest-astro deploy: warning: cannot write the audit record {self.record_path}: {exc}")
        return code


def _load(run: Run) -> int | None:
    """Fill ``run`` from the project's configuration; an exit status on a configuration error."""
    opts = run.opts
    try:
        run.root = find_project_root(opts.project)
        run.settings = load_settings(run.root)
        run.cfg = deploy_settings.load(run.settings.table, run.root / "pyproject.toml")
        if opts.bucket:
            deploy_settings.check_bucket_url(opts.bucket, "--bucket")
        if opts.deployment_id is not None:
            deploy_settings.check_deployment_id(opts.deployment_id, "--deployment-id")
        if opts.type and opts.type not in deploy_settings.TYPES:
            raise ConfigError(f"--type: expected one of {', '.join(deploy_settings.TYPES)}, got {opts.type!r}")
        if sum(x is not None for x in (opts.deployment_id, opts.bucket, opts.command)) > 1:
            raise ConfigError("give only one of --deployment-id, --bucket, --command")
    except ConfigError as exc:
        run.say(user_message(exc))
        return 2
    run.masker = Masker.from_environment(run.env, run.cfg.scrub_env)
    run.rec = {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "project": str(run.root), "dry_run": opts.dry_run}
    return None


def _commit_info(root: Path) -> tuple[str | None, str | None, str | None]:
    out = ci_env.git(["log", "-1", "--format=%H%n%h%n%s"], root)
    if not out:
        return None, None, None
    sha, short, *subject = out.split("\n")
    return sha, short, (subject[0] if subject else "")


def _dirty(run: Run) -> list[str]:
    """Tracked files that differ from HEAD, but for the plan and the record (ours, rewritten each run)."""
    top = ci_env.git(["rev-parse", "--show-toplevel"], run.root)
    own = {Path(p).resolve() for p in (run.plan_path, run.record_path)}
    return [p for p in plans.dirty_files(run.root) or () if top is None or Path(top, p).resolve() not in own]


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


# ---------------------------------------------------------------------------- check

def _resolve_target(run: Run, ctx: ci_env.CIContext, branch: str | None) -> deploy_settings.Target:
    opts, cfg = run.opts, run.cfg
    if opts.deployment_id or opts.bucket or opts.command:
        return deploy_settings.Target(deployment=opts.deployment_id, bucket=opts.bucket, command=opts.command,
                                    source="command line")
    if ctx.event == ci_env.PULL_REQUEST and not opts.dry_run:
        run.say(f"pytest-astro deploy: this is a pull-request build ({ctx.provider}); the gate deploys pushes to "
                "environment branches only. Nothing deployed (run `pytest --astro-dags` to check a pull request).")
        raise Refused("skipped", 0, "pull-request build")
    target = cfg.target_for(branch)
    if target is None:
        mapped = ", ".join(cfg.branches) or "none"
        why = ("this is a tag build" if ctx.event == ci_env.TAG else
               "no branch is checked out (detached HEAD); pass --branch" if not branch else
               f"branch {branch!r} has no target")
        fail = opts.fail_unmapped or cfg.unmapped_branch == "fail"
        run.say(f"pytest-astro deploy: {why} in {cfg.path} [tool.pytest-astro.deploy.branches] (mapped: {mapped}). "
                f"Nothing deployed." + (" Failing because unmapped-branch = \"fail\"." if fail else
                                        " Add the branch there, or pass --deployment-id."))
        raise Refused("skipped", 1 if fail else 0, why)
    return target


def _preflight(run: Run, target, deploy_type: str, description: str, with_deploy: bool) -> tuple[str, str | None]:
    """The deploy line for the plan, and a problem that stops the run before the suite (exit 2 for a
    configuration error: a bucket root, a command that does not parse)."""
    cfg, opts = run.cfg, run.opts
    if target.kind == "bucket" and buckets.is_bucket_root(target.bucket) and not (
            opts.allow_bucket_root or cfg.allow_bucket_root):
        raise Refused("failed", 2, f"{target.bucket} is a whole bucket: the sync deletes every object in it that "
                      "is not a DAG folder file (backups, logs, ...). Give the DAGs a prefix of their own "
                      "(s3://BUCKET/dags), or set allow-bucket-root = true in [tool.pytest-astro.deploy] "
                      "(--allow-bucket-root) if the bucket holds nothing else; --dry-run lists what it would delete")
    if target.kind == "command":
        problem = targets.check_command(target.command, run.env, run.root)
        if problem:
            raise Refused("failed", 2, problem)
    line, problem = _deploy_line(run, target, deploy_type, description)
    return line, (problem if with_deploy else None)


def _check(run: Run, with_deploy: bool) -> tuple[int, dict]:
    """The check phase; returns (exit status, plan). Raises Refused to stop early."""
    opts, cfg, root = run.opts, run.cfg, run.root
    ctx = ci_env.detect(run.env, root)
    branch = opts.branch or ctx.branch
    sha, short, subject = _commit_info(root)
    run.rec.update(ci=ctx.to_dict(), branch=branch, commit=sha or ctx.commit, commit_subject=subject)
    target = _resolve_target(run, ctx, branch)
    run.rec["target"] = target.to_dict()
    forced = opts.type or target.type or cfg.type
    if target.kind == "bucket":
        if forced in ("image", "image-only"):
            raise Refused("failed", 2, f"a bucket target syncs the DAG folder only; it cannot make an {forced} "
                          f"deploy (drop --{forced} or the type setting)")
        decision = changes.Decision("dags", "a bucket target syncs the DAG folder")
    else:
        decision = changes.decide(root, run.settings.dags_path, ctx, forced, opts.base)
    run.rec.update(deploy_type=decision.type, decision=decision.to_dict())
    description = opts.description or " ".join(x for x in (short, (subject or "")[:100]) if x) or "pytest-astro deploy"
    wait = cfg.wait if opts.wait is None else opts.wait
    wait_seconds = (opts.wait_seconds or cfg.wait_seconds) if wait else None
    report_path = Path(tempfile.mkdtemp(prefix="pytest-astro-deploy-")) / "report.json"
    suite_cmd = suite.build_command(cfg.suite, [*cfg.suite_args, *opts.suite_args], report_path)
    plan = {"project": str(root), "project_in_repo": _in_repo(root), "branch": branch, "commit": sha,
            "commit_subject": subject, "target": target.to_dict(), "deploy_type": decision.type, "decision": decision.to_dict(),
            "description": description, "wait_seconds": wait_seconds, "dags_folder": _rel(run), "allowed": False}
    line, problem = _preflight(run, target, decision.type, description, with_deploy)
    _say_plan(run, ctx, branch, short, subject, target, decision, suite_cmd, line, problem)
    if opts.dry_run:
        if target.kind == "bucket":
            _dry_run_bucket(run, target)
        run.say("pytest-astro deploy: dry run: nothing was run or deployed")
        raise Refused("dry-run", 0, problem or "")
    if problem:
        raise Refused("failed", 1, problem)
    dirty = _dirty(run)
    if dirty:
        raise Refused("refused", 1, f"tracked files differ from the commit HEAD ({_listing(dirty)}): the deploy "
                      "would not be the commit that is recorded. Commit them, or undo them (git stash / "
                      "git checkout -- FILE); a CI step that rewrites tracked files must run before the commit")
    kind = target.kind if target.kind != "astro" else decision.type
    before = plans.shipped_files(root, run.settings.dags_path, kind, run.own_files())
    if before.problems:
        raise Refused("refused", 1, "the deploy would ship files from outside the project", before.problems)
    result = _run_suite(run, suite_cmd, report_path)
    plan["suite"] = result.to_dict()
    run.rec["suite"] = result.to_dict()
    if result.leftovers:
        run.say(f"pytest-astro deploy: warning: the suite left {len(result.leftovers)} process(es) running "
                f"({_listing(result.leftovers)}): killed, so that none of the project's code runs beside the deploy")
    if not result.ok:
        raise Refused("refused", 1, "; ".join(result.problems), [f"- {p}" for p in result.problems])
    after = plans.shipped_files(root, run.settings.dags_path, kind, run.own_files())
    changed = after.differences(before) + [f"{p} (tracked, differs from HEAD)" for p in _dirty(run)]
    if changed:
        raise Refused("refused", 1, f"the suite changed files that the deploy would ship, after they were checked: "
                      f"{_listing(changed)}; find the test or conftest.py that writes them")
    ignored = _airflowignored(run, after)
    plan["airflowignored"] = ignored
    if ignored:
        text = (f"{len(ignored)} file(s) are shipped but were not parsed, because .airflowignore excludes them: "
                f"{_listing(ignored)} (Airflow skips them only where it reads .airflowignore the same way)")
        if cfg.airflowignored == "refuse":
            raise Refused("refused", 1, text + "; airflowignored = \"refuse\" in [tool.pytest-astro.deploy]")
        run.say(f"pytest-astro deploy: warning: {text}")
    plan.update(files=after.files, allowed=True)
    tests = result.tests
    run.say(f"pytest-astro deploy: suite passed ({tests.get('passed', 0)} passed, "
            f"{(result.report or {}).get('parsed', '?')} DAG files parsed); {len(after.files)} files to ship")
    return 0, plan


def _in_repo(root: Path) -> str:
    """The project's folder relative to the top of its git work tree ("." at the top or outside git)."""
    top = ci_env.git(["rev-parse", "--show-toplevel"], root)
    try:
        return root.resolve().relative_to(Path(top).resolve()).as_posix() if top else "."
    except ValueError:
        return "."


def _rel(run: Run) -> str:
    try:
        return run.settings.dags_path.resolve().relative_to(run.root.resolve()).as_posix()
    except ValueError:
        return str(run.settings.dags_path)


def _say_plan(run, ctx, branch, short, subject, target, decision, suite_cmd, line, problem) -> None:
    run.say(f"pytest-astro deploy: plan for {run.root}")
    run.say(f"  branch:   {branch or '-'} ({ctx.provider or 'git'}{', ' + ctx.event if ctx.event else ''})")
    run.say(f"  commit:   {short or '-'} {subject or ''}")
    run.say(f"  target:   {target.describe()} (from {target.source or 'pyproject'})")
    run.say(f"  type:     {decision.type}: {decision.reason}")
    suite_line = (f"{len(run.opts.reports)} shard report(s): {', '.join(run.opts.reports)}" if run.opts.reports
                  else f"{_join(run, suite_cmd)} (without deploy credentials)")
    run.say(f"  suite:    {suite_line}")
    run.say(f"  deploy:   {line}")
    if problem:
        run.say(f"  problem:  {problem}")


def _join(run: Run, argv) -> str:
    """``shlex.join`` of the masked arguments: masking after quoting misses a quoted secret."""
    return shlex.join(run.masker(str(a)) for a in argv)


def _run_suite(run: Run, suite_cmd: list[str], report_path: Path) -> suite.SuiteResult:
    from pytest_astro.project import Project

    try:
        project = Project(run.settings)
        dag_rel = [project.relative(p) for p in project.all_dag_files]
    except (OSError, ConfigError) as exc:
        raise Refused("failed", 1, f"cannot list the DAG folder {run.settings.dags_path}: {exc}") from None
    if run.opts.reports:
        return suite.from_reports([Path(r) for r in run.opts.reports], dag_rel)
    suite_env = scrubbed_environment(run.env, run.cfg.scrub_env)
    # the suite must not leave bytecode in the DAG folder: it would be shipped, and "changed by the suite"
    suite_env.update(PYTEST_ASTRO_DEPLOY_GATE="1", PYTHONDONTWRITEBYTECODE="1")
    run.say("pytest-astro deploy: running the suite")
    return suite.run(suite_cmd, run.root, suite_env, lambda line: run.say("  | " + line), report_path, dag_rel)


def _airflowignored(run: Run, shipped: plans.Manifest) -> list[str]:
    """Shipped Python or zip files of the DAG folder that .airflowignore kept from the parse."""
    from pytest_astro.project import IGNORE_FILE, Project

    project = Project(run.settings)
    parsed_scope = {project.relative(p) for p in project.dag_folder_files()}
    dags = _rel(run) + "/"
    return [p for p, digest in shipped.files.items()
            if p.startswith(dags) and digest.startswith("sha256:") and p not in parsed_scope
            and (p.endswith((".py", ".zip"))) and not p.endswith(IGNORE_FILE) and "/__pycache__/" not in p]


def _dry_run_bucket(run: Run, target) -> None:
    """List the bucket and say what a sync would upload and delete (needs the bucket's credentials)."""
    manifest = plans.shipped_files(run.root, run.settings.dags_path, "bucket", run.own_files())
    try:
        buckets.sync(target.bucket, [run.root / p for p in manifest.files], run.root / _rel(run),
                     _is_dag(run), run.say, retries=0, dry_run=True)
    except Exception as exc:  # noqa: BLE001 - a dry run reports, it does not fail
        run.say(f"pytest-astro deploy: cannot list {target.bucket} ({type(exc).__name__}: {exc})")


def run_check(opts: GateOptions, out: Callable[[str], None] = print, env: dict | None = None) -> int:
    """``pytest-astro deploy check``: exit 0 plan written and the deploy allowed, 1 refused, 2 error."""
    run = Run(opts, dict(os.environ if env is None else env), out)
    held = exposure.credential_names(run.env)
    found = [e.describe() for e in exposure.exposed()] if env is None else []
    if held or found:
        what = "; ".join(found) or f"{', '.join(held)} in this process's environment"
        run.say(user_message(
            f"deploy check: a deploy credential is within reach of the project code this phase runs ({what}): "
            "any process of this user can read a process's starting environment from /proc/PID/environ",
            fix="run the check in a CI step that does not have it; only `pytest-astro deploy apply` needs the token"))
        return 2
    code = _load(run)
    if code is not None:
        return code
    plan: dict = {}
    try:
        code, plan = _check(run, with_deploy=False)
    except Refused as exc:
        code = exc.code
        _say_refusal(run, exc)
        plan = {**{k: run.rec.get(k) for k in ("branch", "commit", "target", "deploy_type", "decision")},
                "project": str(run.root), "allowed": False, "outcome": exc.outcome, "reason": exc.reason,
                "files": {}, "suite": run.rec.get("suite")}
        if exc.outcome == "dry-run" or exc.code == 2:
            return code
    plans.write(plan, run.plan_path, run.masker)
    run.say(f"pytest-astro deploy check: plan written to {run.plan_path}"
            + (" (deploy allowed: run `pytest-astro deploy apply` with the token)" if plan.get("allowed") else ""))
    return code


def _say_refusal(run: Run, exc: Refused) -> None:
    if exc.outcome == "refused":
        run.say("pytest-astro deploy: NOT deploying: " + exc.reason)
    elif exc.outcome == "failed" and exc.reason:
        run.say(user_message(exc.reason))
    for line in exc.lines:
        run.say(f"  {line}")


# ---------------------------------------------------------------------------- apply

def _verify(run: Run, plan: dict) -> None:
    """The tree is the plan's commit and its files still have the plan's hashes; Refused otherwise."""
    root = run.root
    if not plan.get("allowed"):
        if plan.get("outcome") == "skipped":
            run.say(f"pytest-astro deploy: nothing to deploy ({plan.get('reason')})")
            raise Refused("skipped", 0, plan.get("reason") or "")
        raise Refused("refused", 1, f"the check phase refused this deploy: {plan.get('reason') or 'see its output'}")
    if plan.get("project_in_repo", ".") != _in_repo(root):  # the checkout may be elsewhere (another CI job)
        raise Refused("refused", 1, f"the plan is for the project {plan['project']}, not {root}")
    head = ci_env.git(["rev-parse", "HEAD"], root)
    if plan.get("commit") and head != plan["commit"]:
        raise Refused("refused", 1, f"the plan was made for commit {plan['commit'][:12]}, but HEAD is "
                      f"{(head or '?')[:12]}: run `pytest-astro deploy check` again on this commit")
    dirty = _dirty(run)
    if dirty:
        raise Refused("refused", 1, f"tracked files differ from the commit HEAD ({_listing(dirty)}): the deploy "
                      "would not be what was checked. Commit or undo them, then check again")
    kind = plan["target"].get("kind") if plan["target"].get("kind") != "astro" else plan["deploy_type"]
    now = plans.shipped_files(root, root / plan.get("dags_folder", "dags"), kind, run.own_files())
    if now.problems:
        raise Refused("refused", 1, "the deploy would ship files from outside the project", now.problems)
    differ = now.differences(plans.Manifest(dict(plan["files"])))
    if differ:
        raise Refused("refused", 1, f"files changed since they were checked: {_listing(differ)}; run "
                      "`pytest-astro deploy check` again")


def _apply(run: Run, plan: dict) -> int:
    """Deploy what ``plan`` allows (after :func:`_verify`); the exit status, with the record written."""
    target = deploy_settings.Target(deployment=plan["target"].get("deployment_id"), bucket=plan["target"].get("bucket"),
                                  command=plan["target"].get("command"))
    deploy_type, root = plan["deploy_type"], run.root
    wait_seconds = plan.get("wait_seconds") if run.opts.wait is None else (
        (run.opts.wait_seconds or run.cfg.wait_seconds) if run.opts.wait else None)
    run.rec.update(target=plan["target"], deploy_type=deploy_type, commit=plan.get("commit"),
                   branch=plan.get("branch"), commit_subject=plan.get("commit_subject"), suite=plan.get("suite"),
                   decision=plan.get("decision"), shipped=plan["files"])
    line, problem = _deploy_line(run, target, deploy_type, plan["description"], wait_seconds)
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
            result = targets.astro_deploy(target.deployment, deploy_type, plan["description"], run.env, root, run.say,
                                          run.cfg.astro_args, wait_seconds)
            run.rec["deploy"] = result.to_dict()
            run.rec["deploy_command"] = result.argv[1:]
            run.rec["versions"] = record.versions(targets.astro_version(run.env))
        elif target.kind == "bucket":
            dags = root / plan.get("dags_folder", "dags")
            files = {root / p: digest for p, digest in plan["files"].items()}
            buckets.sync(target.bucket, list(files), dags, _is_dag(run), run.say,
                         retries=run.cfg.retries, hashes=files, plan=sync_plan)
            run.rec["bucket_sync"] = _sync_record(sync_plan)
        else:
            cmd_env = {**run.env, "PYTEST_ASTRO_DEPLOY_TYPE": deploy_type, "PYTEST_ASTRO_BRANCH": plan.get("branch") or "",
                       "PYTEST_ASTRO_COMMIT": plan.get("commit") or "", "PYTEST_ASTRO_DESCRIPTION": plan["description"],
                       "PYTEST_ASTRO_DAGS_FOLDER": str(root / plan.get("dags_folder", "dags"))}
            targets.run_command(target.command, cmd_env, root, run.say)
    except KeyboardInterrupt:
        run.rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
        if target.kind == "bucket":
            run.rec["bucket_sync"] = _sync_record(sync_plan)
        run.say("pytest-astro deploy: INTERRUPTED during the deploy"
                + (f" ({len(sync_plan.uploaded)} of {len(sync_plan.uploads)} uploads and {len(sync_plan.deleted)} "
                   "deletions done; nothing is deleted before every upload is done)" if target.kind == "bucket" else ""))
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
    except Exception as exc:  # noqa: BLE001 - an SDK error must still be reported masked, with a record
        run.rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
        if target.kind == "bucket":
            run.rec["bucket_sync"] = _sync_record(sync_plan)
        run.say(f"pytest-astro deploy: deploy FAILED: {type(exc).__name__}: {exc}")
        return run.finish("failed", 1, f"{type(exc).__name__}: {exc}")
    run.rec["deploy_duration_s"] = round(time.monotonic() - deploy_started, 3)
    proof = run.rec.get("deploy") or {}
    what = ", ".join(f"{k.replace('_', ' ')} {proof[k]}" for k in ("dag_bundle", "image_tag") if proof.get(k))
    run.say(f"pytest-astro deploy: deployed {(plan.get('commit') or '')[:7]} to {target.describe()} ({deploy_type})"
            + (f": {what}, Deployment {proof.get('state')}" if what else ""))
    return run.finish("deployed", 0)


def _is_dag(run: Run) -> Callable[[Path], bool]:
    """Airflow's "might contain a DAG" test (reads the file, runs nothing): DAG files are uploaded last."""
    from pytest_astro.project import Project

    return Project(run.settings).is_dag_candidate


def _sync_record(plan: buckets.SyncPlan) -> dict:
    return {"uploaded": plan.uploaded, "deleted": plan.deleted, "unchanged": plan.unchanged,
            "planned_uploads": [k for k, _ in plan.uploads], "planned_deletes": plan.deletes}


def run_apply(opts: GateOptions, out: Callable[[str], None] = print, env: dict | None = None) -> int:
    """``pytest-astro deploy apply``: verify the tree against the plan, deploy, confirm, wait, record.
    Runs no project code: no suite, no conftest.py, no import of the project's modules."""
    run = Run(opts, dict(os.environ if env is None else env), out)
    code = _load(run)
    if code is not None:
        return code
    try:
        plan = plans.read(run.plan_path)
    except plans.PlanError as exc:
        run.say(user_message(f"deploy apply: {exc}"))
        return run.finish("failed", 2, str(exc))
    try:
        _verify(run, plan)
    except Refused as exc:
        run.rec.update(target=plan.get("target"), deploy_type=plan.get("deploy_type"), commit=plan.get("commit"))
        _say_refusal(run, exc)
        return run.finish(exc.outcome, exc.code, exc.reason)
    return _apply(run, plan)


# ---------------------------------------------------------------------------- both, in one process

def run_gate(opts: GateOptions, out: Callable[[str], None] = print, env: dict | None = None) -> int:
    """``pytest-astro deploy``: check, then apply, in this process (for local use).

    The suite never gets a credential (its environment is scrubbed). Before it starts, the
    credentials' values are also overwritten where ``/proc/self/environ`` shows them, so the suite
    cannot read them from its parent; this process keeps them for the apply phase. An ancestor
    started with a credential cannot be helped: then it refuses, and says to run two steps."""
    run = Run(opts, dict(os.environ if env is None else env), out)
    held = exposure.credential_names(run.env)
    hidden = {}
    if env is None and held and not opts.dry_run:
        hidden = {k: os.environ[k] for k in held if k in os.environ}
        exposure.hide_own(held)
        found = exposure.exposed(include_self=False)
        if found:
            run.say(user_message(
                "; ".join(e.describe() for e in found)
                + ": project code run by the suite could read it from /proc/PID/environ",
                fix="run `pytest-astro deploy check` in a step (or shell) without the credential, then "
                    "`pytest-astro deploy apply` with it"))
            return 2
    code = _load(run)
    if code is not None:
        return code
    try:
        code, plan = _check(run, with_deploy=True)
        plans.write(plan, run.plan_path, run.masker)
        _verify(run, plan)
    except Refused as exc:
        _say_refusal(run, exc)
        return run.finish(exc.outcome, exc.code, exc.reason)
    except KeyboardInterrupt:
        run.say("pytest-astro deploy: INTERRUPTED before the deploy; nothing was deployed")
        return run.finish("interrupted", 130, "interrupted (Ctrl-C) before the deploy")
    except OSError as exc:
        run.say(user_message(f"cannot write the plan: {exc.strerror or exc}", file=run.plan_path,
                             fix="give --plan a path in a writable folder"))
        return run.finish("failed", 1, str(exc))
    os.environ.update(hidden)  # the suite is over: the SDKs read their credentials from here
    return _apply(run, plan)


def _deploy_line(run: Run, target, deploy_type: str, description: str,
                 wait_seconds: int | None = None) -> tuple[str, str | None]:
    """What the deploy step will run, and the problem that would stop it (preflight)."""
    problem, env, cfg = None, run.env, run.cfg
    if target.kind == "astro":
        try:
            exe = targets.check_astro(env)
        except DeployError as exc:
            exe, problem = "astro", str(exc)
        if wait_seconds is None and run.opts.wait is not False and cfg.wait:
            wait_seconds = run.opts.wait_seconds or cfg.wait_seconds
        argv = targets.astro_argv(exe, target.deployment, deploy_type, description, cfg.astro_args, wait_seconds)
        return _join(run, argv) + f" (token from ${targets.TOKEN_VARIABLE})", problem
    if target.kind == "bucket":
        try:
            # the SDK is imported when the sync starts; check now that it is installed
            __import__("boto3" if target.bucket.startswith("s3://") else "google.cloud.storage")
        except ImportError:
            extra = "s3" if target.bucket.startswith("s3://") else "gcs"
            problem = f"the {target.bucket.split(':')[0]} client is not installed: pip install 'pytest-astro[{extra}]'"
        return f"sync the DAG folder to {target.bucket} (uploads first, then deletions)", problem
    cmd = run.masker(target.command) if isinstance(target.command, str) else _join(run, target.command)
    return cmd, problem
