"""The audit record of one gate run (JSON) and the GitHub Actions step summary."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

from pytest_astro import __version__

RECORD_VERSION = 1


def versions(astro_cli: str | None = None) -> dict:
    from pytest_astro.project import airflow_version

    out = {"pytest-astro": __version__, "python": platform.python_version(),
           "airflow": airflow_version()}
    if astro_cli:
        out["astro-cli"] = astro_cli
    return out


def write(record: dict, path: Path, mask: Callable[[str], str]) -> None:
    """Write ``record`` to ``path`` (masked: a credential never reaches a file either)."""
    data = {"version": RECORD_VERSION, **record}
    # mask the values before json.dumps escapes a secret's quotes and backslashes
    if hasattr(mask, "data"):
        data = mask.data(data)
    text = mask(json.dumps(data, indent=2, sort_keys=True, default=str))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _proof(deploy: dict) -> str:
    parts = [f"DAG bundle `{deploy['dag_bundle']}`" if deploy.get("dag_bundle") else "",
             f"image tag `{deploy['image_tag']}`" if deploy.get("image_tag") else "",
             f"Deployment {deploy['state']}" if deploy.get("dag_bundle") or deploy.get("image_tag")
             else ""]
    return ", ".join(p for p in parts if p) or "-"


def step_summary(record: dict, mask: Callable[[str], str], env=os.environ) -> None:
    """Append a table to ``$GITHUB_STEP_SUMMARY`` when running on GitHub Actions."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    tests = (record.get("suite") or {}).get("tests") or {}
    target = record.get("target") or {}
    where = target.get("deployment_id") or target.get("bucket") or target.get("command") or "-"
    rows = [
        ("Outcome", record.get("outcome")),
        ("Reason", record.get("reason") or ""),
        ("Branch", record.get("branch") or "-"),
        ("Commit", f"`{(record.get('commit') or '')[:12]}` {record.get('commit_subject') or ''}"),
        ("Target", f"{target.get('kind', '-')}: `{where}`"),
        ("Deploy type", f"{record.get('deploy_type')} "
                        f"({(record.get('decision') or {}).get('reason', '')})"),
        ("Deploy", _proof(record.get("deploy") or {})),
        ("Tests",
         ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "errors", "skipped"))
         if tests else "not run"),
        ("Duration", f"{record.get('duration_s', 0):.1f} s"),
    ]
    lines = ["### pytest-astro deploy", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(mask("\n".join(lines)) + "\n\n")
