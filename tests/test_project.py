"""DAG file discovery matches Airflow's own (the dags folder, .airflowignore, the heuristic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_astro.config import ConfigError, find_project_root, load_settings, parse_size
from pytest_astro.project import Project, airflow_major

DAGLIKE = "from airflow.sdk import DAG\n"

TREE = {
    "dags/a.py": DAGLIKE,
    "dags/b_test.py": DAGLIKE,
    "dags/notes.py": "print('no airflow words here')\n",
    "dags/asset_only.py": "from airflow.sdk import Asset\n",
    "dags/sub/c.py": DAGLIKE,
    "dags/sub/skip_me.py": DAGLIKE,
    "dags/sub/deeper/d.py": DAGLIKE,
    "dags/tmp/e.py": DAGLIKE,
    "dags/tmp/keep.py": DAGLIKE,
    "dags/data.txt": "airflow dag\n",
}

IGNORES = {
    "glob": {
        "dags/.airflowignore": "# comment\ntmp/*\n!tmp/keep.py\n*_test.py\n",
        "dags/sub/.airflowignore": "skip_me.py  # trailing comment\ndeeper/\n",
    },
    "regexp": {
        "dags/.airflowignore": "tmp/e\n_test\\.py$\n",
        "dags/sub/.airflowignore": "skip_me\ndeeper\n",
    },
}


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _airflow_discovery(root: Path, syntax: str) -> set[str]:
    """What Airflow itself lists (run in a subprocess: the test process never imports Airflow)."""
    code = (
        "import json, sys\n"
        "try:\n"
        "    from airflow.utils.file import find_dag_file_paths\n"
        "except ImportError:  # Airflow 2\n"
        "    from airflow.utils.file import list_py_file_paths\n"
        "    def find_dag_file_paths(d, safe_mode):\n"
        "        return list_py_file_paths(d, safe_mode=safe_mode, include_examples=False)\n"
        "print(json.dumps(find_dag_file_paths(sys.argv[1], safe_mode=True)))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(root / "home"), "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": syntax,
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root}/nowhere/x.db"}
    out = subprocess.run([sys.executable, "-c", code, str(root / "dags")], capture_output=True, text=True,
                         env=env, check=True).stdout
    return {Path(p).relative_to(root).as_posix() for p in json.loads(out.strip().splitlines()[-1])}


@pytest.mark.parametrize("syntax", ["glob", "regexp"])
def test_discovery_matches_airflow(tmp_path, syntax):
    _write(tmp_path, TREE)
    _write(tmp_path, IGNORES[syntax])
    project = Project(load_settings(tmp_path, ignore_file_syntax=syntax))
    ours = {project.relative(p) for p in project.all_dag_files}
    assert ours == _airflow_discovery(tmp_path, syntax)
    # and what that is, spelled out, so a change on both sides is still noticed
    expected = {"dags/a.py", "dags/sub/c.py"}
    if airflow_major() >= 3:
        expected.add("dags/asset_only.py")  # Airflow 3's heuristic also accepts "asset"
    if syntax == "glob":
        expected.add("dags/tmp/keep.py")  # re-included by "!tmp/keep.py"
    else:
        expected.add("dags/tmp/keep.py")  # "tmp/e" only matches e.py
    assert ours == expected


def test_discovery_follows_symlinks_as_airflow_does(tmp_path):
    root = tmp_path.resolve()
    _write(root, {"dags/a.py": DAGLIKE, "shared/b.py": DAGLIKE, "elsewhere/c.py": DAGLIKE})
    (root / "dags/linked").symlink_to(root / "shared", target_is_directory=True)
    (root / "dags/alias.py").symlink_to(root / "elsewhere/c.py")
    project = Project(load_settings(root))
    found = {p.relative_to(root).as_posix() for p in project.all_dag_files}
    assert found == _airflow_discovery(root, "glob") == {"dags/a.py", "dags/alias.py", "dags/linked/b.py"}
    # discovery remembers the real path of what is not behind a link; a link resolves to its target
    assert project.real(root / "dags/a.py") == root / "dags/a.py"
    assert project.real(root / "dags/alias.py") == root / "elsewhere/c.py"
    assert project.real(root / "dags/linked/b.py") == root / "shared/b.py"
    assert project.relative(root / "dags/linked/b.py") == "shared/b.py"
    (root / "dags/broken.py").symlink_to(root / "nowhere.py")  # skipped, as Airflow skips it
    assert len(Project(load_settings(root)).all_dag_files) == 3
    (root / "shared/loop").symlink_to(root / "dags", target_is_directory=True)
    with pytest.raises(ConfigError, match="dags/linked/loop/linked: symlink loop in the dags folder"):
        Project(load_settings(root)).all_dag_files


def test_ignore_syntax_follows_airflow_env(tmp_path, monkeypatch):
    _write(tmp_path, {"dags/x_test.py": DAGLIKE, "dags/.airflowignore": "_test\\.py$\n"})
    monkeypatch.setenv("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "regexp")
    assert Project(load_settings(tmp_path)).all_dag_files == []
    monkeypatch.setenv("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "glob")
    assert len(Project(load_settings(tmp_path)).all_dag_files) == 1


def test_dag_files_of_paths(tmp_path):
    _write(tmp_path, TREE)
    project = Project(load_settings(tmp_path))
    assert [project.relative(p) for p in project.dag_files([tmp_path / "dags/sub"])] == [
        "dags/sub/c.py", "dags/sub/deeper/d.py", "dags/sub/skip_me.py"]
    assert project.dag_files([tmp_path / "dags/notes.py"]) == []  # not a DAG file for Airflow either


def test_configured_dags_folder_and_runtime_image(tmp_path):
    _write(tmp_path, {"airflow/dags/x.py": DAGLIKE, "Dockerfile": "# syntax\nFROM astrocrpublic.azurecr.io/runtime:3.1-1\n",
                      "pyproject.toml": '[tool.pytest-astro]\ndags_folder = "airflow/dags"\ntimeout = "2.5s"\n'})
    settings = load_settings(tmp_path)
    assert settings.timeout == 2.5
    project = Project(settings)
    assert [project.relative(p) for p in project.all_dag_files] == ["airflow/dags/x.py"]
    assert project.runtime_image == "astrocrpublic.azurecr.io/runtime:3.1-1"


def test_project_root_is_found_upwards(tmp_path):
    _write(tmp_path, {"dags/x.py": DAGLIKE, "include/deep/er/y.txt": ""})
    assert find_project_root(tmp_path / "include/deep/er") == tmp_path.resolve()


@pytest.mark.parametrize(("text", "message"), [
    ('[tool.pytest-astro]\ntimeout = "soon"\n', "timeout: cannot read 'soon' as seconds"),
    ('[tool.pytest-astro]\nmemory_limit = "lots"\n', "memory_limit: cannot read 'lots' as a size"),
    ('[tool.pytest-astro]\nignore_file_syntax = "fnmatch"\n', "expected 'glob' or 'regexp'"),
    ('[tool.pytest-astro\n', "fix the TOML syntax"),
])
def test_bad_settings_name_the_file_and_the_fix(tmp_path, text, message):
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(tmp_path)
    assert "pyproject.toml" in str(info.value)


def test_sizes():
    assert parse_size("4GiB") == 4 * 1024**3
    assert parse_size("512MB") == 512 * 1000**2
    assert parse_size(0) == 0


def test_airflow_version_is_the_installed_one():
    from importlib import metadata

    from pytest_astro.project import airflow_version

    airflow_version.cache_clear()
    try:
        expected = metadata.version("apache-airflow")
    except metadata.PackageNotFoundError:
        expected = metadata.version("apache-airflow-core")
    assert airflow_version() == expected
    assert expected.count(".") >= 2
