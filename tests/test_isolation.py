"""Batched isolation: one forked child parses several files in turn, with the state a file can
leave behind reset (or, when it cannot be, a fresh child for the next file), and a failure that
follows other files in the same process re-checked alone. Verdicts equal those of a fork per file."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DAG, run_cli

_PID = "import os\nprint('pid', os.getpid())\n"

FILES = {
    "lib/libmod.py": "VALUE = 1\n",
    "include/__init__.py": "",
    "include/shared.py": "STATE = []\n",
    # leaves behind everything a DAG file commonly leaves: a sys.path entry, an environment variable,
    # a mutated project module, an imported module only that path makes importable, warning filters
    "dags/a_pollute.py": _PID + """
import sys, warnings
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
os.environ["POLLUTED"] = "1"
os.chdir("/")
warnings.simplefilter("error")
import libmod
import include.shared
include.shared.STATE.append("a")
import json
json.POLLUTED = True  # a third-party module changed in place: not something the reset can see
import signal, time
os.umask(0o077)
os.environ["TZ"] = "ABC-5"
time.tzset()
sys.setrecursionlimit(54321)
signal.signal(signal.SIGTERM, lambda *args: None)
""" + DAG.format(dag_id="a_pollute"),
    # passes only if none of that reached it
    "dags/b_clean.py": _PID + """
import sys, warnings
import include.shared
problems = []
if "POLLUTED" in os.environ: problems.append("environment")
if any(p.endswith("lib") for p in sys.path): problems.append("sys.path")
if include.shared.STATE: problems.append("include.shared")
if os.getcwd() == "/": problems.append("cwd")
if warnings.filters and warnings.filters[0][0] == "error": problems.append("warnings")
import signal, time
mask = os.umask(0o022); os.umask(mask)
if mask == 0o077: problems.append("umask")
if "ABC" in time.tzname: problems.append("time zone")
if sys.getrecursionlimit() == 54321: problems.append("recursion limit")
if getattr(signal.getsignal(signal.SIGTERM), "__name__", "") == "<lambda>": problems.append("SIGTERM handler")
try:
    import libmod
    problems.append("libmod")
except ImportError:
    pass
if problems:
    raise RuntimeError("left behind by an earlier file: " + ", ".join(problems))
""" + DAG.format(dag_id="b_clean"),
    # fails after a_pollute in the same process; alone (as Airflow parses it) it passes
    "dags/c_sees_json.py": _PID + """
import json
if getattr(json, "POLLUTED", False):
    raise RuntimeError("json was changed by an earlier file")
""" + DAG.format(dag_id="c_sees_json"),
    # a monkeypatch of Airflow itself: the next file must start in a fresh child
    "dags/d_patch.py": _PID + """
import airflow.settings
airflow.settings.PYTEST_ASTRO_PATCHED = True
""" + DAG.format(dag_id="d_patch"),
    "dags/e_after_patch.py": _PID + """
import airflow.settings
if hasattr(airflow.settings, "PYTEST_ASTRO_PATCHED"):
    raise RuntimeError("airflow.settings was patched by an earlier file")
