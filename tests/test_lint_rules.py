"""Every lint rule's own VALID/INVALID examples (the rules document and test themselves)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_astro.lint.core import FileContext, Invalid, Rule, Valid
from pytest_astro.lint.runner import cannot_report, lint_source
from pytest_astro.lint.rules import ALL_RULES


def _ctx(path: str, target: int | None = 3) -> FileContext:
    return FileContext(path=path, relpath=path, in_dags_folder=path.startswith("dags/"), target_airflow=target)


@pytest.fixture(autouse=True)
def _rule_files(request, tmp_path, monkeypatch) -> None:
    """Run each example in an empty folder holding the rule's FILES next to its DAG file."""
    monkeypatch.chdir(tmp_path)
    rule = request.node.callspec.params.get("rule") if hasattr(request.node, "callspec") else None
    example = request.node.callspec.params.get("example") if hasattr(request.node, "callspec") else None
    if rule is not None and example is not None:
        folder = tmp_path / Path(example.path).parent
        for name, text in rule.FILES.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)


def _cases(kind: str):
    for rule in ALL_RULES:
        for i, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{rule.CODE}-{kind.lower()}-{i}")


@pytest.mark.parametrize(("rule", "example"), list(_cases("VALID")))
def test_valid(rule: type[Rule], example: Valid) -> None:
    result = lint_source(example.code, _ctx(example.path, example.target_airflow), [rule])
    assert [f.text() for f in result.findings] == []


@pytest.mark.parametrize(("rule", "example"), list(_cases("INVALID")))
def test_invalid(rule: type[Rule], example: Invalid) -> None:
    ctx = _ctx(example.path, example.target_airflow)
    result = lint_source(example.code, ctx, [rule])
    assert result.findings, f"{rule.CODE} did not report:\n{example.code}"
    assert {f.code for f in result.findings} == {rule.CODE}
    if example.line is not None:
        assert result.findings[0].line == example.line
    fixed = lint_source(example.code, ctx, [rule], fix=True)
    unsafe = lint_source(example.code, ctx, [rule], fix=True, unsafe_fixes=True)
    if example.expected_fix is None:
        assert not any(f.fixable or f.unsafe_fix for f in result.findings), "an unexpected fix is offered"
        assert fixed.source == unsafe.source == example.code
    elif example.unsafe_fix:
        # Plain --fix leaves it alone; --unsafe-fixes applies it.
        assert fixed.source == example.code and any(f.unsafe_fix for f in result.findings)
        assert unsafe.source == example.expected_fix
        assert not any(f.fixable for f in unsafe.findings)
    else:
        assert fixed.source == example.expected_fix
        # The fix is complete: nothing fixable of this rule is left.
        assert not any(f.fixable for f in fixed.findings)
    if example.expected_fix is not None:
        compile(example.expected_fix, example.path, "exec")  # the fixed file still parses


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.CODE)
def test_prefilter_never_skips_a_finding(rule: type[Rule]) -> None:
    """On every example of every rule, this rule alone finds the same with and without the prefilter
    (which skips libcst when no selected rule can report on the file), and skips some files."""
    skipped = 0
    for other in ALL_RULES:
        for example in [*other.VALID, *other.INVALID]:
            ctx = _ctx(example.path, example.target_airflow)
            for name, text in other.FILES.items():  # AST306 reads its template files
                (Path(example.path).parent / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(example.path).parent / name).write_text(text)
            full = lint_source(example.code, ctx, [rule], prefilter=False)
            fast = lint_source(example.code, ctx, [rule])
            assert [f.text() for f in fast.findings] == [f.text() for f in full.findings], example.code
            skipped += not full.findings and cannot_report(example.code, ctx, [rule])
    assert skipped, "the prefilter never skipped a file for this rule"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.CODE)
def test_rule_is_documented(rule: type[Rule]) -> None:
    assert re.fullmatch(r"AST\d{3}", rule.CODE)
    assert re.fullmatch(r"[a-z0-9-]+", rule.NAME)
    assert rule.MESSAGE and rule.__doc__ and len(rule.__doc__.strip()) > 80
    assert rule.VALID and rule.INVALID


def test_codes_are_unique_and_names_too() -> None:
    assert len({r.CODE for r in ALL_RULES}) == len(ALL_RULES)
    assert len({r.NAME for r in ALL_RULES}) == len(ALL_RULES)
