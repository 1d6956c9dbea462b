"""The lint framework: rules, the single-pass walker that drives them, findings and autofixes.

A rule is one small class (the Fixit style): ``CODE``, ``NAME``, ``MESSAGE``, a docstring that is
its documentation, ``VALID``/``INVALID`` examples that the test suite runs, and ``visit_<Node>`` /
``leave_<Node>`` methods taking libcst nodes. Rules call :meth:`Rule.report` with a node, and
optionally the replacement node that fixes it.

Why a walker of our own instead of ``libcst.CSTVisitor``: libcst's visitor rebuilds every node
while visiting (about 4 ms for a 40-line DAG); walking the dataclass fields is ~15x faster and
lets us keep the one piece of context every rule needs: *does this code run when Airflow parses
the file?* (module level, class bodies, ``with DAG`` blocks, ``@dag`` functions, default values
and decorator arguments: yes; task bodies, other functions, ``if TYPE_CHECKING``: no).
Positions are computed only for files that have findings.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


class _LazyLibcst:
    """``libcst`` imported on first use: a fully cached run never pays its ~0.3 s import."""

    def __getattr__(self, name: str) -> Any:
        import libcst

        self.__dict__.update(vars(libcst))  # later lookups are plain attribute hits
        return getattr(libcst, name)


cst: Any = _LazyLibcst()

SYNTAX_ERROR = "AST000"


@dataclass(frozen=True)
class FileContext:
    """What a rule may know about the file besides its source. Plain, picklable data."""

    path: str = "dags/example.py"  # as shown to the user
    relpath: str = "dags/example.py"  # relative to the project root, POSIX separators
    in_dags_folder: bool = True
    airflow_ignored: bool = False  # excluded by an .airflowignore
    target_airflow: int | None = 3  # major version the project deploys to (None: unknown)
    heavy_imports: frozenset[str] = frozenset()
    #: Airflow imports this module when it parses a DAG file: it is a DAG file, or reachable from one
    #: through imports that run at parse time. False silences the parse-time rules on it.
    imported_at_parse_time: bool = True


@dataclass
class Finding:
    """One problem at one place. JSON-serializable through :meth:`to_dict`."""

    path: str
    line: int
    col: int
    code: str
    message: str
    fixable: bool = False  # the fix is applied by this run's --fix (safe, or unsafe with --unsafe-fixes)
    end_line: int = 0
    end_col: int = 0
    unsafe_fix: bool = False  # a fix exists that only --unsafe-fixes applies

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def text(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"


@dataclass(frozen=True)
class Valid:
    """Code the rule must accept."""

    code: str
    path: str = "dags/example.py"
    target_airflow: int | None = 3  # the project's target Airflow for this example


@dataclass(frozen=True)
class Invalid:
    """Code the rule must report; ``expected_fix`` is the source after ``--fix`` (None: no fix),
    or after ``--fix --unsafe-fixes`` when ``unsafe_fix`` (plain ``--fix`` then leaves it alone)."""

    code: str
    expected_fix: str | None = None
    path: str = "dags/example.py"
    line: int | None = None  # line of the (first) finding, when the example wants to pin it
    unsafe_fix: bool = False
    target_airflow: int | None = 3  # the project's target Airflow for this example


@dataclass
class _Report:
    node: cst.CSTNode | None
    code: str
    message: str
    replacement: cst.CSTNode | None = None
    line: int = 0  # used when node is None (file-level findings)
    unsafe: bool = False  # the replacement may change behaviour: applied only with --unsafe-fixes


class Rule:
    """Base class of every lint rule. Subclasses set the class attributes and visit methods."""

    CODE: ClassVar[str] = ""
    NAME: ClassVar[str] = ""
    MESSAGE: ClassVar[str] = ""
    #: Only meaningful when the project deploys to Airflow 3 (Astro Runtime 3.x).
    AIRFLOW3: ClassVar[bool] = False
    VALID: ClassVar[list[Valid]] = []
    INVALID: ClassVar[list[Invalid]] = []
    #: Other files of the examples' project, relative to the example DAG file's folder (template files)
    FILES: ClassVar[dict[str, str]] = {}

    def __init__(self, ctx: FileContext, walker: Walker):
        self.ctx = ctx
        self.walker = walker
        self.reports: list[_Report] = []

    # -- helpers for subclasses ---------------------------------------------------------------
    @property
    def parse_time(self) -> bool:
        """True when the node being visited runs whenever Airflow parses a DAG file: it runs when
        this module is imported, and Airflow imports this module at parse time."""
        return self.walker.parse_time and self.ctx.imported_at_parse_time

    def report(self, node: cst.CSTNode | None, message: str | None = None,
               replacement: cst.CSTNode | None = None, line: int = 1, unsafe: bool = False) -> None:
        if self.AIRFLOW3 and self.walker.version_guard:
            # A version-fallback branch (try/except ImportError, if AIRFLOW_V_3...) is written for
            # the other Airflow on purpose: neither reported nor rewritten.
            return
        self.reports.append(_Report(node, self.CODE, message or self.MESSAGE, replacement, line, unsafe))

    def check_file(self) -> None:
        """Called once per file before the walk; for rules about the file itself (its path)."""

    def finish(self) -> None:
        """Called once per file after the walk."""

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or cls.MESSAGE).strip().split("\n\n")[0].replace("\n", " ")

    @classmethod
    def doc(cls) -> dict[str, Any]:
        """The rule's documentation as plain data, in ruff's page layout: ``what`` (the docstring's
        first paragraph), ``why`` (the rest), ``example`` (an INVALID example, a fixable one when
        there is one), ``use_instead`` (its fix, else the first VALID example), ``fix``
        (``"safe"``, ``"unsafe"`` or ``""``), ``airflow3``. Docs pages are generated from it."""
        import inspect

        text = inspect.cleandoc(cls.__doc__ or cls.MESSAGE)
        what, _, why = text.partition("\n\n")
        fixed = [ex for ex in cls.INVALID if ex.expected_fix is not None]
        example = (fixed or cls.INVALID)[0]
        fix = "" if not fixed else "unsafe" if all(ex.unsafe_fix for ex in fixed) else "safe"
        return {"code": cls.CODE, "name": cls.NAME, "message": cls.MESSAGE, "what": what, "why": why,
                "example": example.code, "example_path": example.path,
                "use_instead": example.expected_fix if example.expected_fix is not None else cls.VALID[0].code,
                "fix": fix, "airflow3": cls.AIRFLOW3, "files": dict(cls.FILES)}


# -- names ---------------------------------------------------------------------------------------

def dotted(node: cst.CSTNode | None) -> str:
    """``a.b.c`` for Name/Attribute chains (``""`` for anything else, e.g. calls)."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return ""


