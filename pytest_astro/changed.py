"""Which DAG files a change touches: ``pytest --astro-dags --astro-changed[=REF]``.

Git is asked (a real ``git`` subprocess) which files differ from REF: committed since REF, staged,
unstaged and untracked. REF defaults to the merge base of HEAD with the default branch
(``origin/HEAD``, else ``main``, else ``master``); with none of those, just the uncommitted
changes. The DAG files to check are then the changed DAG files, plus every DAG file that imports
a changed project module (``include/``, ``plugins/``: the static import graph), plus every DAG file
whose last recorded parse read a changed file (a YAML config), plus all of them when a file that
feeds every parse changed (``airflow_settings.yaml``, ``requirements.txt``, ``.env``...).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from pytest_astro.imports import ImportGraph
from pytest_astro.project import Project


class ChangedError(Exception):
    """Git could not answer (no repository, an unknown ref); the message says what to do."""


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise ChangedError("--astro-changed needs git, and `git` is not on PATH") from None
    if check and proc.returncode != 0:
        raise ChangedError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.strip()}")
    return proc


def _has_commit(root: Path, ref: str) -> bool:
    return _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                check=False).returncode == 0


def default_base(root: Path) -> str | None:
    """The merge base of HEAD with the default branch, or None (no such branch, or no commit
    yet)."""
    if not _has_commit(root, "HEAD"):
        return None
    candidates = []
    head = _git(root, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    if head.returncode == 0 and head.stdout.strip():
        candidates.append(head.stdout.strip())
    candidates += ["main", "master", "origin/main", "origin/master"]
    for branch in candidates:
        if _has_commit(root, branch):
            base = _git(root, "merge-base", "HEAD", branch, check=False)
            if base.returncode == 0 and base.stdout.strip():
                return base.stdout.strip()
    return None


def changed_files(root: Path, ref: str | None = None) -> tuple[list[Path], str]:
    """Files under the git work tree of ``root`` that differ from ``ref`` (committed since it,
    staged, unstaged, untracked, deleted), as absolute paths; and a description of the base."""
    top_proc = _git(root, "rev-parse", "--show-toplevel", check=False)
    if top_proc.returncode != 0:
        raise ChangedError(f"--astro-changed: {root} is not inside a git repository "
                           "(run without --astro-changed to check every DAG file)")
    top = Path(top_proc.stdout.strip())
    if ref:
        if not _has_commit(top, ref):
            hint = (f"; '{ref}' is a path: write `--astro-changed=` (or put paths before the "
                    "option) to check the default changes" if (root / ref).exists() else "")
            raise ChangedError(f"--astro-changed: git ref '{ref}' does not exist in {top} (a "
                               "branch, tag or commit is expected; in CI fetch it first, e.g. "
                               "`git fetch origin main` and `--astro-changed=origin/main`, or "
                               f"check out with fetch-depth: 0){hint}")
        base, what = ref, f"changes since {ref}"
    else:
        base = default_base(top)
        what = f"changes since the merge base {base[:12]}" if base else "uncommitted changes"
        if base is None and _has_commit(top, "HEAD"):
            base = "HEAD"
    names: set[str] = set()
    if base:
        names |= set(_git(top, "diff", "--name-only", "--no-renames", base,
                          "--").stdout.splitlines())
    else:  # no commit at all: everything staged counts as changed
        names |= set(_git(top, "ls-files", "--cached").stdout.splitlines())
    names |= set(_git(top, "ls-files", "--others", "--exclude-standard").stdout.splitlines())
    return sorted(top / n for n in names if n), what


# Files whose change can alter any parse: every DAG file is affected.
GLOBAL_INPUTS = ("airflow_settings.yaml", "requirements.txt", "packages.txt", ".env", "Dockerfile",
                 "pyproject.toml", ".airflowignore")


def _recorded_readers(project: Project, changed: set[Path]) -> set[Path]:
    """DAG files whose last cached parse imported or read one of ``changed`` (recorded by the
    sandbox)."""
    from pytest_astro.parse.cache import recorded_imports

    return {(project.root / file).resolve() for file, imported in recorded_imports(project)
            if any((project.root / rel).resolve() in changed for rel in imported)}


def affected_dag_files(project: Project, changed: Iterable[Path],
                       dag_files: Iterable[Path]) -> list[Path]:
    """The DAG files among ``dag_files`` a change to ``changed`` can alter (see the module
    docstring)."""
    changed_set = {Path(p).resolve() for p in changed}
    dag_files = list(dag_files)
    root = project.root.resolve()
    if any(p.parent == root and p.name in GLOBAL_INPUTS for p in changed_set) or any(
            p.name == ".airflowignore" for p in changed_set):
        return dag_files
    graph = ImportGraph(project)
    hits = set(graph.affected(changed_set, dag_files))
    # a deleted project module: the files still importing it by name are affected (and will fail)
    deleted = [p for p in changed_set if p.suffix == ".py" and not p.exists()]
    if deleted:
        names = set()
        for p in deleted:
            for base in project.importable_roots():
                try:
                    rel = p.relative_to(base.resolve()).with_suffix("")
                except ValueError:
                    continue
                parts = [x for x in rel.parts if x != "__init__"]
                if parts:
                    names.add(".".join(parts))
        for dag_file in dag_files:
            for imp in graph.imports(dag_file):
                candidates = {imp.module, *(f"{imp.module}.{n}" for n in imp.names)}
                if any(c == n or c.startswith(n + ".") for c in candidates for n in names):
                    hits.add(dag_file)
    readers = _recorded_readers(project, changed_set)
    return [f for f in dag_files if f in hits or f.resolve() in readers]
