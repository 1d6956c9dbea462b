"""Report formats: text (``path:line:col: CODE message``), json, sarif (2.1.0), github
(workflow commands, which GitHub Actions shows as annotations on the pull request) and gitlab
(Code Quality). sarif, github and gitlab are written by pytest_astro/ci_reports.py, shared with
``pytest --astro-dags`` and ``pytest-astro parse``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pytest_astro import ci_reports
from pytest_astro.lint.core import SYNTAX_ERROR, Finding
from pytest_astro.lint.rules import ALL_RULES

FORMATS = ("text", "json", "sarif", "github", "gitlab")
DOCS_URL = "https://github.com/pytest-astro/pytest-astro/blob/main/docs/lint-rules.md"


def render(findings: Sequence[Finding], fmt: str, base: Path | None = None) -> str:
    """``findings`` (paths relative to ``base``, default the current folder) in format ``fmt``."""
    if fmt == "json":
        return json.dumps([f.to_dict() for f in findings], indent=2)
    if fmt == "sarif":
        return json.dumps(sarif(findings, base), indent=2)
    if fmt in ("github", "gitlab"):
        return ci_reports.render(problems(findings), fmt, base or Path.cwd())
    return "\n".join(f.text() + (" [*]" if f.fixable else "") for f in findings)


def problems(findings: Sequence[Finding]) -> list[ci_reports.Problem]:
    """Findings as the shared report writers' problems."""
    return [ci_reports.Problem(path=f.path, line=f.line, col=f.col, end_line=f.end_line or None,
                               end_col=f.end_col or None, rule=f.code, title=f.code,
                               message=f"{f.code} {f.message}", failure_class="lint") for f in findings]


def sarif_rules() -> list[dict]:
    rules = [{"id": SYNTAX_ERROR, "name": "syntax-error",
              "shortDescription": {"text": "The file cannot be parsed"}}]
    for rule in ALL_RULES:
        rules.append({
            "id": rule.CODE, "name": rule.NAME,
            "shortDescription": {"text": rule.MESSAGE},
            "fullDescription": {"text": rule.summary()},
            "helpUri": f"{DOCS_URL}#{rule.CODE.lower()}",
        })
    return rules


def sarif(findings: Sequence[Finding], base: Path | None = None) -> dict:
    """SARIF 2.1.0 with every lint rule in the rules table (the shared writer in ci_reports.py)."""
    return ci_reports.sarif(problems(findings), base or Path.cwd(), rules=sarif_rules(), information_uri=DOCS_URL)
