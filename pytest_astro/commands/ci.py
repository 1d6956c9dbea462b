"""Write CI/CD pipeline templates: the suite on pull requests, the deploy gate on pushes.

    pytest-astro ci init --provider {github,gitlab,circleci,bitbucket,azure,jenkins}
                         [--strategy single|multi] [--branches main,dev] [--dags-repo] [--bucket
                         URL] [--install SPEC] [--index-url URL] [--shards N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pytest_astro import __version__
    from pytest_astro.ci.generate import PROVIDERS

    sub = parser.add_subparsers(dest="ci_command", metavar="COMMAND")
    init = sub.add_parser("init", help="write a pipeline for a CI provider",
                          description="Write a pipeline: the suite on pull requests, the deploy "
                                      "gate on pushes to the environment branches; tokens are CI "
                                      "secrets.")
    init.add_argument("--provider", required=True, choices=sorted(PROVIDERS))
    init.add_argument("--strategy", choices=("single", "multi"), default="single",
                      help="single: main -> one Deployment; multi: one Deployment per environment "
                           "branch")
    init.add_argument("--branches", metavar="A,B", help="environment branches (default: main; "
                                                        "multi: main,dev)")
    init.add_argument("--dags-repo", action="store_true",
                      help="this repository holds only the DAGs: DAG-only deploys (the project "
                           "repo makes image deploys with type = \"image-only\")")
    init.add_argument("--bucket", metavar="URL", help="deploy by syncing the DAG folder to "
                                                      "s3://... or gs://...")
    init.add_argument("--python", default="3.12", help="Python version of the CI jobs (default: "
                                                       "3.12)")
    init.add_argument("--airflow-version", help="Airflow to install in CI (default: the installed "
                                                "one)")
    init.add_argument("--install", metavar="SPEC",
                      help="where the pipeline installs pytest-astro from: a requirement "
                           "('pytest-astro==0.1.0'), a git URL "
                           "('git+https://github.com/ORG/pytest-astro@v0.1.0'), or a wheel's URL "
                           f"or path (default: this version, pytest-astro=={__version__}, from the "
                           "package index)")
    init.add_argument("--index-url", metavar="URL",
                      help="a private package index to install from (it must serve Airflow and "
                           "the project's requirements too, e.g. a proxy of the public index)")
    init.add_argument("--shards", metavar="N", type=int, default=1,
                      help="run the pull-request suite as N parallel jobs, each checking its part "
                           "of the DAG files (`pytest --astro-dags --astro-shard`) with its own "
                           "parse cache: GitHub (a matrix), GitLab (parallel:), CircleCI "
                           "(parallelism), Azure (strategy: parallel)")
    init.add_argument("--output", metavar="PATH", type=Path,
                      help="file to write (default: the provider's usual path); '-' prints it")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    from pytest_astro.ci.generate import PROVIDERS, Options, deploy_snippet, generate
    from pytest_astro.config import ConfigError
    from pytest_astro.deploy.settings import check_bucket_url
    from pytest_astro.project import airflow_version
    from pytest_astro.user_errors import fail

    if args.ci_command != "init":
        print("usage: pytest-astro ci init --provider PROVIDER [...]", file=sys.stderr)
        return 2
    if args.bucket:
        try:
            check_bucket_url(args.bucket, "--bucket")
        except ConfigError as exc:
            return fail(exc)
    if not 1 <= args.shards <= 64:
        return fail(f"--shards {args.shards}: not a number of parallel jobs",
                    fix="give a number from 1 to 64")
    branches = [b.strip() for b in (args.branches or "").split(",") if b.strip()]
    if args.strategy == "single" and len(branches) > 1:
        return fail("--strategy single takes one branch", fix="use --strategy multi")
    opts = Options(provider=args.provider, strategy=args.strategy, branches=branches,
                   dags_repo=args.dags_repo,
                   bucket=args.bucket, python=args.python, install=args.install,
                   index_url=args.index_url,
                   shards=args.shards,
                   airflow=args.airflow_version or airflow_version() or "3.1.3")
    try:
        text = generate(opts)
    except ValueError as exc:
        return fail(exc)
    if str(args.output) == "-":
        sys.stdout.write(text)
        return 0
    path = args.output or Path(PROVIDERS[args.provider][1])
    if path.exists() and not args.force:
        return fail(f"{path} exists", fix="pass --force to overwrite it", status=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    print("\nAdd the environment branches to pyproject.toml:\n")
    print(deploy_snippet(opts))
    return 0
