"""Render docs/lint-rules.md from the rule classes: `python -m pytest_astro.lint.docs > docs/lint-rules.md`.

The rules are the single source: docstring (what, why, fix), examples (the same ones the test
suite runs), code and name.
"""

from __future__ import annotations

import sys

from pytest_astro.lint.rules import ALL_RULES

HEADER = """# Lint rules

`pytest-astro lint` (and the `astro-dag-lint` pre-commit hook) checks DAG, `include/` and
`plugins/` source without running it. Codes are stable; select and ignore them by code or prefix
(`--select AST0`, `ignore = ["AST006"]` in `[tool.pytest-astro.lint]`) and suppress one line with
`# noqa: AST001`. `--fix` applies the *safe* fixes (exact rewrites: the same object from its new
import path, a renamed argument); `--fix --unsafe-fixes` also applies the *unsafe* ones, which may
change behaviour (a template's `execution_date` becomes `logical_date`, which is None for manual
runs on Airflow 3): review them.

**Which rules run.** The parse-time rules (AST00x, AST101, AST203) look only at code that runs when
Airflow parses a DAG file: DAG files in the dags folder (Airflow's "might contain a DAG" heuristic,
minus `.airflowignore`), and the project modules they import at parse time (at module level or in a
`@dag` function body; an import inside a `@task` runs when the task runs). The AST3xx rules
(Airflow 3 migration) run when the project targets Airflow 3: the Dockerfile's `FROM` image is
Astro Runtime 3.x (or `apache/airflow:3.*`), `target-airflow = 3` in `[tool.pytest-astro.lint]`, or
`--target-airflow 3`. **The target version wins over a selection**: `--select AST`, `--select AST3`
and `--select AST302` all leave them off on an Airflow 2 project; `--target-airflow 3` turns them
on (to prepare a migration). Their fixes write only imports that Airflow 3 has (core, the Task SDK
and the providers it requires: standard, common-sql, common-io, common-compat, smtp), and never
touch a version-fallback branch (`try: from airflow.sdk import dag` / `except ImportError: ...`,
`if AIRFLOW_V_3_0_PLUS:`), which no AST3 rule reports.

*This file is generated from the rule classes (`python -m pytest_astro.lint.docs`); edit the
rules, not this file.*

| Code | Name | What | Fix |
|------|------|------|-----|
| AST000 | syntax-error | The file cannot be parsed (syntax error, not UTF-8); no other rule runs on it | |
"""


def _block(code: str) -> str:
    return "```python\n" + code.rstrip("\n") + "\n```\n"


def _files(doc: dict, code: str) -> str:
    """The example project's other files that ``code`` names (template files), shown after it."""
    shown = [f"with `{name}` next to it:\n\n```jinja\n{text.rstrip()}\n```\n\n"
             for name, text in doc["files"].items() if f"'{name}'" in code or f'"{name}"' in code]
    return "".join(shown)


def render_docs() -> str:
    out = [HEADER]
    for rule in ALL_RULES:
        doc = rule.doc()
        flag = " (Airflow 3)" if rule.AIRFLOW3 else ""
        out.append(f"| [{rule.CODE}](#{rule.CODE.lower()}) | {rule.NAME}{flag} | {rule.MESSAGE} | {doc['fix']} |\n")
    for rule in ALL_RULES:
        doc = rule.doc()
        fix = {"safe": " · fix: safe (`--fix`)", "unsafe": " · fix: unsafe (`--fix --unsafe-fixes`)"}.get(doc["fix"], "")
        out.append(f"\n## {rule.CODE}\n\n**{rule.NAME}**" + (" (runs on Airflow 3 projects)" if rule.AIRFLOW3 else "")
                   + fix + "\n\n")
        out.append("### What it does\n\n" + doc["what"] + "\n\n")
        if doc["why"]:
            out.append("### Why is this bad?\n\n" + doc["why"] + "\n\n")
        where = f" (`{doc['example_path']}`)" if doc["example_path"] != "dags/example.py" else ""
        out.append(f"### Example{where}\n\n" + _block(doc["example"]) + "\n" + _files(doc, doc["example"]))
        files = _files(doc, doc["use_instead"])
        out.append("### Use instead\n\n" + _block(doc["use_instead"]) + ("\n" + files.rstrip("\n") + "\n" if files else ""))
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(render_docs())
