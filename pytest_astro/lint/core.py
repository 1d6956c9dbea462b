"""The lint framework's vocabulary: rules, the facts a rule may know about a file, findings, and the
helpers rules use to read libcst nodes.

A rule is one small class (the Fixit style): ``CODE``, ``NAME``, ``MESSAGE``, a docstring that is
its documentation, ``VALID``/``INVALID`` examples that the test suite runs, and ``visit_<Node>`` /
``leave_<Node>`` methods taking libcst nodes. Rules call :meth:`Rule.report` with a node, and
optionally the replacement node that fixes it. A rule may also say, from cheap facts about the
source (:meth:`Rule.may_report`), that it cannot report anything on a file: when every selected
rule says so, the file is never parsed with libcst.

The walker that drives the rules is :mod:`pytest_astro.lint.walker`; running them on one source
(positions, ``# noqa``, fixes) is :mod:`pytest_astro.lint.runner`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from pytest_astro.lint.prefilter import SourceFacts


class _LazyLibcst:
    """``libcst`` imported on first use: a fully cached run never imports it."""

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


class WalkState(Protocol):
    """What a rule reads of the walker that visits it (``lint.walker.Walker``, which imports the
    rules: this keeps the import one-way)."""

    module: cst.Module
    stack: list[cst.CSTNode]  # the ancestors of the node being visited, outermost first
    parse_time: bool  # the node runs when the module is imported
    version_guard: int  # > 0 inside a version-fallback branch

    def call_name(self, call: cst.Call) -> str: ...

    def ancestors(self) -> Iterable[cst.CSTNode]: ...


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

    def __init__(self, ctx: FileContext, walker: WalkState):
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

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        """False when cheap facts about the source (:mod:`pytest_astro.lint.prefilter`) prove that this
        rule reports nothing on the file; when no selected rule may report, libcst never parses it.
        Overrides must err on the side of True. The default: it may."""
        return True

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


class ImportedNames:
    """Local name -> qualified name, from the imports a rule has visited so far (its
    ``visit_Import``/``visit_ImportFrom`` call :meth:`add`)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, node: cst.Import | cst.ImportFrom) -> None:
        if isinstance(node, cst.Import):
            for alias in node.names:
                name = dotted(alias.name)
                local = dotted(alias.asname.name) if alias.asname else name.split(".")[0]
                self.names[local] = name if alias.asname else local
            return
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        module = dotted(node.module)
        for alias in node.names:
            name = dotted(alias.name)
            self.names[dotted(alias.asname.name) if alias.asname else name] = f"{module}.{name}"

    def qualified(self, expr: cst.CSTNode) -> str:
        """``datetime.datetime.now`` for ``dt.now`` after ``from datetime import datetime as dt``;
        ``""`` when the expression's first name was not imported."""
        name = dotted(expr)
        head, _, rest = name.partition(".")
        if head not in self.names:
            return ""
        return self.names[head] + ("." + rest if rest else "")


class ImportTrackingRule(Rule):
    """A rule that resolves names through the module's imports (``self.imported``)."""

    def __init__(self, ctx: FileContext, walker: WalkState):
        super().__init__(ctx, walker)
        self.imported = ImportedNames()

    def visit_Import(self, node: cst.Import) -> None:
        self.imported.add(node)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.imported.add(node)
