"""Report formats: text (``path:line:col: CODE message``), json, sarif (2.1.0) and github
(workflow commands, which GitHub Actions shows as annotations on the pull request)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pytest_astro import __version__
from pytest_astro.lint.core import SYNTAX_ERROR, Finding
from pytest_astro.lint.rules import ALL_RULES

FORMATS = ("text", "json", "sarif", "github")
DOCS_URL = "https://github.com/pytest-astro/pytest-astro/blob/main/docs/lint-rules.md"


def render(findings: Sequence[Finding], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([f.to_dict() for f in findings], indent=2)
    if fmt == "sarif":
        return json.dumps(sarif(findings), indent=2)
    if fmt == "github":
        return "\n".join(_github(f) for f in findings)
    return "\n".join(f.text() + (" [*]" if f.fixable else "") for f in findings)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(f: Finding) -> str:
    return (f"::error file={_escape_prop(f.path)},line={f.line},col={f.col},title={_escape_prop(f.code)}"
            f"::{_escape_data(f.code + ' ' + f.message)}")


def sarif(findings: Sequence[Finding]) -> dict:
    rules = [{"id": SYNTAX_ERROR, "name": "syntax-error",
              "shortDescription": {"text": "The file cannot be parsed"}}]
    for rule in ALL_RULES:
        rules.append({
            "id": rule.CODE, "name": rule.NAME,
            "shortDescription": {"text": rule.MESSAGE},
            "fullDescription": {"text": rule.summary()},
            "helpUri": f"{DOCS_URL}#{rule.CODE.lower()}",
        })
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = []
    for f in findings:
        region = {"startLine": f.line, "startColumn": f.col}
        if f.end_line:
            region.update(endLine=f.end_line, endColumn=max(f.end_col, 1))
        results.append({
            "ruleId": f.code, "ruleIndex": index.get(f.code, 0), "level": "error",
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": f.path.replace("\\", "/")},
                                                "region": region}}],
        })
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "pytest-astro", "version": __version__,
                                      "informationUri": DOCS_URL, "rules": rules}},
                  "results": results}],
    }
