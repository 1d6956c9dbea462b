"""Run a batch of generated DAG files through pytest-astro and through stock Airflow; compare.

One batch = one Astro project with one DAG file per case (``dags/case_NNNN.py``), so each side
pays ``import airflow`` once per batch:

- ours: ``pytest --astro-dags --astro-report --junitxml`` with every policy selected (the parse
  verdicts come from the report, internal errors from the report, the JUnit XML and the exit
  status), ``pytest-astro lint --format json`` and ``pytest-astro lint --fix`` (on a copy);
- stock: ``stock_worker.py``, a stock ``DagBag`` per file in a fork, with a migrated SQLite
  metadata database in its own ``AIRFLOW_HOME`` (the original files, and the files ``--fix`` changed).

Our duplicate-dag_id check is project-wide and a stock ``DagBag(dag_folder=file)`` sees one file,
so a ``DuplicateDagId`` of ours that names *another* case's file is left out of the comparison
(generated dag_ids are not unique across cases); within a file both sides judge.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pytest_astro.project import airflow_major
from tests.differential.grammar import Case

WORKER = Path(__file__).with_name("stock_worker.py")
#: lint findings that say Airflow refuses the file (docs/lint-rules.md): each must be a stock import error
REFUSAL_CODES = ("AST000", "AST203")
RUNTIME = {True: "astrocrpublic.azurecr.io/runtime:3.1-1", False: "quay.io/astronomer/astro-runtime:12.9.0"}
PYPROJECT = '[tool.pytest-astro.policies]\nselect = ["ALL"]\n'


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for both sides: no pytest options or Airflow settings of the caller's run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "AIRFLOW", "COV_CORE", "_AIRFLOW"))}
    env.update(extra)
    return env


def stock_env(home: Path) -> dict[str, str]:
    return clean_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                     AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
                     AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
                     # bytecode (of Airflow too) kept with this home, never beside the DAG files
                     PYTHONPYCACHEPREFIX=str(home / "pycache"))


def migrate(home: Path, python: str = sys.executable) -> Path:
    """An AIRFLOW_HOME with a migrated SQLite metadata database (``airflow db migrate``), made once."""
    done = home / ".migrated"
    if not done.exists():
        home.mkdir(parents=True, exist_ok=True)
        (home / "dags").mkdir(exist_ok=True)
        proc = subprocess.run([python, "-m", "airflow", "db", "migrate"], env=stock_env(home), text=True,
                              capture_output=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        done.touch()
    return home


def run_stock(files: list[Path], home: Path, python: str = sys.executable) -> dict[str, dict]:
    """Stock verdicts, keyed by absolute path."""
    proc = subprocess.run([python, str(WORKER)], input="".join(f"{f}\n" for f in files), text=True,
                          capture_output=True, env=stock_env(home), timeout=3600, cwd=str(home))
    verdicts = {}
    for line in proc.stdout.splitlines():
        data = json.loads(line)
        verdicts[data.pop("file")] = data
    missing = [str(f) for f in files if str(f) not in verdicts]
    if missing:
        raise RuntimeError(f"the stock worker gave no verdict for {missing[:3]} (status {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return verdicts


def is_internal(error: dict) -> bool:
    """Whether one of our parse errors is a bug of ours rather than a verdict on the user's file."""
    text = f"{error.get('message', '')} {error.get('hint', '')}"
    return (error.get("kind") == "internal" or error.get("type") in ("SandboxError", "InternalError")
            or "bug in pytest-astro" in text
            or any("pytest_astro" in (fr.get("file") or "") for fr in error.get("frames", [])))


