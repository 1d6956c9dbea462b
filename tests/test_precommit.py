"""Every hook of .pre-commit-hooks.yaml through real pre-commit, on real git repositories.

The hook repository is a snapshot of this checkout (its working tree, committed in a temporary
repository): `pre-commit try-repo` on a dirty checkout would make a new shadow commit, hence a
new hook environment, per call, and would miss files not yet tracked. One PRE_COMMIT_HOME is
shared by the whole session, so the `language: python` hooks install the package once.
That install is made offline-safe by a wheelhouse of the package's dependencies kept in the
user cache (built once from the package index, then used with --no-index).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOOK_FILES = ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml", "precommit", "pytest_astro")


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's working tree, committed in a fresh repository."""
    dest = tmp_path_factory.mktemp("hook-repo")
    for name in HOOK_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "snapshot", cwd=dest)
    return dest


@pytest.fixture(scope="session")
def wheelhouse(hook_repo: Path) -> Path:
    """Wheels of the package's dependencies and build backend (from the index once, then cached)."""
    deps = (hook_repo / "pyproject.toml").read_text()
    key = hashlib.sha256(f"{sys.version}\n{deps.split('[project.optional-dependencies]')[0]}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-astro" / f"wheelhouse-{key}"
    if not (base / ".complete").exists():
        base.mkdir(parents=True, exist_ok=True)
        for args in (["hatchling"], [str(hook_repo)]):
            proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(base), *args],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode:
                pytest.fail(f"could not build the wheelhouse for the pre-commit tests (needs the package index "
                            f"once):\n{proc.stderr[-2000:]}")
        for wheel in base.glob("pytest_astro-*.whl"):
            wheel.unlink()  # the package itself is always built from the snapshot
        (base / ".complete").touch()
    return base


@pytest.fixture(scope="session")
def pc_env(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRE_COMMIT", "PYTEST_ASTRO_PYTHON"))}
    env.update(PRE_COMMIT_HOME=str(tmp_path_factory.mktemp("pre-commit-home")), PIP_NO_INDEX="1",
               PIP_FIND_LINKS=str(wheelhouse), PIP_DISABLE_PIP_VERSION_CHECK="1", PRE_COMMIT_COLOR="never")
    return env


def make_project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "project", cwd=root)
    return root


