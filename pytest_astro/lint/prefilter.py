"""Cheap facts about one file's source (its words, Python's own ``ast``), from which a rule can tell
that it cannot report anything on the file (:meth:`Rule.may_report`). When no selected rule can,
the file is not parsed with libcst at all, which costs several times more than ``ast``.

The contract: every fact here is a superset of what the libcst rules see. ``words`` holds every
identifier-like word of the source, in code, strings and comments alike; the ``ast`` facts err on
the side of "may". A rule's ``may_report`` must return True whenever its visit methods could report:
a needless True costs time, a wrong False loses a finding. Each rule's INVALID examples run through
the prefilter (the examples test), and a test checks that on every example of every rule the
prefilter never skips a file that has a finding.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable, Iterator
from functools import cached_property

_WORD = re.compile(r"\w+")


class SourceFacts:
    """Facts about one source, each computed on first use."""

    def __init__(self, source: str):
        self.source = source

    @cached_property
    def tree(self) -> ast.Module:
        """Python's ``ast`` of the source (raises SyntaxError, ValueError... when it does not parse)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes: the DAG processor's concern, not the linter's
            return ast.parse(self.source)

    @cached_property
    def words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.source))

    def has_any(self, names: Iterable[str]) -> bool:
        return not self.words.isdisjoint(names)

    @cached_property
    def imports_from(self) -> list[tuple[str, tuple[str, ...]]]:
        """``(module, names)`` of every absolute ``from module import names`` anywhere in the file
        (``("*",)`` for a star import)."""
        return [(node.module, tuple(a.name for a in node.names)) for node in ast.walk(self.tree)
                if isinstance(node, ast.ImportFrom) and not node.level and node.module]

    @cached_property
    def imported_modules(self) -> list[str]:
        """Every module of an ``import a.b`` statement anywhere in the file."""
        return [alias.name for node in ast.walk(self.tree) if isinstance(node, ast.Import) for alias in node.names]

    @cached_property
    def parse_time_import_heads(self) -> set[str]:
        """First component of every module imported by code that runs when the module is imported
        (module level, ``with``/``if``/``try`` blocks, ``@dag`` bodies, DAG factories...)."""
        from pytest_astro.lint.reach import parse_time_imports

        return {imp.module.split(".")[0] for imp in parse_time_imports(self.tree) if not imp.module.startswith(".")}

    @cached_property
    def dag_without_catchup(self) -> bool:
        """Some ``DAG(...)`` call or ``@dag`` decorator has neither ``catchup=`` nor ``**kwargs``."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and _last_name(node.func) == "DAG" and not _has_catchup(node):
                return True
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for deco in node.decorator_list:
                    expr = deco.func if isinstance(deco, ast.Call) else deco
                    if _last_name(expr) == "dag" and not (isinstance(deco, ast.Call) and _has_catchup(deco)):
                        return True
        return False

    @cached_property
    def task_id_may_repeat(self) -> bool:
        """A literal ``task_id="..."`` appears twice, inside a ``for``/``while`` loop, or with a dot
        (``g.x`` is the id of task ``x`` in task group ``g``)."""
        seen: set[str] = set()
        for value, in_loop in _task_id_literals(self.tree):
            if in_loop or value in seen or "." in value:
                return True
            seen.add(value)
        return False


def _last_name(expr: ast.expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return ""


def _has_catchup(call: ast.Call) -> bool:
    return any(kw.arg is None or kw.arg == "catchup" for kw in call.keywords)


def _task_id_literals(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """(value, inside a loop) of every ``task_id=`` keyword whose value is a plain string literal."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:  # not recursive: a chain of thousands of `>>` nests that deep
        node, in_loop = stack.pop()
        loop = in_loop or isinstance(node, (ast.For, ast.AsyncFor, ast.While))
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "task_id" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    yield kw.value.value, loop
        stack.extend((child, loop) for child in ast.iter_child_nodes(node))
