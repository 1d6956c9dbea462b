"""One deploy gate run's context, shared by both phases: the options, what the run prints (masked)
and records, the project's configuration, and the facts both phases look up (commit, dirty files,
the deploy command line).
"""

from __future__ import annotations

import datetime as dt
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_astro.config import ConfigError, find_project_root, load_settings
from pytest_astro.deploy import ci_env, record, targets
from pytest_astro.deploy import plan as plans
from pytest_astro.deploy import settings as deploy_settings
from pytest_astro.deploy.mask import Masker
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
        # masked whole first: a secret may span lines
        for line in self.masker(str(text)).split("\n"):
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
            self.say("pytest-astro deploy: warning: cannot write the audit record "
                     f"{self.record_path}: {exc}")
        return code


def load(run: Run) -> int | None:
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
            raise ConfigError(f"--type: expected one of {', '.join(deploy_settings.TYPES)}, got "
                              f"{opts.type!r}")
        if sum(x is not None for x in (opts.deployment_id, opts.bucket, opts.command)) > 1:
            raise ConfigError("give only one of --deployment-id, --bucket, --command")
    except ConfigError as exc:
        run.say(user_message(exc))
        return 2
    run.masker = Masker.from_environment(run.env, run.cfg.scrub_env)
    run.rec = {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "project": str(run.root), "dry_run": opts.dry_run}
    return None


def commit_info(root: Path) -> tuple[str | None, str | None, str | None]:
    out = ci_env.git(["log", "-1", "--format=%H%n%h%n%s"], root)
    if not out:
        return None, None, None
    sha, short, *subject = out.split("\n")
    return sha, short, (subject[0] if subject else "")


def dirty(run: Run) -> list[str]:
    """Tracked files that differ from HEAD, but for the plan and the record (ours, rewritten each
    run)."""
    top = ci_env.git(["rev-parse", "--show-toplevel"], run.root)
    own = {Path(p).resolve() for p in (run.plan_path, run.record_path)}
    return [p for p in plans.dirty_files(run.root) or () if top is None
            or Path(top, p).resolve() not in own]


def listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def in_repo(root: Path) -> str:
    """The project's folder relative to the top of its git work tree ("." at the top or outside
    git)."""
    top = ci_env.git(["rev-parse", "--show-toplevel"], root)
    try:
        return root.resolve().relative_to(Path(top).resolve()).as_posix() if top else "."
    except ValueError:
        return "."


def dags_rel(run: Run) -> str:
    try:
        return run.settings.dags_path.resolve().relative_to(run.root.resolve()).as_posix()
    except ValueError:
        return str(run.settings.dags_path)


def join_masked(run: Run, argv) -> str:
    """``shlex.join`` of the masked arguments: masking after quoting misses a quoted secret."""
    return shlex.join(run.masker(str(a)) for a in argv)


def is_dag(run: Run) -> Callable[[Path], bool]:
    """Airflow's "might contain a DAG" test (reads the file, runs nothing): DAG files are uploaded
    last."""
    from pytest_astro.project import Project

    return Project(run.settings).is_dag_candidate


def deploy_line(run: Run, target, deploy_type: str, description: str,
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
        argv = targets.astro_argv(exe, target.deployment, deploy_type, description, cfg.astro_args,
                                  wait_seconds)
        return join_masked(run, argv) + f" (token from ${targets.TOKEN_VARIABLE})", problem
    if target.kind == "bucket":
        try:
            # the SDK is imported when the sync starts; check now that it is installed
            __import__("boto3" if target.bucket.startswith("s3://") else "google.cloud.storage")
        except ImportError:
            extra = "s3" if target.bucket.startswith("s3://") else "gcs"
            problem = (f"the {target.bucket.split(':')[0]} client is not installed: pip install "
                       f"'pytest-astro[{extra}]'")
        return f"sync the DAG folder to {target.bucket} (uploads first, then deletions)", problem
    if isinstance(target.command, str):
        return run.masker(target.command), problem
    cmd = join_masked(run, target.command)
    return cmd, problem


def say_refusal(run: Run, exc: Refused) -> None:
    if exc.outcome == "refused":
        run.say("pytest-astro deploy: NOT deploying: " + exc.reason)
    elif exc.outcome == "failed" and exc.reason:
        run.say(user_message(exc.reason))
    for line in exc.lines:
        run.say(f"  {line}")
