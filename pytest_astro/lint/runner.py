"""Running rules on one file's source: parse it (unless no selected rule can report on it), walk it
once, turn the rules' reports into findings (positions, ``# noqa``), and apply the fixes.
Positions are computed only for files that have findings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_astro.lint.core import SYNTAX_ERROR, FileContext, Finding, Rule, cst
from pytest_astro.lint.prefilter import SourceFacts
from pytest_astro.lint.walker import Walker

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)


def noqa_codes(line: str) -> set[str] | None:
    """Codes a ``# noqa`` comment on ``line`` suppresses: None (none), {"*"} (a bare noqa) or the set."""
    if "noqa" not in line.lower():
        return None
    m = _NOQA.search(line)
    if not m:
        return None
    if not m.group("codes"):
        return {"*"}
    return {c.upper() for c in re.split(r"[\s,]+", m.group("codes").strip()) if c}


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    source: str = ""  # the (fixed) source
    fixes_applied: int = 0


def _syntax_error(ctx: FileContext, source: str, exc: Exception) -> Finding:
    # Python's own parser gives the messages users know ("'(' was never closed") and exact lines.
    try:
        compile(source, ctx.path, "exec", dont_inherit=True, flags=0x400)  # PyCF_ONLY_AST
    except SyntaxError as err:
        return Finding(ctx.path, err.lineno or 1, err.offset or 1, SYNTAX_ERROR,
                       f"syntax error: {err.msg}; fix it (no other rule ran on this file)")
    except (ValueError, RecursionError, MemoryError) as err:
        return Finding(ctx.path, 1, 1, SYNTAX_ERROR, f"cannot parse the file: {err}")
    line = getattr(exc, "raw_line", None) or 1
    col = (getattr(exc, "raw_column", None) or 0) + 1
    message = (str(getattr(exc, "message", "") or exc).strip().splitlines() or ["?"])[0]
    return Finding(ctx.path, line, col, SYNTAX_ERROR,
                   f"libcst cannot parse this file ({message}); no rule ran on it")


def _positions(module: cst.Module) -> Any:
    """node -> CodeRange. One code-generation pass; MetadataWrapper would add a full extra visit."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    provider = PositionProvider()
    try:
        provider._gen_impl(module)
        return provider._computed
    except AttributeError:  # pragma: no cover - libcst internals changed: take the public road
        return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


def applicable(rule_classes: Sequence[type[Rule]], ctx: FileContext) -> list[type[Rule]]:
    """The rules that run on this file: the Airflow 3 rules' advice is only true of a project that
    runs Airflow 3."""
    return [cls for cls in rule_classes if ctx.target_airflow == 3 or not cls.AIRFLOW3]


def cannot_report(source: str, ctx: FileContext, rule_classes: Sequence[type[Rule]]) -> bool:
    """True when no rule can report anything on ``source`` (:meth:`Rule.may_report`) and Python parses
    it: the file needs no libcst parse. False when in doubt."""
    facts = SourceFacts(source)
    try:
        if any(cls.may_report(facts, ctx) for cls in applicable(rule_classes, ctx)):
            return False
        facts.tree  # a file Python cannot parse gets its AST000 from the libcst path
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _run_rules(module: cst.Module, source_lines: list[str], ctx: FileContext, rule_classes: Sequence[type[Rule]],
               unsafe_fixes: bool = False) -> tuple[list[Finding], dict[int, cst.CSTNode]]:
    """Findings plus the fixes (id(node) -> replacement) of the unsuppressed findings."""
    walker = Walker(module)
    rules = [cls(ctx, walker) for cls in applicable(rule_classes, ctx)]
    for rule in rules:
        rule.check_file()
        walker.add(rule)
    walker.run()
    for rule in rules:
        rule.finish()
    reports = [r for rule in rules for r in rule.reports]
    if not reports:
        return [], {}
    positions = None
    if any(r.node is not None for r in reports):
        positions = _positions(module)
    findings: list[Finding] = []
    fixes: dict[int, tuple[cst.CSTNode, cst.CSTNode]] = {}
    for r in reports:
        if r.node is not None and positions is not None:
            pos = positions[r.node]
            line, col, end_line, end_col = pos.start.line, pos.start.column + 1, pos.end.line, pos.end.column + 1
        else:
            line, col, end_line, end_col = r.line, 1, r.line, 1
        text = source_lines[line - 1] if 0 < line <= len(source_lines) else ""
        suppressed = noqa_codes(text)
        if suppressed is not None and ("*" in suppressed or r.code in suppressed):
            continue
        has_fix = r.replacement is not None and r.node is not None
        fixable = has_fix and (unsafe_fixes or not r.unsafe)
        findings.append(Finding(ctx.path, line, col, r.code, r.message, fixable, end_line, end_col,
                                unsafe_fix=has_fix and not fixable))
        if fixable:
            fixes[id(r.node)] = (r.node, r.replacement)
    findings.sort(key=lambda f: (f.line, f.col, f.code))
    return findings, fixes


def _replacer(fixes: dict[int, tuple[cst.CSTNode, cst.CSTNode]]) -> Any:
    """A transformer that swaps each fixed node (by identity) for its replacement."""

    class Replace(cst.CSTTransformer):
        applied = 0

        def on_visit(self, node: cst.CSTNode) -> bool:
            fix = fixes.get(id(node))
            return not (fix is not None and fix[0] is node)  # replaced whole in on_leave

        def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode) -> Any:
            fix = fixes.get(id(original))
            if fix is not None and fix[0] is original:
                self.applied += 1
                return fix[1]
            return updated

    return Replace()


def lint_source(source: str, ctx: FileContext, rule_classes: Sequence[type[Rule]],
                fix: bool = False, max_passes: int = 5, unsafe_fixes: bool = False, prefilter: bool = True) -> LintResult:
    """Lint one file's source; with ``fix``, apply the safe fixes (and the unsafe ones with
    ``unsafe_fixes``) repeatedly, until none apply. ``prefilter=False`` parses it with libcst even
    when no rule can report on it (the prefilter's tests compare both)."""
    result = LintResult(source=source)
    if prefilter and cannot_report(source, ctx, rule_classes):
        return result
    for _ in range(max_passes if fix else 1):
        try:
            module = cst.parse_module(result.source)
        except (cst.ParserSyntaxError, SyntaxError, ValueError, RecursionError) as exc:
            result.findings = [_syntax_error(ctx, result.source, exc)]
            return result
        findings, fixes = _run_rules(module, result.source.splitlines(), ctx, rule_classes, unsafe_fixes)
        result.findings = findings
        if not fix or not fixes:
            return result
        transformer = _replacer(fixes)
        new_source = module.visit(transformer).code
        if new_source == result.source or not transformer.applied:
            return result
        result.fixes_applied += transformer.applied
        result.source = new_source
    # Out of passes with fixes still applying: report what is left in the final source.
    module = cst.parse_module(result.source)
    result.findings, _ = _run_rules(module, result.source.splitlines(), ctx, rule_classes, unsafe_fixes)
    return result
