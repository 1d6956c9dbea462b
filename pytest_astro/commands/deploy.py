"""Run the suite without deploy credentials, then deploy to Astro, a bucket or a command if it
passed.

  pytest-astro deploy check   no credential: run the suite, write the plan (files and their hashes)
  pytest-astro deploy apply   with the token: verify the tree against the plan, deploy, confirm,
  wait
  pytest-astro deploy         both in one process (local use)

In CI run check and apply as two steps, the token only in the apply step's environment. The target
comes from [tool.pytest-astro.deploy.branches] in pyproject.toml (branch -> Deployment id, bucket or
command) for the branch the CI is building; --deployment-id, --bucket or --command override it. The
deploy type (DAG-only or image) follows what changed in the pushed range unless forced.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("phase", nargs="?", choices=("check", "apply"),
                        help="check: no token, writes the plan; apply: with the token, deploys "
                             "the plan (default: both)")
    where = parser.add_argument_group("target (default: the branch's entry in pyproject.toml)")
    where.add_argument("--deployment-id", metavar="ID", help="deploy to this Astro Deployment, "
                                                             "whatever the branch")
    where.add_argument("--bucket", metavar="URL", help="sync the DAG folder to s3://BUCKET/PREFIX "
                                                       "or gs://BUCKET/PREFIX")
    where.add_argument("--command", metavar="CMD",
                       help="run CMD (in a shell) to deploy; it gets PYTEST_ASTRO_DEPLOY_TYPE, "
                            "_BRANCH, _COMMIT")
    where.add_argument("--branch", help="the branch to resolve the target for (default: from the "
                                        "CI, else git)")
    where.add_argument("--fail-on-unmapped-branch", dest="fail_unmapped", action="store_true",
                       help="exit 1 when the branch has no target (default: say so, deploy "
                            "nothing, exit 0)")
    kind = parser.add_argument_group("deploy type (default: auto, from the changed files)")
    forced = kind.add_mutually_exclusive_group()
    forced.add_argument("--dags", dest="type", action="store_const", const="dags",
                        help="force a DAG-only deploy")
    forced.add_argument("--image", dest="type", action="store_const", const="image",
                        help="force an image deploy (image and DAGs)")
    forced.add_argument("--type", dest="type", choices=("auto", "dags", "image", "image-only"),
                        help="image-only: `astro deploy --image`, for a project whose DAGs deploy "
                             "from another repo")
    kind.add_argument("--base", metavar="REV", help="judge the changes since REV (default: the "
                                                    "CI's pushed range)")
    parser.add_argument("--suite-args", metavar="ARGS", default="",
                        help="more arguments for the suite, one shell-quoted string (e.g. \"tests "
                             "-x\")")
    parser.add_argument("--description", help="the deploy's description (default: short SHA and "
                                              "commit subject)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan; run and deploy nothing")
    parser.add_argument("--record", metavar="PATH", help="audit record file (default: "
                                                         "pytest-astro-deploy.json)")
    parser.add_argument("--plan", metavar="PATH", help="the plan check writes and apply reads "
                                                       "(default: pytest-astro-plan.json)")
    wait = parser.add_mutually_exclusive_group()
    wait.add_argument("--wait-time", metavar="TIME",
                      help="how long `astro deploy --wait` waits for the Deployment to become "
                           "healthy (seconds, or 10m / 1h30m; default 300 s, or wait-time in "
                           "pyproject)")
    wait.add_argument("--no-wait", dest="wait", action="store_false", default=None,
                      help="do not pass --wait: the deploy counts once the CLI has finalized it")
    parser.add_argument("--allow-bucket-root", action="store_true",
                        help="let a bucket target without a prefix manage (and delete from) the "
                             "whole bucket")
    parser.add_argument("--reports", metavar="REPORT", nargs="+", default=[],
                        help="check only: judge these `pytest --astro-report` files (one per "
                             "shard) instead of running the suite")
    parser.add_argument("--project", metavar="DIR", type=Path, default=Path.cwd(),
                        help="the Astro project (default: the current directory)")


def run(args: argparse.Namespace) -> int:
    from pytest_astro.config import ConfigError
    from pytest_astro.deploy import gate
    from pytest_astro.deploy.settings import wait_seconds
    # on stdout, as the gate's whole log: one stream keeps its order
    from pytest_astro.user_errors import fail

    try:
        suite_args = shlex.split(args.suite_args or "")
        seconds = wait_seconds(args.wait_time, "--wait-time") if args.wait_time else None
    except ValueError as exc:
        return fail(f"--suite-args: {exc} in "
                    f"{args.suite_args!r}", fix="balance the quotes", stream=sys.stdout)
    except ConfigError as exc:
        return fail(exc, stream=sys.stdout)
    if args.reports and args.phase != "check":
        return fail("--reports is for `pytest-astro deploy check` (the shards ran the suite)",
                    fix="pass it to the check phase", stream=sys.stdout)
    opts = gate.GateOptions(project=args.project, deployment_id=args.deployment_id,
                            bucket=args.bucket,
                            command=args.command, type=args.type, base=args.base,
                            branch=args.branch,
                            suite_args=suite_args, dry_run=args.dry_run, record=args.record,
                            fail_unmapped=args.fail_unmapped, description=args.description,
                            plan=args.plan,
                            wait=True if seconds else args.wait, wait_seconds=seconds,
                            allow_bucket_root=args.allow_bucket_root, reports=args.reports)
    phase = {"check": gate.run_check, "apply": gate.run_apply}.get(args.phase, gate.run_gate)
    return phase(opts)