def run_ours(project: Path, python: str = sys.executable) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Our parse verdicts and internal errors, keyed by ``dags/case_NNNN.py`` (the run's own
    internal errors under ``""``)."""
    cmd = [python, "-m", "pytest", "--astro-dags", "--astro-no-cache", "--astro-report=report.json",
           "--junitxml=junit.xml", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(project)]
    proc = subprocess.run(cmd, cwd=project, text=True, capture_output=True, env=clean_env(), timeout=3600)
    internal: dict[str, list[str]] = defaultdict(list)
    if proc.returncode not in (0, 1):
        internal[""].append(f"pytest exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    report = project / "report.json"
    files = json.loads(report.read_text())["files"] if report.exists() else []
    verdicts = {}
    for result in files:
        errors = [e for e in result["errors"] if not (e["kind"] == "duplicate_dag_id" and result["file"]
                                                      not in e["message"] and "also defined in" in e["message"])]
        internal[result["file"]] += [f"internal parse error {e['type']}: {e['message']}"
                                     for e in errors if is_internal(e)]
        verdicts[result["file"]] = {
            "ok": not errors, "errors": [e["type"] for e in errors],
            "text": "; ".join(f"{e['type']}: {e['message']}" for e in errors)[:1000],
            # one list of task ids per DAG reported with that dag_id (there must be one)
            "dags": {d["dag_id"]: [sorted(x["task_ids"]) for x in result["dags"] if x["dag_id"] == d["dag_id"]]
                     for d in result["dags"]},
        }
    for file, lines in junit_internal_errors(project / "junit.xml").items():
        internal[file] += lines
    return verdicts, internal


def junit_internal_errors(path: Path) -> dict[str, list[str]]:
    """Items that errored, or failed with anything but a verdict on the file (which starts with the
    file's path: a parse failure, a policy violation), in a JUnit XML report: one line per file and
    message, with the number of items, keyed by file."""
    if not path.exists():
        return {"": [f"{path.name} was not written"]}
    found: Counter = Counter()
    for case in ET.parse(path).getroot().iter("testcase"):
        for child in case:
            message = child.get("message", "")
            text = f"{message}\n{child.text or ''}".strip()
            # a verdict on the user's file (a parse failure, a policy violation) starts with its path
            if child.tag == "error" or (child.tag == "failure" and (
                    "bug in pytest-astro" in text or not message.startswith("dags/case_"))):
                where = re.search(r"case_\d+", case.get("classname", "")) or re.search(r"case_\d+", text)
                last = message.splitlines()[0] if message else text.splitlines()[-1] if text else ""
                found[(f"dags/{where.group(0)}.py" if where else "", f"{child.tag}: {last}"[:600])] += 1
    out: dict[str, list[str]] = defaultdict(list)
    for (file, line), n in found.items():
        out[file].append(f"item {line} ({n} items)")
    return out


def run_lint(project: Path, fix: bool = False, python: str = sys.executable) -> list[dict]:
    """``pytest-astro lint --format json`` findings on the DAG folder (after fixing, with ``fix``)."""
    cmd = [python, "-m", "pytest_astro", "lint", "--format", "json", "--no-cache", "--exit-zero", "dags"]
    if fix:
        cmd.insert(4, "--fix")
    proc = subprocess.run(cmd, cwd=project, text=True, capture_output=True, env=clean_env(), timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"pytest-astro lint exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout or "[]")


@dataclass
class Outcome:
    """One case's verdicts and every disagreement found on it."""

    name: str
    constructs: list[str]
    stock: dict
    ours: dict
    disagreements: list[str] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    internal: list[str]  # errors of the run itself, not of one file
    fixed: int = 0  # files `lint --fix` changed (each judged by stock again)

    def disagreements(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.disagreements]

    def counts(self) -> Counter:
        return Counter(c for o in self.outcomes for c in o.constructs)


def verdict_text(v: dict) -> str:
    if not v.get("ok"):
        return f"fails: {v.get('text') or v.get('error')}"[:600]
    parts = []
    for dag_id, tasks in sorted(v["dags"].items()):
        # stock: one list of task ids per dag_id; ours: one per DAG made with that dag_id
        sizes = [len(t) for t in tasks] if tasks and isinstance(tasks[0], list) else [len(tasks)]
        parts.append(f"{dag_id!r} ({'/'.join(map(str, sizes))} tasks)")
    return "passes, DAGs " + (", ".join(parts) or "none")


def refused(verdict: dict) -> list[str]:
    """The exception classes of every error stock recorded on the file, sorted (a DagBag keeps only
    the last: of several DAGs it refuses in one file, the one it bagged last in a varying order)."""
    if verdict["ok"]:
        return []
    return sorted(verdict.get("refusals") or [verdict["error"]])


def compare(stock: dict, ours: dict) -> str | None:
    """Why ``ours`` disagrees with ``stock`` (None: they agree).

    A failing file: our errors include the class stock kept, and are exactly the errors stock
    recorded on the way (every DAG it refused, whichever it kept). A passing file: the same
    dag_ids, each reported once, with the task ids of a DAG stock bagged under that dag_id (of a
    dag_id made twice in one file, stock keeps either DAG, in a varying order).
    """
    if stock["ok"] != ours["ok"]:
        return "passed/failed"
    if not stock["ok"]:
        if stock["error"] not in ours["errors"]:
            return "exception class"
        return None if sorted(ours["errors"]) == refused(stock) else "refused DAGs"
    if set(stock["dags"]) != set(ours["dags"]):
        return "dag_ids"
    if any(len(reported) != 1 for reported in ours["dags"].values()):
        return "a dag_id reported twice"
    made = stock.get("made") or {dag_id: [tasks] for dag_id, tasks in stock["dags"].items()}
    if any(ours["dags"][dag_id][0] not in made.get(dag_id, []) for dag_id in stock["dags"]):
        return "task ids"
    return None


def write_project(root: Path, cases: list[Case]) -> list[Path]:
    """An Astro project with one DAG file per case, whose Dockerfile's runtime runs the installed
    Airflow (the lint's Airflow-3 rules and their fixes follow it)."""
    (root / "dags").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "Dockerfile").write_text(f"FROM {RUNTIME[airflow_major() >= 3]}\n")
    paths = []
    for i, case in enumerate(cases):
        path = root / "dags" / f"case_{i:04d}.py"
        path.write_bytes(case.render())
        paths.append(path)
    return paths