GOOD_DAG = '''
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from include.helpers import TABLE

with DAG("good", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), schedule=None, catchup=False):
    EmptyOperator(task_id=TABLE)
'''
BAD_DAG = '''
import pendulum
from airflow.sdk import DAG, Variable
from airflow.operators.bash import BashOperator

BUCKET = Variable.get("bucket")

with DAG("bad", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), schedule_interval=None, catchup=False):
    BashOperator(task_id="t", bash_command="echo")
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, {
        "Dockerfile": "FROM astrocrpublic.azurecr.io/runtime:3.1-1\n",
        "requirements.txt": "apache-airflow-providers-standard\n",
        "dags/good.py": GOOD_DAG, "dags/bad.py": BAD_DAG,
        "include/__init__.py": "", "include/helpers.py": "TABLE = 'load'\n",
        "airflow_settings.yaml": "airflow:\n  connections:\n    - conn_id: pg\n      conn_type: postgres\n",
    })


def run_hook(hook_repo: Path, project: Path, env: dict, hook: str, files: list[str],
             args: dict[str, list[str]] | None = None) -> subprocess.CompletedProcess:
    """`pre-commit run HOOK --files ...` with a config using the snapshot: the hook environment
    lives in the shared PRE_COMMIT_HOME (try-repo always builds a throw-away store)."""
    rev = git("rev-parse", "HEAD", cwd=hook_repo).strip()
    ids = ["astro-dag-lint", "astro-dag-parse", "astro-requirements", "astro-project"]
    hooks = "".join(f"      - id: {i}\n" + (f"        args: {args[i]}\n".replace("'", '"') if args and i in args else "")
                    for i in ids)
    (project / ".pre-commit-config.yaml").write_text(f"repos:\n  - repo: {hook_repo}\n    rev: {rev}\n    hooks:\n{hooks}")
    git("add", ".pre-commit-config.yaml", cwd=project)
    return subprocess.run([sys.executable, "-m", "pre_commit", "run", hook, "--verbose", "--files", *files],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)


def dev_env(pc_env: dict) -> dict:
    """The developer's own environment: this virtualenv (Airflow, pytest-astro) active."""
    venv = Path(sys.prefix)
    return {**pc_env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def test_try_repo_runs_every_hook(hook_repo: Path, project: Path, pc_env: dict) -> None:
    """`pre-commit try-repo <hook repo>`: all four hooks, as a user trying them would."""
    (project / "include/helpers.py").write_text("import pandas\nTABLE = 'load'\n")
    (project / "dags/broken.py").write_text("from airflow.sdk import DAG\nimport not_installed_anywhere\n")
    (project / "airflow_settings.yaml").write_text(
        "airflow:\n  connections:\n    - conn_id: pg\n      conn_type: postgres\n"
        "    - conn_id: pg\n      conn_type: postgres\n")
    git("add", "-A", cwd=project)
    rev = git("rev-parse", "HEAD", cwd=hook_repo).strip()
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "--ref", rev, "--verbose",
                           "--files", "dags/good.py", "dags/bad.py", "dags/broken.py", "include/helpers.py",
                           "airflow_settings.yaml"],
                          cwd=project, env=dev_env(pc_env), capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    for hook in ("astro-dag-lint", "astro-dag-parse", "astro-requirements", "astro-project"):
        assert f"- hook id: {hook}" in out
    assert "dags/bad.py:5:10: AST001 Variable.get()" in out  # lint
    assert "dags/bad.py:7:69: AST303 schedule_interval=" in out
    assert "dags/broken.py:2:" in out and "not_installed_anywhere" in out  # parse
    # good.py imports include/helpers.py, which now imports pandas (not installed): parse fails there too.
    assert "dags/good.py:" in out and "No module named 'pandas'" in out
    assert "include/helpers.py:1: 'pandas' is imported but nothing provides it" in out  # requirements
    assert "airflow_settings.yaml:5: duplicate conn_id 'pg' (first on line 3)" in out  # project


def test_astro_dag_lint(hook_repo: Path, project: Path, pc_env: dict) -> None:
    proc = run_hook(hook_repo, project, pc_env, "astro-dag-lint", ["dags/good.py", "dags/bad.py", "Dockerfile"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "dags/bad.py:3:1: AST302 " in out and "dags/bad.py:5:10: AST001 " in out
    assert "dags/good.py" not in out
    ok = run_hook(hook_repo, project, pc_env, "astro-dag-lint", ["dags/good.py"])
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_astro_dag_lint_fix_as_hook_argument(hook_repo: Path, project: Path, pc_env: dict) -> None:
    args = {"astro-dag-lint": ["--fix", "--select", "AST3"]}
    proc = run_hook(hook_repo, project, pc_env, "astro-dag-lint", ["dags/bad.py"], args)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # files were modified
    fixed = (project / "dags/bad.py").read_text()
    assert "from airflow.providers.standard.operators.bash import BashOperator" in fixed
    assert "schedule=None" in fixed and "schedule_interval" not in fixed
    again = run_hook(hook_repo, project, pc_env, "astro-dag-lint", ["dags/bad.py"], args)
    assert again.returncode == 0, again.stdout + again.stderr


def test_astro_requirements(hook_repo: Path, project: Path, pc_env: dict) -> None:
    (project / "include/helpers.py").write_text("import pandas\nTABLE = 'load'\n")
    proc = run_hook(hook_repo, project, pc_env, "astro-requirements", ["include/helpers.py"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "include/helpers.py:1: 'pandas' is imported but nothing provides it" in out
    (project / "requirements.txt").write_text("apache-airflow-providers-standard\npandas\n")
    ok = run_hook(hook_repo, project, pc_env, "astro-requirements", ["requirements.txt", "include/helpers.py"])
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_astro_project(hook_repo: Path, project: Path, pc_env: dict) -> None:
    ok = run_hook(hook_repo, project, pc_env, "astro-project", ["airflow_settings.yaml"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (project / "airflow_settings.yaml").write_text(
        "airflow:\n  connections:\n    - conn_id: pg\n      conn_type: postgres\n"
        "    - conn_id: pg\n      conn_type: postgres\n      conn_port: five\n")
    proc = run_hook(hook_repo, project, pc_env, "astro-project", ["airflow_settings.yaml"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "airflow_settings.yaml:5: duplicate conn_id 'pg' (first on line 3)" in out
    assert "airflow_settings.yaml:7: conn_port must be a whole number, got 'five'" in out


def _fake_env(root: Path, probe_python: str, extra_path: str = "") -> dict:
    """A 'virtualenv' whose python is a wrapper around ``probe_python`` (which lacks pytest-astro or Airflow)."""
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    wrapper = bindir / "python"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={extra_path} exec {probe_python} -I \"$@\"\n" if not extra_path else
                       f"#!/bin/sh\nexport PYTHONPATH={extra_path}\nexec {probe_python} \"$@\"\n")
    wrapper.chmod(0o755)
    return {"VIRTUAL_ENV": str(root), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}


def _bare_python() -> str:
    """A Python without pytest-astro and Airflow: the base interpreter of this virtualenv."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    return str(base if base.exists() else sys.executable)


def test_astro_dag_parse_hint_when_pytest_astro_is_missing(hook_repo: Path, project: Path, pc_env: dict,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    env = {**pc_env, **_fake_env(tmp_path_factory.mktemp("venv"), _bare_python())}
    proc = run_hook(hook_repo, project, env, "astro-dag-parse", ["dags/good.py"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "does not have: pytest-astro airflow." in out
    assert "-m pip install pytest-astro -r requirements.txt" in out


def test_astro_dag_parse_hint_when_airflow_is_missing(hook_repo: Path, project: Path, pc_env: dict,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    # pytest-astro importable (from the snapshot), Airflow not installed.
    env = {**pc_env, **_fake_env(tmp_path_factory.mktemp("venv"), _bare_python(), extra_path=str(hook_repo))}
    proc = run_hook(hook_repo, project, env, "astro-dag-parse", ["dags/good.py"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "does not have: airflow." in out and "apache-airflow==<your runtime's Airflow version>" in out


def test_astro_dag_parse_in_the_developer_environment(hook_repo: Path, project: Path, pc_env: dict) -> None:
    if not (REPO / "pytest_astro" / "commands" / "parse.py").exists():
        pytest.fail("pytest_astro/commands/parse.py is missing: the hook has nothing to run")
    env = dev_env(pc_env)
    # A changed include/ module selects the DAG files that import it.
    (project / "include/helpers.py").write_text("TABLE = 'load'\nraise RuntimeError('helpers broke')\n")
    proc = run_hook(hook_repo, project, env, "astro-dag-parse", ["include/helpers.py"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "dags/good.py:" in out and "helpers broke" in out
    assert "dags/bad.py" not in out  # it does not import helpers