""" + DAG.format(dag_id="e_after_patch"),
    # a plain failure: reported as such in both modes
    "dags/f_needs_lib.py": "import libmod\n" + DAG.format(dag_id="f_needs_lib"),
    **{f"dags/z_filler_{i}.py": DAG.format(dag_id=f"z_filler_{i}") for i in range(6)},
}


def _parse(root, isolation: str) -> tuple[dict[str, dict], dict]:
    proc = run_cli("parse", "--format", "json", "--no-cache", "--workers", "1", "--isolation", isolation,
                   cwd=root)
    assert proc.returncode == 1, proc.stderr  # f_needs_lib fails
    out = json.loads(proc.stdout)
    return {r["file"]: r for r in out["files"]}, out["stats"]


def _pid(result: dict) -> int:
    return int(result["stdout"].split("pid", 1)[1].split()[0])


@pytest.fixture
def project(tmp_path, write_files):
    return write_files(tmp_path, FILES)


def test_batch_resets_state_and_rechecks_failures_alone(project):
    results, stats = _parse(project, "batch")
    verdicts = {f: r["ok"] for f, r in results.items()}
    assert verdicts == {f: f != "dags/f_needs_lib.py" for f in FILES if f.startswith("dags/")}, \
        {f: r["errors"] for f, r in results.items() if r["errors"]}
    assert results["dags/f_needs_lib.py"]["errors"][0]["kind"] == "missing_module"
    a, b, c, d, e = (results[f"dags/{n}.py"] for n in ("a_pollute", "b_clean", "c_sees_json", "d_patch",
                                                        "e_after_patch"))
    # b ran in a_pollute's process (that is what batching is), and passed: the reset worked
    assert _pid(a) == _pid(b)
    # c failed there, then passed alone in a fresh fork: its verdict is the fresh one
    assert _pid(c) != _pid(a)
    # a patched module ends the child: e ran in another one
    assert _pid(e) != _pid(d)
    # a module a_pollute imported first is still b_clean's dependency (the cache sees it)
    assert "include/shared.py" in b["imported"]
    # 12 files in fewer processes; c_sees_json (at least) was re-checked alone
    assert stats["processes"] < 12 and stats["rechecked"] >= 1, stats
    assert any(r.startswith("dags/d_patch.py: ") and "airflow.settings" in r for r in stats["ended_early"]), stats


def test_file_isolation_gives_the_same_verdicts_with_a_fork_per_file(project):
    batch, _ = _parse(project, "batch")
    single, stats = _parse(project, "file")
    assert {f: (r["ok"], [e["kind"] for e in r["errors"]]) for f, r in single.items()} == \
        {f: (r["ok"], [e["kind"] for e in r["errors"]]) for f, r in batch.items()}
    pids = [_pid(r) for f, r in single.items() if r["stdout"]]
    assert len(pids) == len(set(pids)) == 5
    assert stats["processes"] == 12 and stats["rechecked"] == 0, stats


def test_isolation_setting_is_checked(project):
    (project / "pyproject.toml").write_text('[tool.pytest-astro]\nisolation = "thread"\n')
    proc = run_cli("parse", cwd=project)
    assert proc.returncode == 2
    assert "isolation: expected 'batch' or 'file', got 'thread'" in proc.stderr


def test_without_fork_the_error_says_where_to_run(tmp_path, write_files, monkeypatch):
    """Windows has no fork (nor does Airflow run there): a clear error, before anything starts."""
    import os

    from pytest_astro.config import load_settings
    from pytest_astro.parse.engine import EngineError, ParseEngine
    from pytest_astro.project import Project

    write_files(tmp_path, {"dags/one.py": DAG.format(dag_id="one")})
    project = Project(load_settings(tmp_path, cache=False))
    monkeypatch.delattr(os, "fork")
    with pytest.raises(EngineError, match=r"needs a POSIX system \(Linux, macOS, or WSL2 on Windows\)"):
        ParseEngine(project).parse(project.all_dag_files)


def test_what_a_file_printed_is_in_its_report(tmp_path, write_files):
    """Output is kept per file, in a batch too: after an exception, an os._exit and a segfault."""
    write_files(tmp_path, {
        "dags/a_ok.py": "print('from a_ok')\n" + DAG.format(dag_id="a_ok"),
        # (the comment makes Airflow's safe-mode heuristic take them for DAG files)
        "dags/b_raises.py": "# airflow dag\nprint('from b_raises')\nraise RuntimeError('b')\n",
        "dags/c_exits.py": "# airflow dag\nimport os\nprint('from c_exits', flush=True)\nos._exit(3)\n",
        "dags/d_crashes.py": "# airflow dag\nimport ctypes\nprint('from d_crashes', flush=True)\nctypes.string_at(0)\n",
        "dags/e_ok.py": DAG.format(dag_id="e_ok"),
    })
    proc = run_cli("parse", "-v", "--no-cache", "--workers", "1", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    for name in ("b_raises", "c_exits", "d_crashes"):
        assert f"----- output while importing -----\nfrom {name}" in proc.stdout, proc.stdout
    assert "from a_ok" not in proc.stdout  # a passing file's output is not a failure's
