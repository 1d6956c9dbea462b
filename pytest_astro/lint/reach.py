"""Which project modules Airflow imports when it parses the DAG files (``ast``, nothing is run).

The parse-time rules (AST00x, AST101, AST203) are true only of code that runs when Airflow parses
a DAG file: the DAG files themselves, and the project modules they import through imports that run
at parse time (module level, class bodies, ``with`` blocks, ``@dag``/``@task_group`` function bodies,
and bodies of module-level functions the module calls at module level). An import inside a
``@task`` body, or inside any other function, runs when the task runs, not at parse time; a module
that no DAG file reaches that way (``include/streamlit_app.py``) is never imported by the DAG
processor.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path

from pytest_astro.imports import Import, ImportGraph
from pytest_astro.project import Project, might_contain_dag

#: An import statement's head: ``from <dots><name>`` or ``import <names>`` (to the line's end).
_IMPORT_HEAD = re.compile(rb"(?:^|[;:])[ \t]*(?:from[ \t]+(\.*)[ \t]*([^\s.,;#()\\]*)|import[ \t]+([^\n;#]*))",
                          re.MULTILINE)


def imported_heads(data: bytes) -> set[str] | None:
    """The first component of every module a file's import statements name (``"."`` for a relative
    import), read with a regular expression, not parsed: it may see more than Python does (an
    import in a string), never less. None when it cannot tell (a backslash continuation)."""
    if b"\\\n" in data or b"\\\r" in data:
        return None
    heads: set[str] = set()
    for dots, module, names in _IMPORT_HEAD.findall(data):
        if dots:
            heads.add(".")
        elif module:
            heads.add(module.decode("utf-8", "replace"))
        for name in names.split(b","):
            head = name.strip().split(b".")[0].split()[:1]
            if head:
                heads.add(head[0].decode("utf-8", "replace"))
    return heads


_DEFERRED_DECORATORS = frozenset({"task", "asset", "setup", "teardown"})
_PARSE_TIME_DECORATORS = frozenset({"dag", "task_group"})


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set()
    for deco in node.decorator_list:
        expr = deco.func if isinstance(deco, ast.Call) else deco
        # @task.virtualenv / @task.bash: the task decorator's family
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "task":
            names.add("task")
        elif isinstance(expr, ast.Attribute):
            names.add(expr.attr)
        elif isinstance(expr, ast.Name):
            names.add(expr.id)
    return names


def _skips_body(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` never run their body at parse time."""
    if isinstance(test, (ast.Name, ast.Attribute)):
        return (test.id if isinstance(test, ast.Name) else test.attr) == "TYPE_CHECKING"
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def parse_time_imports(tree: ast.Module) -> list[Import]:
    """Imports of a module that run when the module is imported. Relative imports keep their dots
    (``..pkg``)."""
    called = {node.func.id for stmt in tree.body for node in ast.walk(stmt)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    found: list[Import] = []

    def visit(stmts: Iterable[ast.stmt], module_level: bool) -> None:
        for node in stmts:
            if isinstance(node, ast.Import):
                found.extend(Import(alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                found.append(Import(module, node.lineno, tuple(a.name for a in node.names if a.name != "*")))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                decorators = _decorator_names(node)
                if decorators & _DEFERRED_DECORATORS:
                    continue
                if decorators & _PARSE_TIME_DECORATORS or (module_level and node.name in called):
                    visit(node.body, False)
            elif isinstance(node, ast.If):
                visit(node.orelse if _skips_body(node.test) else [*node.body, *node.orelse], module_level)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, False)
            else:  # with, for, while, try, match: their blocks run
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, None) or [], module_level)
                for clause in (getattr(node, "handlers", None) or []) + (getattr(node, "cases", None) or []):
                    visit(clause.body, module_level)

    visit(tree.body, True)
    return found


class ParseTimeGraph(ImportGraph):
    """The project's import graph restricted to imports that run at parse time. ``memo`` maps a
    file's content hash to its parse-time imports (kept in the lint cache between runs: the
    pre-commit hook on one include/ file need not parse every DAG file again)."""

    def __init__(self, project: Project, memo: dict | None = None):
        super().__init__(project)
        self.memo: dict = {} if memo is None else memo
        self.memo_changed = False

    def _module_name(self, path: Path) -> str | None:
        if not hasattr(self, "_names"):
            self._names = {file: name for name, file in self.modules.items()}
        return self._names.get(path)

    def imports(self, path: Path) -> list[Import]:
        return self._imports(path.resolve())

    def _imports(self, path: Path) -> list[Import]:
        """:meth:`imports` of a resolved path."""
        if path in self._cache:
            return self._cache[path]
        try:
            data = path.read_bytes()
            # A file none of whose imports names a project package imports none of them (read, not parsed).
            heads = imported_heads(data)
            if heads is not None and "." not in heads and heads.isdisjoint(self.top_level_names):
                self._cache[path] = []
                return []
        except OSError:
            self._cache[path] = []
            return []
        key = "imports:" + hashlib.sha256(data).hexdigest()
        raw = self.memo.get(key)
        if raw is None:
            try:
                raw = [[i.module, i.line, list(i.names)] for i in parse_time_imports(ast.parse(data, filename=str(path)))]
            except (SyntaxError, ValueError):
                raw = []
            self.memo[key] = raw
            self.memo_changed = True
        found = []
        for module, line, names in raw:
            imp = Import(module, line, tuple(names))
            if imp.module.startswith("."):
                absolute = self._absolute(path, imp.module)
                if absolute is None:
                    continue
                imp = Import(absolute, imp.line, imp.names)
            found.append(imp)
        self._cache[path] = found
        return found

    def _absolute(self, path: Path, relative: str) -> str | None:
        name = self._module_name(path)
        if name is None:
            return None
        level = len(relative) - len(relative.lstrip("."))
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        if level - 1 > len(package):
            return None
        base = package[:len(package) - (level - 1)]
        rest = relative[level:]
        return ".".join([*base, rest] if rest else base) or None

    def reachable(self, roots: Iterable[Path]) -> set[Path]:
        """``roots`` and every project file they import at parse time, transitively."""
        seen = {p.resolve() for p in roots}
        todo = list(seen)
        while todo:
            current = todo.pop()
            for imp in self._imports(current):
                for hit in self._resolve(imp):  # the index's paths are resolved
                    if hit not in seen:
                        seen.add(hit)
                        todo.append(hit)
        return seen


def dag_files(project: Project, target_airflow: int | None) -> Iterator[Path]:
    """The files Airflow's DAG processor parses: the dags folder minus .airflowignore, those that pass
    its "might contain a DAG" heuristic."""
    major = target_airflow or 3
    for path in project.dag_folder_files():
        if path.suffix == ".py" and might_contain_dag(path, major):
            yield path


def parse_time_modules(project: Project, target_airflow: int | None, memo: dict | None = None) -> tuple[set[Path], bool]:
    """(resolved paths of the DAG files and every project module they import at parse time,
    whether ``memo`` gained entries)."""
    graph = ParseTimeGraph(project, memo)
    return graph.reachable(dag_files(project, target_airflow)), graph.memo_changed
