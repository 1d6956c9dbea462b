"""Run the suite in a subprocess without deploy credentials, then judge its report.

The suite is ``python -m pytest --astro-dags`` (the project's own tests are collected too), or the
``suite`` command of ``[tool.pytest-astro.deploy]``, plus ``suite-args``. The gate passes
``--astro-report=PATH`` (or substitutes ``{report}`` where the command has it) and reads the JSON
report the plugin writes there: ``{"files": [{"file", "ok", ...}], "parsed", "failed",
"tests": {"passed", "failed", "errors", "skipped", "total"}}``.

A deploy is allowed only when the process exited 0, the report exists, at least one test passed,
no DAG file failed to parse, and every DAG file of the project is in the report.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PYTEST_EXIT = {1: "tests failed", 2: "the run was interrupted", 3: "pytest hit an internal error",
                4: "pytest was called wrongly (usage error)", 5: "no tests were collected"}


@dataclass
class SuiteResult:
    command: list[str]
    exit_code: int
    duration: float
    report: dict | None = None
    problems: list[str] = field(default_factory=list)  # why not to deploy; empty: deploy
    leftovers: list[str] = field(default_factory=list)  # processes the suite left running, killed

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def tests(self) -> dict:
        return dict((self.report or {}).get("tests") or {})

    def to_dict(self) -> dict:
        report = self.report or {}
        return {"command": self.command, "exit_code": self.exit_code,
                "duration_s": round(self.duration, 3),
                "tests": self.tests, "dag_files_parsed": report.get("parsed"),
                "dag_files_failed": report.get("failed"), "ok": self.ok, "problems": self.problems,
                "leftover_processes_killed": self.leftovers}


def build_command(suite: Sequence[str] | None, args: Sequence[str], report: Path) -> list[str]:
    """The suite's argv: ``{python}`` and ``{report}`` substituted; ``--astro-report`` added if
    absent."""
    base = list(suite) if suite else ["{python}", "-m", "pytest", "--astro-dags"]
    cmd = [a.replace("{python}", sys.executable).replace("{report}", str(report))
           for a in (*base, *args)]
    if not any("{report}" in a for a in (*base, *args)):
        cmd.append(f"--astro-report={report}")
    return cmd


def run(command: list[str], cwd: Path, env: Mapping[str, str], echo: Callable[[str], None],
        report_path: Path, expected_dag_files: Sequence[str] = ()) -> SuiteResult:
    """Run the suite (its output goes line by line to ``echo``) and judge it."""
    report_path.unlink(missing_ok=True)
    start = time.monotonic()
    reaper = _become_subreaper()
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                errors="replace", bufsize=1, start_new_session=True)
    except OSError as exc:
        return SuiteResult(command, -1, 0.0, problems=[f"cannot start the suite {command[0]!r}: "
                                                       f"{exc}; check `suite` in "
                                                       "[tool.pytest-astro.deploy]"])
    assert proc.stdout is not None
    # a process the suite leaves behind may keep the pipe open: read it aside, stop when the suite
    # is over
    reader = threading.Thread(target=lambda: [echo(line.rstrip("\n")) for line in proc.stdout],
                              daemon=True)
    reader.start()
    code = proc.wait()
    leftovers = kill_leftovers(proc.pid) if reaper else []
    reader.join(timeout=10)
    result = SuiteResult(command, code, time.monotonic() - start, leftovers=leftovers)
    result.report = _read_report(report_path, result)
    judge(result, expected_dag_files)
    return result


def _become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux): a process the suite
    double-forks away is then still ours to find and stop, before the deploy (which holds the
    token) runs on the same machine."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # PR_SET_CHILD_SUBREAPER
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        name, rest = stat[stat.find("(") + 1:stat.rfind(")")], stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == pid and rest[0] != "Z":
            out.append((int(entry), name))
    return out


def kill_leftovers(suite_pid: int) -> list[str]:
    """Kill what the suite left running: its process group, then every process reparented to us
    (which a process that left the group becomes, under a subreaper). ``"PID (name)"`` of each."""
    killed: list[str] = []
    try:
        os.killpg(suite_pid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(50):
        found = _children(os.getpid())
        if not found:
            break
        for pid, name in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(f"{pid} ({name})")
            except OSError:
                pass
        for pid, _ in found:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
    # the group's members that were not our children (reparented elsewhere) are gone too: reap
    # zombies
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
    return sorted(set(killed))


def from_reports(paths: Sequence[Path], expected_dag_files: Sequence[str] = ()) -> SuiteResult:
    """Judge N shard reports (``pytest --astro-report`` of each shard) as one suite: every DAG file
    parsed exactly once across them, every shard's tests counted. No process is run."""
    result = SuiteResult([f"--reports {' '.join(map(str, paths))}"], 0, 0.0)
    files: list = []
    tests: dict[str, int] = {}
    seen: dict[str, str] = {}
    twice: list[str] = []
    reports: list[dict] = []
    for path in paths:
        report = _read_report(path, result)
        if report is None:
            if not any(str(path) in p for p in result.problems):
                result.problems.append(f"the shard report {path} does not exist: did that shard "
                                       "run?")
            continue
        reports.append(report)
        for entry in report.get("files") or []:
            if isinstance(entry, dict):
                name = str(entry.get("file"))
                if name in seen:
                    twice.append(f"{name} ({seen[name]} and {path})")
                seen[name] = str(path)
                files.append(entry)
        for key, value in (report.get("tests") or {}).items():
            if isinstance(value, int):
                tests[key] = tests.get(key, 0) + value
    if reports and all(isinstance(r.get("shard"), dict) for r in reports):
        # sharded runs: the reports together must come from one split, each shard once, each DAG
        # file parsed once, and no dag_id in two files (which no shard alone can see)
        from pytest_astro.sharding import check_shard_reports

        result.problems.extend(check_shard_reports(reports))
    elif twice:
        result.problems.append(f"DAG files parsed by more than one shard: {', '.join(twice[:5])}; "
                               "the shards must split the DAG files, not repeat them")
    if result.problems:
        return result
    result.report = {"files": files, "parsed": len(files),
                     "failed": sum(not f.get("ok", False) for f in files),
                     "tests": tests, "shards": [str(p) for p in paths]}
    judge(result, expected_dag_files)
    return result


