"""Branch, commit, pushed range and trigger from each CI provider's own variables."""

from __future__ import annotations

import json

import pytest

from pytest_astro.deploy import ci_env
from pytest_astro.deploy.ci_env import MANUAL, PULL_REQUEST, PUSH, SCHEDULE, TAG
from pytest_astro.deploy.mask import Masker, scrubbed_environment

SHA, BEFORE = "a" * 40, "b" * 40


def github(tmp_path, event: str, payload: dict | None = None, **env) -> dict:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload or {}))
    return {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_SHA": SHA,
            "GITHUB_EVENT_PATH": str(path), **env}


CASES = {
    "github push": (lambda t: github(t, "push", {"before": BEFORE, "after": SHA}, GITHUB_REF="refs/heads/feature/a",
                                     GITHUB_REF_NAME="feature/a", GITHUB_REF_TYPE="branch"),
                    ("github", "feature/a", SHA, BEFORE, PUSH, None)),
    "github pull request": (lambda t: github(t, "pull_request", GITHUB_HEAD_REF="feature/a", GITHUB_BASE_REF="main",
                                             GITHUB_REF_NAME="12/merge"),
                            ("github", "feature/a", SHA, None, PULL_REQUEST, "main")),
    "github manual": (lambda t: github(t, "workflow_dispatch", GITHUB_REF_NAME="main", GITHUB_REF_TYPE="branch"),
                      ("github", "main", SHA, None, MANUAL, None)),
    "github tag": (lambda t: github(t, "push", {"before": BEFORE}, GITHUB_REF="refs/tags/v1", GITHUB_REF_NAME="v1",
                                    GITHUB_REF_TYPE="tag"),
                   ("github", None, SHA, None, TAG, None)),
    "gitlab push": (lambda t: {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "dev",
                               "CI_COMMIT_REF_NAME": "dev", "CI_COMMIT_SHA": SHA, "CI_COMMIT_BEFORE_SHA": BEFORE},
                    ("gitlab", "dev", SHA, BEFORE, PUSH, None)),
    "gitlab new branch": (lambda t: {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "dev",
                                     "CI_COMMIT_SHA": SHA, "CI_COMMIT_BEFORE_SHA": "0" * 40},
                          ("gitlab", "dev", SHA, "0" * 40, PUSH, None)),
    "gitlab merge request": (lambda t: {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event",
                                        "CI_MERGE_REQUEST_IID": "4", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feat",
                                        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main", "CI_COMMIT_SHA": SHA,
                                        "CI_COMMIT_BEFORE_SHA": "0" * 40},
                             ("gitlab", "feat", SHA, None, PULL_REQUEST, "main")),
    "gitlab schedule": (lambda t: {"GITLAB_CI": "true", "CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main",
                                   "CI_COMMIT_SHA": SHA, "CI_COMMIT_BEFORE_SHA": BEFORE},
                        ("gitlab", "main", SHA, None, SCHEDULE, None)),
    "circleci": (lambda t: {"CIRCLECI": "true", "CIRCLE_BRANCH": "main", "CIRCLE_SHA1": SHA,
                            "CIRCLE_PULL_REQUEST": "https://github.com/o/r/pull/3"},
                 ("circleci", "main", SHA, None, PUSH, None)),
    "circleci tag": (lambda t: {"CIRCLECI": "true", "CIRCLE_TAG": "v1", "CIRCLE_SHA1": SHA},
                     ("circleci", None, SHA, None, TAG, None)),
    "bitbucket": (lambda t: {"CI": "true", "BITBUCKET_BUILD_NUMBER": "9", "BITBUCKET_BRANCH": "release/1",
                             "BITBUCKET_COMMIT": SHA},
                  ("bitbucket", "release/1", SHA, None, PUSH, None)),
    "bitbucket pull request": (lambda t: {"BITBUCKET_BUILD_NUMBER": "9", "BITBUCKET_BRANCH": "feat",
                                          "BITBUCKET_COMMIT": SHA, "BITBUCKET_PR_ID": "5",
                                          "BITBUCKET_PR_DESTINATION_BRANCH": "dev"},
                               ("bitbucket", "feat", SHA, None, PULL_REQUEST, "dev")),
    "azure push": (lambda t: {"TF_BUILD": "True", "BUILD_REASON": "IndividualCI",
                              "BUILD_SOURCEBRANCH": "refs/heads/feature/x", "BUILD_SOURCEBRANCHNAME": "x",
                              "BUILD_SOURCEVERSION": SHA},
                   ("azure", "feature/x", SHA, None, PUSH, None)),
    "azure pull request": (lambda t: {"TF_BUILD": "True", "BUILD_REASON": "PullRequest",
                                      "BUILD_SOURCEBRANCH": "refs/pull/7/merge", "BUILD_SOURCEVERSION": SHA,
                                      "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feat",
                                      "SYSTEM_PULLREQUEST_TARGETBRANCH": "refs/heads/main"},
                           ("azure", "feat", SHA, None, PULL_REQUEST, "main")),
    "azure manual": (lambda t: {"TF_BUILD": "True", "BUILD_REASON": "Manual", "BUILD_SOURCEBRANCH": "refs/heads/main",
                                "BUILD_SOURCEVERSION": SHA},
                     ("azure", "main", SHA, None, MANUAL, None)),
    "jenkins multibranch": (lambda t: {"JENKINS_URL": "http://j/", "BRANCH_NAME": "dev", "GIT_COMMIT": SHA,
                                       "GIT_PREVIOUS_SUCCESSFUL_COMMIT": BEFORE},
                            ("jenkins", "dev", SHA, BEFORE, PUSH, None)),
    "jenkins git plugin": (lambda t: {"JENKINS_URL": "http://j/", "GIT_BRANCH": "origin/main", "GIT_COMMIT": SHA},
                           ("jenkins", "main", SHA, None, PUSH, None)),
    "jenkins pull request": (lambda t: {"JENKINS_URL": "http://j/", "BRANCH_NAME": "PR-3", "CHANGE_ID": "3",
                                        "CHANGE_BRANCH": "feat", "CHANGE_TARGET": "main", "GIT_COMMIT": SHA},
                             ("jenkins", "feat", SHA, None, PULL_REQUEST, "main")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_provider(tmp_path, case):
    make_env, expected = CASES[case]
    ctx = ci_env.detect(make_env(tmp_path), cwd=tmp_path)
    assert (ctx.provider, ctx.branch, ctx.commit, ctx.before, ctx.event, ctx.target_branch) == expected


def test_outside_ci_the_branch_comes_from_git(tmp_path):
    try:
        from tests.fake_astro.support import commit_all, git
    except ImportError:  # pragma: no cover
        from fake_astro.support import commit_all, git

    git(tmp_path, "init", "-q")
    git(tmp_path, "checkout", "-q", "-b", "dev")
    sha = commit_all(tmp_path, "one")
    ctx = ci_env.detect({}, cwd=tmp_path)
    assert (ctx.provider, ctx.branch, ctx.commit) == (None, "dev", sha)
    git(tmp_path, "checkout", "-q", "--detach")
    assert ci_env.detect({}, cwd=tmp_path).branch is None


def test_credentials_are_scrubbed_and_masked():
    env = {"ASTRO_API_TOKEN": "tok-1234567890", "AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "aws-secret-xyz",
           "AIRFLOW_CONN_DB": "postgres://u:p@h/db", "PATH": "/bin", "MY_VAULT_TOKEN": "vault-abcdef"}
    assert scrubbed_environment(env, ["MY_*"]) == {"AIRFLOW_CONN_DB": "postgres://u:p@h/db", "PATH": "/bin"}
    mask = Masker.from_environment(env, ["MY_*"])
    text = mask("tok-1234567890 aws-secret-xyz vault-abcdef eu-west-1 Bearer abcdefghijkl eyJa1b2c3.eyJd4e5f6.sig123")
    assert text == "*** *** *** eu-west-1 Bearer *** ***"
