"""Run the suite without deploy credentials, then deploy to Astro, a bucket or a command if it passed.

The target comes from [tool.pytest-astro.deploy.branches] in pyproject.toml (branch -> Deployment id,
bucket or command) for the branch the CI is building; --deployment-id, --bucket or --command override
it. The deploy type (DAG-only or image) follows what changed in the pushed range unless forced.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("target (default: the branch's entry in pyproject.toml)")
    where.add_argument("--deployment-id", metavar="ID", help="deploy to this Astro Deployment, whatever the branch")
    where.add_argument("--bucket", metavar="URL", help="sync the DAG folder to s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
    where.add_argument("--command", metavar="CMD",
                       help="run CMD (in a shell) to deploy; it gets PYTEST_ASTRO_DEPLOY_TYPE, _BRANCH, _COMMIT")
    where.add_argument("--branch", help="the branch to resolve the target for (default: from the CI, else git)")
    where.add_argument("--fail-on-unmapped-branch", dest="fail_unmapped", action="store_true",
                       help="exit 1 when the branch has no target (default: say so, deploy nothing, exit 0)")
    kind = parser.add_argument_group("deploy type (default: auto, from the changed files)")
    forced = kind.add_mutually_exclusive_group()
    forced.add_argument("--dags", dest="type", action="store_const", const="dags", help="force a DAG-only deploy")
    forced.add_argument("--image", dest="type", action="store_const", const="image",
                        help="force an image deploy (image and DAGs)")
    forced.add_argument("--type", dest="type", choices=("auto", "dags", "image", "image-only"),
                        help="image-only: `astro deploy --image`, for a project whose DAGs deploy from another repo")
    kind.add_argument("--base", metavar="REV", help="judge the changes since REV (default: the CI's pushed range)")
    parser.add_argument("--suite-args", metavar="ARGS", default="",
                        help="more arguments for the suite, one shell-quoted string (e.g. \"tests -x\")")
    parser.add_argument("--description", help="the deploy's description (default: short SHA and commit subject)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; run and deploy nothing")
    parser.add_argument("--record", metavar="PATH", help="audit record file (default: pytest-astro-deploy.json)")
    parser.add_argument("--project", metavar="DIR", type=Path, default=Path.cwd(),
                        help="the Astro project (default: the current directory)")


def run(args: argparse.Namespace) -> int:
    from pytest_astro.deploy.gate import GateOptions, run_gate

    opts = GateOptions(project=args.project, deployment_id=args.deployment_id, bucket=args.bucket,
                       command=args.command, type=args.type, base=args.base, branch=args.branch,
                       suite_args=shlex.split(args.suite_args or ""), dry_run=args.dry_run, record=args.record,
                       fail_unmapped=args.fail_unmapped, description=args.description)
    return run_gate(opts)