def _read_report(path: Path, result: SuiteResult) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        result.problems.append(f"the suite's report {path} is not valid JSON ({exc}); the suite "
                               "may have crashed")
        return None
    if not isinstance(data, dict):
        result.problems.append(f"the suite's report {path} is not a JSON object")
        return None
    return data


def judge(result: SuiteResult, expected_dag_files: Sequence[str] = ()) -> None:
    """Fill ``result.problems`` with every reason not to deploy."""
    code = result.exit_code
    if code < 0:
        result.problems.append(f"the suite was killed by signal {-code} (crash, out of memory or "
                               "timeout)")
    elif code != 0:
        result.problems.append(f"the suite exited with status {code}"
                               + (f" ({_PYTEST_EXIT[code]})" if code in _PYTEST_EXIT else ""))
    report = result.report
    if report is None:
        if not any("report" in p for p in result.problems):
            result.problems.append("the suite wrote no report, so it crashed or did not run "
                                   "pytest-astro's plugin; keep `--astro-dags` in the suite "
                                   "command")
        return
    tests = report.get("tests") or {}
    passed = int(tests.get("passed") or 0)
    if passed < 1:
        result.problems.append(f"the suite ran no passing test ({_counts(tests)}); a gate that "
                               "tested nothing proves nothing: add tests or fix the collection")
    elif int(tests.get("failed") or 0) or int(tests.get("errors") or 0):
        if code == 0:
            result.problems.append(f"the report counts failures ({_counts(tests)})")
    files = report.get("files") or []
    failed = [f for f in files if isinstance(f, dict) and not f.get("ok", False)]
    if failed or int(report.get("failed") or 0):
        names = ", ".join(str(f.get("file"))
                          for f in failed[:5]) or f"{report.get('failed')} file(s)"
        result.problems.append(f"DAG files failed to parse: {names}")
    seen = {str(f.get("file")) for f in files if isinstance(f, dict)}
    missing = [f for f in expected_dag_files if f not in seen]
    if missing:
        result.problems.append(f"{len(missing)} DAG file(s) were not parsed by the suite (e.g. "
                               f"{missing[0]}); keep `--astro-dags` in the suite command and do "
                               "not deselect DAG files")


def _counts(tests: dict) -> str:
    keys = ("passed", "failed", "errors", "skipped")
    return ", ".join(f"{int(tests.get(k) or 0)} {k}" for k in keys)
