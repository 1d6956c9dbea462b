"""Render docs/lint-rules.md from the rule classes: `python -m pytest_astro.lint.docs > docs/lint-rules.md`.

The rules are the single source: docstring (what, why, fix), examples (the same ones the test
suite runs), code and name.
"""

from __future__ import annotations

import inspect
import sys

from pytest_astro.lint.rules import ALL_RULES

HEADER = """# Lint rules

`pytest-astro lint` (and the `astro-dag-lint` pre-commit hook) checks DAG, `include/` and
`plugins/` source without running it. Codes are stable; select and ignore them by code or prefix
(`--select AST0`, `ignore = ["AST006"]` in `[tool.pytest-astro.lint]`) and suppress one line with
`# noqa: AST001`. Fixes marked *fixable* are applied by `--fix`; they are exact rewrites.

The AST3xx rules (Airflow 3 migration) run when the project targets Airflow 3: the Dockerfile's
`FROM` image is Astro Runtime 3.x (or `apache/airflow:3.*`), or `target-airflow = 3` is set, or
they are selected by code.

*This file is generated from the rule classes (`python -m pytest_astro.lint.docs`); edit the
rules, not this file.*

| Code | Name | What | Fix |
|------|------|------|-----|
| AST000 | syntax-error | The file cannot be parsed (syntax error, not UTF-8); no other rule runs on it | |
"""


def _fixable(rule) -> bool:
    return any(ex.expected_fix is not None for ex in rule.INVALID)


def _block(code: str) -> str:
    return "```python\n" + code.rstrip("\n") + "\n```\n"


def render_docs() -> str:
    out = [HEADER]
    for rule in ALL_RULES:
        flag = " (Airflow 3)" if rule.AIRFLOW3 else ""
        out.append(f"| [{rule.CODE}](#{rule.CODE.lower()}) | {rule.NAME}{flag} | {rule.MESSAGE} | "
                   f"{'yes' if _fixable(rule) else ''} |\n")
    for rule in ALL_RULES:
        out.append(f"\n## {rule.CODE}\n\n**{rule.NAME}**"
                   + (" (runs on Airflow 3 projects)" if rule.AIRFLOW3 else "")
                   + (" · fixable" if _fixable(rule) else "") + "\n\n")
        out.append(inspect.cleandoc(rule.__doc__ or "") + "\n\n")
        bad = next((ex for ex in rule.INVALID if ex.expected_fix is not None), rule.INVALID[0])
        where = f" (`{bad.path}`)" if bad.path != "dags/example.py" else ""
        out.append(f"Reported{where}:\n\n" + _block(bad.code) + "\n")
        if bad.expected_fix is not None:
            out.append("After `--fix`:\n\n" + _block(bad.expected_fix) + "\n")
        good = rule.VALID[0]
        where = f" (`{good.path}`)" if good.path != "dags/example.py" else ""
        out.append(f"Not reported{where}:\n\n" + _block(good.code))
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(render_docs())