def run_batch(cases: list[Case], workdir: Path, home: Path, python: str = sys.executable,
              lint: bool = True) -> BatchResult:
    """Judge ``cases`` on both sides (in ``workdir``, which must not exist yet)."""
    project, fixed = workdir / "project", workdir / "fixed"
    paths = write_project(project, cases)
    changed: list[Path] = []
    if lint:
        shutil.copytree(project, fixed)
        run_lint(fixed, fix=True, python=python)
        changed = [fixed / "dags" / p.name for p in paths
                   if (fixed / "dags" / p.name).read_bytes() != p.read_bytes()]
    stock = run_stock(paths + changed, home, python)
    ours, internal = run_ours(project, python)
    findings = run_lint(project, python=python) if lint else []
    outcomes = []
    for case, path in zip(cases, paths):
        rel = f"dags/{path.name}"
        s = stock[str(path)]
        o = ours.get(rel, {"ok": True, "errors": [], "text": "not a DAG file", "dags": {}})
        outcome = Outcome(path.name, case.constructs(), s, o, internal=internal.get(rel, []))
        why = compare(s, o)
        if why:
            classes = f" (stock recorded {refused(s)}, ours {sorted(o['errors'])})" if why == "refused DAGs" else ""
            outcome.disagreements.append(f"parse ({why}): stock {verdict_text(s)}; ours {verdict_text(o)}{classes}")
        for f in findings:
            refusal = f["code"] in REFUSAL_CODES or "Airflow refuses" in f["message"]
            if Path(f["path"]).name == path.name and refusal and s["ok"]:
                outcome.disagreements.append(f"lint {f['code']} at line {f['line']} says Airflow refuses the "
                                             f"file ({f['message']}); stock {verdict_text(s)}")
        fixed_path = fixed / "dags" / path.name
        if fixed_path in changed:
            after = stock[str(fixed_path)]
            if after["ok"] != s["ok"] or refused(after) != refused(s):
                outcome.disagreements.append(f"lint --fix changed the stock verdict: before {verdict_text(s)}; "
                                             f"after {verdict_text(after)}")
        outcomes.append(outcome)
    return BatchResult(outcomes, internal.get("", []), len(changed))
