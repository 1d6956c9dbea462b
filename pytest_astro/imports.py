"""A static map of what the project's Python files import (``ast``, no code is run).

Used to preload third-party modules in the sandbox before forking, to find the DAG files
affected by a change to a project module (``include/helpers.py``), and by the lint hooks.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pytest_astro.project import Project

_SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".pytest_cache", ".tox",
              "site-packages"}


@dataclass(frozen=True)
class Import:
    # dotted name as written (``from a.b import c`` gives ``a.b`` and the candidate ``a.b.c``)
    module: str
    line: int
    names: tuple[str, ...] = ()


#: where statements are: an import is a statement, so only these lists are walked (not the
#: expressions, most of a DAG file's nodes)
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def read_imports(path: Path) -> list[Import]:
    """Absolute imports of a file, anywhere in it (module level or inside functions)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []
    found = []
    todo = [tree.body]
    while todo:
        for node in todo.pop():
            kind = type(node)
            if kind is ast.Import:
                found += [Import(alias.name, node.lineno) for alias in node.names]
            elif kind is ast.ImportFrom:
                if node.module and not node.level:
                    found.append(Import(node.module, node.lineno,
                                        tuple(a.name for a in node.names if a.name != "*")))
            else:
                todo += [sub for sub in (getattr(node, f, None) for f in _BODIES) if sub]
    found.sort(key=lambda imp: imp.line)
    return found


@dataclass
class ImportGraph:
    """Which project modules each file imports, transitively."""

    project: Project
    _cache: dict[Path, list[Import]] = field(default_factory=dict)

    @cached_property
    def modules(self) -> dict[str, Path]:
        """Dotted module name -> file, for every module importable from the project's sys.path
        roots."""
        index: dict[str, Path] = {}
        for base in reversed(self.project.importable_roots()):  # earlier roots win
            if not base.is_dir():
                continue
            for path in base.rglob("*.py"):
                rel = path.relative_to(base)
                if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
                    continue
                parts = list(rel.with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                if parts:
                    index[".".join(parts)] = path.resolve()
        return index

    @cached_property
    def top_level_names(self) -> set[str]:
        """A superset of the first components of the project's module names, from one listing of each
        sys.path root (``modules`` walks the whole project)."""
        names: set[str] = set()
        for base in self.project.importable_roots():
            try:
                with os.scandir(base) as entries:
                    for entry in entries:
                        if entry.name.endswith(".py") and entry.name != "__init__.py":
                            names.add(entry.name[:-3])
                        elif entry.is_dir():
                            names.add(entry.name)
            except OSError:
                continue
        return names

    def imports(self, path: Path) -> list[Import]:
        path = path.resolve()
        if path not in self._cache:
            self._cache[path] = read_imports(path)
        return self._cache[path]

    def _resolve(self, imp: Import) -> list[Path]:
        candidates = [imp.module] + [f"{imp.module}.{n}" for n in imp.names]
        hits = []
        for name in candidates:
            # importing a.b.c also runs a/__init__.py and a/b/__init__.py
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                hit = self.modules.get(".".join(parts[:i]))
                if hit:
                    hits.append(hit)
        return hits

    def project_imports(self, path: Path) -> set[Path]:
        """Every project file that ``path`` imports, directly or through other project files."""
        seen: set[Path] = set()
        todo = [path.resolve()]
        while todo:
            current = todo.pop()
            for imp in self.imports(current):
                for hit in self._resolve(imp):
                    if hit not in seen and hit != path.resolve():
                        seen.add(hit)
                        todo.append(hit)
        return seen

    def third_party(self, paths: Iterable[Path]) -> dict[str, set[str]]:
        """Non-project modules imported by ``paths`` (candidates for preloading), with the names
        taken from them (``from airflow.sdk import dag`` resolves ``dag`` lazily: preload that
        too)."""
        found: dict[str, set[str]] = {}
        for path in paths:  # real paths (the engine's): not resolved again, not kept
            for imp in self._cache[path] if path in self._cache else read_imports(path):
                if imp.module.split(".")[0] not in self.top_level_names:
                    found.setdefault(imp.module, set()).update(imp.names)
        return found

    def affected(self, changed: Iterable[Path], dag_files: Iterable[Path]) -> list[Path]:
        """The DAG files among ``dag_files`` that are in ``changed`` or import a changed file."""
        changed_set = {Path(p).resolve() for p in changed}
        out = []
        for dag_file in dag_files:
            resolved = dag_file.resolve()
            if resolved in changed_set or self.project_imports(resolved) & changed_set:
                out.append(dag_file)
        return out
