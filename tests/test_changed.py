"""`pytest --astro-dags --astro-changed[=REF]`: real git repositories, real pytest sessions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pytest_astro.changed import ChangedError, affected_dag_files, changed_files
from pytest_astro.config import load_settings
from pytest_astro.project import Project
from tests.conftest import DAG

USES_HELPERS = '''
from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from include.helpers import TASK_ID

with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id=TASK_ID)
'''


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c",
                           "commit.gpgsign=false", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


def make_repo(root: Path, branch: str = "main") -> Path:
    files = {
        "dags/a.py": DAG.format(dag_id="a"),
        "dags/b.py": DAG.format(dag_id="b"),
        "dags/c.py": USES_HELPERS.format(dag_id="c"),
        "dags/d.py": USES_HELPERS.format(dag_id="d"),
        "include/__init__.py": "",
        "include/helpers.py": 'TASK_ID = "t"\n',
        "requirements.txt": "",
        # the DAG policies (tags, retries...) are not what these tests are about
        "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", branch)
    git(root, "add", ".")
    git(root, "commit", "-qm", "project")
    return root


def selected(root: Path, ref: str | None = None) -> list[str]:
    project = Project(load_settings(root))
    changed, _ = changed_files(root, ref)
    return [project.relative(p) for p in affected_dag_files(project, changed, project.all_dag_files)]


def test_branch_changes_since_merge_base_plus_importers_of_changed_include(tmp_path):
    root = make_repo(tmp_path)
    git(root, "checkout", "-qb", "feature")
    (root / "dags/a.py").write_text(DAG.format(dag_id="a2"))
    git(root, "commit", "-qam", "edit a")
    (root / "include/helpers.py").write_text('TASK_ID = "t2"\n')  # uncommitted: counts too
    (root / "dags/new.py").write_text(DAG.format(dag_id="new"))  # untracked: counts too
    assert selected(root) == ["dags/a.py", "dags/c.py", "dags/d.py", "dags/new.py"]
    # main moved on after the branch point: its own changes are not ours
    git(root, "checkout", "-q", "main")
    git(root, "stash", "-q", "-u")
    (root / "dags/b.py").write_text(DAG.format(dag_id="b2"))
    git(root, "commit", "-qam", "edit b on main")
    git(root, "checkout", "-q", "feature")
    git(root, "stash", "pop", "-q")
    assert selected(root) == ["dags/a.py", "dags/c.py", "dags/d.py", "dags/new.py"]
    # an explicit ref: everything that differs from it
    assert selected(root, "main") == ["dags/a.py", "dags/b.py", "dags/c.py", "dags/d.py", "dags/new.py"]
    assert selected(root, "HEAD") == ["dags/c.py", "dags/d.py", "dags/new.py"]


def test_without_a_default_branch_only_uncommitted_changes(tmp_path):
    root = make_repo(tmp_path, branch="trunk")
    assert selected(root) == []
    (root / "dags/b.py").write_text(DAG.format(dag_id="b2"))
    assert selected(root) == ["dags/b.py"]


def test_deleted_module_affects_its_importers_and_global_inputs_affect_all(tmp_path):
    root = make_repo(tmp_path)
    git(root, "checkout", "-qb", "feature")
    (root / "include/helpers.py").unlink()
    assert selected(root) == ["dags/c.py", "dags/d.py"]
    git(root, "checkout", "-q", "--", "include/helpers.py")
    (root / "requirements.txt").write_text("requests\n")
    assert selected(root) == ["dags/a.py", "dags/b.py", "dags/c.py", "dags/d.py"]


def test_unknown_ref_and_no_repository_say_so(tmp_path):
    root = make_repo(tmp_path / "repo")
    with pytest.raises(ChangedError, match="git ref 'no-such-branch' does not exist"):
        changed_files(root, "no-such-branch")
    # `--astro-changed dags` took the folder for the ref: say so
    with pytest.raises(ChangedError, match="'dags' is a path: write `--astro-changed=`"):
        changed_files(root, "dags")
    plain = tmp_path / "plain"
    (plain / "dags").mkdir(parents=True)
    with pytest.raises(ChangedError, match="not inside a git repository"):
        changed_files(plain, None)


def test_pytest_collects_and_parses_only_affected_files(pytester):
    root = make_repo(pytester.path)
    git(root, "checkout", "-qb", "feature")
    (root / "include/helpers.py").write_text('TASK_ID = "renamed"\n')
    result = pytester.runpytest("--astro-dags", "--astro-changed", "-v", "--astro-report", "r.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*--astro-changed: 2 affected by changes since the merge base*",
                                 "dags/c.py::astro PASSED*", "dags/d.py::astro PASSED*"])
    assert "dags/a.py" not in result.stdout.str() and "dags/b.py" not in result.stdout.str()
    assert sorted(f["file"] for f in json.loads((root / "r.json").read_text())["files"]) == [
        "dags/c.py", "dags/d.py"]
    # nothing changed since HEAD's own commit once committed: nothing to check, nothing parsed
    git(root, "commit", "-qam", "rename")
    result = pytester.runpytest("--astro-dags", "--astro-changed=HEAD")
    result.assert_outcomes()
    bad = pytester.runpytest("--astro-dags", "--astro-changed=nope")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*git ref 'nope' does not exist*"])


READS_YAML = '''
from datetime import datetime
from pathlib import Path
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

TABLES = (Path(__file__).parents[1] / "include" / "tables.yaml").read_text().split()
with DAG("reads_yaml", start_date=datetime(2024, 1, 1), schedule=None):
    for table in TABLES:
        EmptyOperator(task_id=f"load_{table}")
'''


def test_a_file_the_last_parse_read_affects_its_reader(pytester):
    """No import statement names ``include/tables.yaml``: only the cache knows that the last parse of
    ``dags/reads_yaml.py`` read it, so a change to it selects that DAG file."""
    root = make_repo(pytester.path)
    (root / "dags/reads_yaml.py").write_text(READS_YAML)
    (root / "include/tables.yaml").write_text("orders customers\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "a DAG made from a YAML list")
    pytester.runpytest("--astro-dags").assert_outcomes(passed=5)  # fills the cache
    (root / "include/tables.yaml").write_text("orders customers invoices\n")
    result = pytester.runpytest("--astro-dags", "--astro-changed", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*--astro-changed: 1 affected by*", "dags/reads_yaml.py::astro PASSED*"])


def test_imports_are_found_wherever_a_statement_can_be(tmp_path):
    """The static import scan (``imports.read_imports``) walks statements only: an import in any
    block (functions, classes, if/else, loops, with, try/except/else/finally, match) is found, in
    line order, with the names taken; a relative import is not (it names no top-level module)."""
    from pytest_astro.imports import Import, read_imports

    path = tmp_path / "dag.py"
    path.write_text(
        "import a, b.c as d\n"
        "def f():\n    import e\n    class K:\n        from f import g, h\n"
        "if x:\n    import i\nelif y:\n    import j\nelse:\n    import k\n"
        "for _ in z:\n    import l\nelse:\n    import m\n"
        "while w:\n    import n\n"
        "with v:\n    from o import *\n"
        "try:\n    import p\nexcept E:\n    import q\nelse:\n    import r\nfinally:\n    import s\n"
        "match t:\n    case 1:\n        import u\n"
        "from . import rel\n"
        "async def g():\n    async with x:\n        import aw\n    async for y in x:\n        import af\n"
        "x = [__import__('not_a_statement')]\n")
    found = read_imports(path)
    assert [i.module for i in found] == ["a", "b.c", "e", "f", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
                                         "s", "u", "aw", "af"]
    assert found[3] == Import("f", 5, ("g", "h")) and found[10] == Import("o", 19, ())
