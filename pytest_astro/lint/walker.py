"""The single-pass walker that drives every rule's ``visit_<Node>``/``leave_<Node>`` methods.

Why a walker of our own instead of ``libcst.CSTVisitor``: libcst's visitor rebuilds every node
while visiting; walking the dataclass fields is many times cheaper and lets us keep the one piece of
context every rule needs: *does this code run when Airflow parses the file?* (module level, class
bodies, ``with DAG`` blocks, ``@dag`` functions, default values and decorator arguments: yes; task
bodies, other functions, ``if TYPE_CHECKING``: no), and whether it is a version-fallback branch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pytest_astro.lint.core import call_name, cst, dotted, is_decorator, string_value

if TYPE_CHECKING:
    from pytest_astro.lint.core import Rule

_SKIP_FIELDS = frozenset({
    "lpar", "rpar", "comma", "semicolon", "colon", "equal", "dot", "lbracket", "rbracket", "lbrace",
    "rbrace", "operator", "header", "footer", "leading_lines", "trailing_whitespace", "newline",
    "indent", "empty_lines", "lines_after_decorators", "leading_whitespace", "asynchronous",
    "encoding", "default_indent", "default_newline", "has_trailing_newline", "prefix", "quote",
})
_FIELDS: dict[type, tuple[str, ...]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls)
            if f.name not in _SKIP_FIELDS and not f.name.startswith("whitespace"))
    return names


#: type -> is it a libcst node. ``isinstance(x, cst.CSTNode)`` goes through ABC machinery, and the
#: walker asks it for every field of every node: a dict hit per type is several times cheaper.
_IS_NODE: dict[type, bool] = {}


def _is_node(value: Any) -> bool:
    kind = type(value)
    known = _IS_NODE.get(kind)
    if known is None:
        known = _IS_NODE[kind] = isinstance(value, cst.CSTNode)
    return known


#: rule class -> [(node type name, method name, is a leave_ method)]
_METHODS: dict[type, list[tuple[str, str, bool]]] = {}


def _rule_methods(cls: type) -> list[tuple[str, str, bool]]:
    methods = _METHODS.get(cls)
    if methods is None:
        methods = _METHODS[cls] = [(attr[6:], attr, attr.startswith("leave_")) for attr in dir(cls)
                                   if attr.startswith(("visit_", "leave_"))]
    return methods


def _is_type_checking(test: cst.BaseExpression) -> bool:
    return dotted(test).split(".")[-1] == "TYPE_CHECKING"


def _is_main_guard(test: cst.BaseExpression) -> bool:
    if isinstance(test, cst.Comparison) and dotted(test.left) == "__name__":
        return any(string_value(c.comparator) == "__main__" for c in test.comparisons)
    return False


_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
_VERSION_NAME = re.compile(r"version|AIRFLOW_V_?\d|AIRFLOW_\d", re.IGNORECASE)


def _is_import_fallback(node: cst.Try) -> bool:
    """``try: <imports> except ImportError: <other imports>`` (ModuleNotFoundError, Exception or a
    bare except too): a body of simple statements with at least one import. A ``try`` around a
    whole DAG is not a version fallback."""
    body = node.body.body
    if not all(isinstance(stmt, cst.SimpleStatementLine) for stmt in body):
        return False
    if not any(isinstance(small, (cst.Import, cst.ImportFrom)) for stmt in body for small in stmt.body):
        return False
    for handler in node.handlers:
        kinds = handler.type
        if kinds is None:
            return True
        elements = kinds.elements if isinstance(kinds, cst.Tuple) else [kinds]
        for element in elements:
            expr = element.value if isinstance(element, cst.Element) else element
            if dotted(expr).split(".")[-1] in _IMPORT_ERRORS:
                return True
    return False


def _is_version_test(test: cst.BaseExpression) -> bool:
    """An ``if`` on the Airflow (or Python) version: ``AIRFLOW_V_3_0_PLUS``, ``airflow.__version__``,
    ``Version(...) >= ...``, ``sys.version_info``."""
    stack: list[Any] = [test]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            if _VERSION_NAME.search(node.value):
                return True
        elif isinstance(node, cst.Attribute):
            if _VERSION_NAME.search(node.attr.value):
                return True
            stack.append(node.value)
        elif isinstance(node, cst.CSTNode):
            stack += [getattr(node, f) for f in _fields(type(node))]
        elif isinstance(node, (list, tuple)):
            stack += list(node)
    return False


class _ContextTypes:
    """The node types where the walker's context may change (resolved on first use: lazy libcst)."""

    def __contains__(self, node_type: type) -> bool:
        global _CONTEXT_TYPES
        _CONTEXT_TYPES = frozenset({cst.FunctionDef, cst.Lambda, cst.If, cst.Try})
        return node_type in _CONTEXT_TYPES


_CONTEXT_TYPES: Any = _ContextTypes()


