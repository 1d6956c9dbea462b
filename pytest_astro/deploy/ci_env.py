"""What the CI says about this build: provider, branch, commit, the pushed range, the trigger.

Each provider documents its own variables; this module is the one place that knows them:

============  ==================================================================================
github        GITHUB_ACTIONS, GITHUB_EVENT_NAME, GITHUB_REF_NAME/GITHUB_REF_TYPE, GITHUB_HEAD_REF,
              GITHUB_BASE_REF, GITHUB_SHA, and ``before`` of the push event (GITHUB_EVENT_PATH)
gitlab        GITLAB_CI, CI_COMMIT_BRANCH/CI_COMMIT_REF_NAME, CI_COMMIT_TAG, CI_COMMIT_SHA,
              CI_COMMIT_BEFORE_SHA, CI_PIPELINE_SOURCE, CI_MERGE_REQUEST_{SOURCE,TARGET}_BRANCH_NAME
circleci      CIRCLECI, CIRCLE_BRANCH, CIRCLE_TAG, CIRCLE_SHA1, CIRCLE_PULL_REQUEST (no pushed
range)
bitbucket     BITBUCKET_BUILD_NUMBER, BITBUCKET_BRANCH, BITBUCKET_TAG, BITBUCKET_COMMIT,
              BITBUCKET_PR_ID, BITBUCKET_PR_DESTINATION_BRANCH (no pushed range)
azure         TF_BUILD, BUILD_SOURCEBRANCH (``refs/heads/...``), BUILD_SOURCEVERSION, BUILD_REASON,
              SYSTEM_PULLREQUEST_SOURCEBRANCH/TARGETBRANCH (no pushed range)
jenkins       JENKINS_URL, BRANCH_NAME (multibranch) or GIT_BRANCH (``origin/main``), TAG_NAME,
              GIT_COMMIT, GIT_PREVIOUS_SUCCESSFUL_COMMIT (the range since the last green build),
              CHANGE_ID/CHANGE_TARGET (pull requests)
============  ==================================================================================

Outside CI the branch comes from git.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

#: Triggers for which the pushed range is meaningless (nothing was pushed).
MANUAL = "manual"
SCHEDULE = "schedule"
PUSH = "push"
PULL_REQUEST = "pull_request"
TAG = "tag"


@dataclass
class CIContext:
    """Plain data; ``None`` where the provider does not say."""

    provider: str | None = None  # github, gitlab, circleci, bitbucket, azure, jenkins; None: not CI
    branch: str | None = None  # the branch built (the source branch of a pull request)
    commit: str | None = None
    before: str | None = None  # the commit before the push (may be all zeros: a new branch)
    event: str | None = None  # push, pull_request, manual, schedule, tag; None: unknown
    target_branch: str | None = None  # the destination of a pull request

    def to_dict(self) -> dict:
        return asdict(self)


def _strip_heads(ref: str | None) -> str | None:
    if not ref:
        return None
    for prefix in ("refs/heads/", "origin/", "refs/remotes/origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _github(env: Mapping[str, str]) -> CIContext:
    name = env.get("GITHUB_EVENT_NAME", "")
    ctx = CIContext("github", commit=env.get("GITHUB_SHA") or None)
    if name in ("pull_request", "pull_request_target"):
        ctx.event, ctx.branch, ctx.target_branch = (PULL_REQUEST, env.get("GITHUB_HEAD_REF"),
                                                    env.get("GITHUB_BASE_REF"))
        return ctx
    if env.get("GITHUB_REF_TYPE") == "tag" or env.get("GITHUB_REF", "").startswith("refs/tags/"):
        ctx.event = TAG
        return ctx
    ctx.branch = env.get("GITHUB_REF_NAME") or _strip_heads(env.get("GITHUB_REF"))
    ctx.event = {"push": PUSH, "workflow_dispatch": MANUAL, "repository_dispatch": MANUAL,
                 "schedule": SCHEDULE}.get(name, name or None)
    if name == "push" and env.get("GITHUB_EVENT_PATH"):
        try:
            payload = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            payload = {}
        ctx.before = payload.get("before") or None
        ctx.commit = payload.get("after") or ctx.commit
    return ctx


def _gitlab(env: Mapping[str, str]) -> CIContext:
    source = env.get("CI_PIPELINE_SOURCE", "")
    ctx = CIContext("gitlab", commit=env.get("CI_COMMIT_SHA") or None)
    if source == "merge_request_event" or env.get("CI_MERGE_REQUEST_IID"):
        ctx.event = PULL_REQUEST
        ctx.branch = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
        ctx.target_branch = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
        return ctx
    if env.get("CI_COMMIT_TAG"):
        ctx.event = TAG
        return ctx
    ctx.branch = env.get("CI_COMMIT_BRANCH") or env.get("CI_COMMIT_REF_NAME")
    ctx.event = {"push": PUSH, "web": MANUAL, "api": MANUAL, "trigger": MANUAL, "pipeline": MANUAL,
                 "chat": MANUAL, "schedule": SCHEDULE}.get(source, source or None)
    if ctx.event == PUSH:
        ctx.before = env.get("CI_COMMIT_BEFORE_SHA") or None
    return ctx


def _circleci(env: Mapping[str, str]) -> CIContext:
    ctx = CIContext("circleci", commit=env.get("CIRCLE_SHA1") or None)
    if env.get("CIRCLE_TAG"):
        ctx.event = TAG
        return ctx
    ctx.branch = env.get("CIRCLE_BRANCH") or None
    # CircleCI builds the branch on push; CIRCLE_PULL_REQUEST is set when the branch has an open PR,
    # which does not make the build a PR build (it is still the pushed branch).
    ctx.event = PUSH if ctx.branch else None
    return ctx


def _bitbucket(env: Mapping[str, str]) -> CIContext:
    ctx = CIContext("bitbucket", commit=env.get("BITBUCKET_COMMIT") or None)
    if env.get("BITBUCKET_PR_ID"):
        ctx.event = PULL_REQUEST
        ctx.branch = env.get("BITBUCKET_BRANCH")
        ctx.target_branch = env.get("BITBUCKET_PR_DESTINATION_BRANCH")
        return ctx
    if env.get("BITBUCKET_TAG"):
        ctx.event = TAG
        return ctx
    ctx.branch = env.get("BITBUCKET_BRANCH") or None
    ctx.event = PUSH if ctx.branch else None
    return ctx


def _azure(env: Mapping[str, str]) -> CIContext:
    reason = env.get("BUILD_REASON", "")
    ctx = CIContext("azure", commit=env.get("BUILD_SOURCEVERSION") or None)
    if reason == "PullRequest":
        ctx.event = PULL_REQUEST
        ctx.branch = _strip_heads(env.get("SYSTEM_PULLREQUEST_SOURCEBRANCH"))
        ctx.target_branch = _strip_heads(env.get("SYSTEM_PULLREQUEST_TARGETBRANCH"))
        return ctx
    ref = env.get("BUILD_SOURCEBRANCH", "")
    if ref.startswith("refs/tags/"):
        ctx.event = TAG
        return ctx
    # BUILD_SOURCEBRANCHNAME is only the last path segment ("feature/x" -> "x"): use the full ref.
    ctx.branch = _strip_heads(ref) if ref.startswith("refs/heads/") else (ref or None)
    ctx.event = {"IndividualCI": PUSH, "BatchedCI": PUSH, "Manual": MANUAL,
                 "Schedule": SCHEDULE}.get(reason, reason or None)
    return ctx


def _jenkins(env: Mapping[str, str]) -> CIContext:
    ctx = CIContext("jenkins", commit=env.get("GIT_COMMIT") or None)
    if env.get("CHANGE_ID"):
        ctx.event = PULL_REQUEST
        ctx.branch = env.get("CHANGE_BRANCH") or env.get("BRANCH_NAME")
        ctx.target_branch = env.get("CHANGE_TARGET")
        return ctx
    if env.get("TAG_NAME"):
        ctx.event = TAG
        return ctx
    ctx.branch = env.get("BRANCH_NAME") or _strip_heads(env.get("GIT_BRANCH"))
    ctx.event = PUSH if ctx.branch else None
    ctx.before = env.get("GIT_PREVIOUS_SUCCESSFUL_COMMIT") or None
    return ctx


_DETECT = (
    ("GITHUB_ACTIONS", _github),
    ("GITLAB_CI", _gitlab),
    ("CIRCLECI", _circleci),
    ("BITBUCKET_BUILD_NUMBER", _bitbucket),
    ("TF_BUILD", _azure),
    ("JENKINS_URL", _jenkins),
)


def detect(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> CIContext:
    """The CI context from ``env`` (``os.environ``); outside CI, the branch and commit from git."""
    env = os.environ if env is None else env
    for variable, reader in _DETECT:
        if env.get(variable):
            ctx = reader(env)
            break
    else:
        ctx = CIContext()
    if ctx.provider is None or (ctx.branch is None and ctx.event not in (TAG, PULL_REQUEST)):
        if ctx.branch is None and ctx.event != TAG:
            ctx.branch = git_branch(cwd)
    if ctx.commit is None:
        ctx.commit = git(["rev-parse", "HEAD"], cwd)
    return ctx


def git(args: list[str], cwd: Path | None) -> str | None:
    """Output of ``git args`` (stripped), None when it fails."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_branch(cwd: Path | None) -> str | None:
    name = git(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd)
    return name or None  # detached HEAD: no branch


def is_null_sha(sha: str | None) -> bool:
    return bool(sha) and re.fullmatch(r"0+", sha) is not None