def call_name(call: cst.Call) -> str:
    """Dotted name of what is called; for ``Path(x).read_text()`` -> ``().read_text``."""
    name = dotted(call.func)
    if name:
        return name
    if isinstance(call.func, cst.Attribute):
        inner = call.func.value
        prefix = dotted(inner.func) + "()" if isinstance(inner, cst.Call) else "?"
        return f"{prefix}.{call.func.attr.value}"
    return ""


def keyword(call: cst.Call, name: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def has_star_kwargs(call: cst.Call) -> bool:
    return any(arg.star == "**" for arg in call.args)


def string_value(node: cst.CSTNode | None) -> str | None:
    """The value of a plain (non-f, non-bytes) string literal, else None."""
    if isinstance(node, cst.SimpleString) and "b" not in node.prefix.lower():
        try:
            value = node.evaluated_value
        except Exception:  # pragma: no cover - malformed escapes
            return None
        return value if isinstance(value, str) else None
    if isinstance(node, cst.ConcatenatedString):
        try:
            value = node.evaluated_value
        except Exception:  # pragma: no cover
            return None
        return value if isinstance(value, str) else None
    return None


def is_dag_call(call: cst.Call) -> bool:
    name = dotted(call.func)
    return name == "DAG" or name.endswith(".DAG")


def is_decorator(decorator: cst.Decorator, names: Iterable[str]) -> bool:
    """``@dag``, ``@dag(...)``, ``@airflow.sdk.dag``... for any of ``names`` (last component)."""
    expr = decorator.decorator
    if isinstance(expr, cst.Call):
        expr = expr.func
    if isinstance(expr, cst.Attribute) and dotted(expr.value).split(".")[-1] == "task" and expr.attr.value != "override":
        return "task" in names  # @task.virtualenv, @task.bash ...
    last = dotted(expr).split(".")[-1]
    return last in names


# -- the walker ----------------------------------------------------------------------------------

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


# -- running rules on one source -----------------------------------------------------------------

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


def _run_rules(module: cst.Module, source_lines: list[str], ctx: FileContext, rule_classes: Sequence[type[Rule]],
               unsafe_fixes: bool = False) -> tuple[list[Finding], dict[int, cst.CSTNode]]:
    """Findings plus the fixes (id(node) -> replacement) of the unsuppressed findings."""
    walker = Walker(module)
    # The Airflow 3 rules' advice is only true of a project that runs Airflow 3.
    rules = [cls(ctx, walker) for cls in rule_classes if ctx.target_airflow == 3 or not cls.AIRFLOW3]
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
                fix: bool = False, max_passes: int = 5, unsafe_fixes: bool = False) -> LintResult:
    """Lint one file's source; with ``fix``, apply the safe fixes (and the unsafe ones with
    ``unsafe_fixes``) repeatedly, until none apply."""
    result = LintResult(source=source)
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