class Walker:
    """Walks a module once, calling every rule's ``visit_<Node>``/``leave_<Node>`` methods."""

    def __init__(self, module: cst.Module, rules: Sequence[Rule] = ()):
        self.module = module
        self.stack: list[cst.CSTNode] = []
        self.parse_time = True
        #: > 0 inside a version-fallback branch: try/except ImportError, or an if on the version
        self.version_guard = 0
        self._visit: dict[str, list[Callable]] = {}
        self._leave: dict[str, list[Callable]] = {}
        self._called: set[str] | None = None
        self._last_call: tuple[Any, str] = (None, "")
        for rule in rules:
            self.add(rule)

    def call_name(self, call: cst.Call) -> str:
        """:func:`call_name`, remembered for the node being visited (every rule's visit_Call asks)."""
        last, name = self._last_call
        if last is not call:
            name = call_name(call)
            self._last_call = (call, name)
        return name

    def add(self, rule: Rule) -> None:
        for kind, attr, leave in _rule_methods(type(rule)):
            (self._leave if leave else self._visit).setdefault(kind, []).append(getattr(rule, attr))

    @property
    def called_at_module_level(self) -> set[str]:
        """Names of module-level functions that module-level code calls (computed on first use)."""
        if self._called is None:
            self._called = self._module_level_calls(self.module)
        return self._called

    @staticmethod
    def _module_level_calls(module: cst.Module) -> set[str]:
        """Names of module-level functions called by module-level code: DAG factories, whose
        bodies therefore run at parse time."""
        names: set[str] = set()

        skip = (cst.FunctionDef, cst.ClassDef, cst.Lambda)

        def scan(node: Any) -> None:
            if isinstance(node, skip):
                return
            if type(node) is cst.Call and type(node.func) is cst.Name:
                names.add(node.func.value)
            if _is_node(node):
                for name in _fields(type(node)):
                    scan(getattr(node, name))
            elif type(node) in (list, tuple):
                for child in node:
                    scan(child)

        for stmt in module.body:
            scan(stmt)
        return names

    def run(self) -> None:
        self._walk(self.module)

    # Context switches happen here; everything else is a plain recursive walk.
    def _walk(self, node: cst.CSTNode) -> None:
        node_type = type(node)
        kind = node_type.__name__
        for fn in self._visit.get(kind, ()):
            fn(node)
        self.stack.append(node)
        if node_type not in _CONTEXT_TYPES:
            self._walk_children(node)
        elif node_type is cst.FunctionDef:
            self._walk_function(node)
        elif node_type is cst.Lambda:
            self._walk_children(node.params)
            self._in_context(node.body, parse_time=False)
        elif isinstance(node, cst.If) and _is_type_checking(node.test):
            if node.orelse is not None:
                self._walk(node.orelse)
        elif isinstance(node, cst.If) and _is_main_guard(node.test):
            self._walk(node.test)
            self._in_context(node.body, parse_time=False)
            if node.orelse is not None:
                self._walk(node.orelse)
        elif (isinstance(node, cst.Try) and _is_import_fallback(node)) or \
                (isinstance(node, cst.If) and _is_version_test(node.test)):
            self.version_guard += 1
            self._walk_children(node)
            self.version_guard -= 1
        else:
            self._walk_children(node)
        self.stack.pop()
        for fn in self._leave.get(kind, ()):
            fn(node)

    def _walk_children(self, node: cst.CSTNode) -> None:
        walk, is_node = self._walk, _is_node
        for name in _fields(type(node)):
            value = getattr(node, name)
            if is_node(value):
                walk(value)
            elif type(value) in (tuple, list):
                for child in value:
                    if is_node(child):
                        walk(child)

    def _in_context(self, node: cst.CSTNode, parse_time: bool) -> None:
        saved = self.parse_time
        self.parse_time = parse_time
        self._walk(node)
        self.parse_time = saved

    def _walk_function(self, node: cst.FunctionDef) -> None:
        # Decorators and default values run when the def statement runs; the body runs later.
        for decorator in node.decorators:
            self._walk(decorator)
        self._walk(node.params)
        if node.returns is not None:
            self._walk(node.returns)
        is_dag = any(is_decorator(d, ("dag",)) for d in node.decorators)
        is_group = any(is_decorator(d, ("task_group",)) for d in node.decorators)
        is_task = any(is_decorator(d, ("task", "asset", "setup", "teardown")) for d in node.decorators)
        module_level = len(self.stack) >= 2 and isinstance(self.stack[-2], cst.Module)
        if is_task:
            body_parse_time = False
        elif is_dag or is_group:
            body_parse_time = self.parse_time
        else:
            # A DAG factory called from module level runs at parse time too.
            body_parse_time = self.parse_time and module_level and node.name.value in self.called_at_module_level
        self._in_context(node.body, body_parse_time)

    def ancestors(self) -> Iterable[cst.CSTNode]:
        """Ancestors of the node being visited, innermost first (the node itself excluded)."""
        return reversed(self.stack)
