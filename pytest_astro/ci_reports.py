"""Report writers shared by ``pytest --astro-dags``, ``pytest-astro parse`` and ``pytest-astro
lint``.

One ``Problem`` (a failing parse item, policy item or lint finding, as plain data) and the formats
CI systems read:

- GitHub Actions workflow commands (``::error file=...,line=...,title=...::message``), shown as
  annotations on the pull request's diff, and a Markdown summary for ``$GITHUB_STEP_SUMMARY``;
- SARIF 2.1.0 (GitHub code scanning and other code-scanning UIs);
- GitLab Code Quality (the subset of the Code Climate format GitLab reads);
- the terminal table printed after a pytest run.

Paths in problems are relative to a *base* folder (the Astro project root, or the current folder
for lint); the CI formats rewrite them relative to the repository root, because that is what
GitHub and GitLab match against the diff when the Astro project lives in a subfolder.
Nothing here imports pytest or Airflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DOCS_URL = "https://github.com/pytest-astro/pytest-astro"

#: ParseError.kind and the other failure classes -> how the terminal and the summaries name them
CLASS_LABELS = {
    "syntax": "syntax error",
    "missing_module": "missing module",
    "metadata_db": "metadata DB access",
    "network": "network access",
    "missing_variable": "missing variable",
    "missing_connection": "missing connection",
    "timeout": "timeout",
    "memory": "memory limit",
    "crash": "crash",
    "exit": "sys.exit",
    "exception": "exception",
    "duplicate_dag_id": "duplicate dag_id",
    "dag": "DAG refused by Airflow",
    "policy": "policy",
    "airflow3": "Airflow 3 upgrade",
    "lint": "lint",
    "error": "error in a check",
}


def class_label(failure_class: str) -> str:
    return CLASS_LABELS.get(failure_class, failure_class.replace("_", " ") or "failed")


@dataclass
class Problem:
    """One thing to show a user in CI: where (``path`` relative to the base folder), what, why."""

    path: str
    line: int | None
    rule: str  # a stable id: "parse/syntax", a policy code ("DAG002"), a lint code ("AST001")
    title: str  # short, shown as the annotation's title
    message: str  # the full text (may span lines)
    failure_class: str = ""  # a ParseError.kind, "policy", "airflow3" or "lint"
    col: int | None = None
    end_line: int | None = None
    end_col: int | None = None
    dag_id: str = ""
    level: str = "error"  # "error" or "warning"
    rule_name: str = ""  # a short description of the rule, for SARIF's rules table

    def headline(self) -> str:
        """The message's first line, without a leading ``path:line:`` (CI shows the place
        already)."""
        first = next((line for line in self.message.splitlines() if line.strip()), self.title)
        m = re.match(r"(?:[^\s:]+:)(?:\d+:)?(?:\d+:)? (?=\S)", first)
        return first[m.end():] if m and first.startswith(self.path) else first


# ---------------------------------------------------------------------------------------- paths


def repo_root(base: Path, env: Mapping[str, str] | None = None) -> Path:
    """The repository root CI annotates against: ``GITHUB_WORKSPACE`` / ``CI_PROJECT_DIR`` when
    ``base`` is inside it, else the nearest folder upwards holding ``.git``, else ``base``."""
    env = os.environ if env is None else env
    base = Path(base).resolve()
    for name in ("GITHUB_WORKSPACE", "CI_PROJECT_DIR"):
        if env.get(name):
            root = Path(env[name]).resolve()
            if root == base or root in base.parents:
                return root
    for folder in (base, *base.parents):
        if (folder / ".git").exists():
            return folder
    return base


def repo_path(path: str, base: Path, root: Path | None = None) -> str:
    """``path`` (relative to ``base``, or absolute) relative to the repository root, POSIX style."""
    root = repo_root(base) if root is None else root
    full = Path(path) if Path(path).is_absolute() else Path(base) / path
    try:
        return Path(os.path.relpath(full.resolve(), root)).as_posix()
    except ValueError:  # pragma: no cover - another drive on Windows
        return Path(path).as_posix()


# ---------------------------------------------------------------------------------------- GitHub


def in_github_actions(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("GITHUB_ACTIONS", "").lower() == "true"


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (``file=``, ``title=``): also ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(problem: Problem, base: Path, root: Path | None = None) -> str:
    props = [f"file={escape_property(repo_path(problem.path, base, root))}"]
    if problem.line:
        props.append(f"line={problem.line}")
        if problem.end_line:
            props.append(f"endLine={problem.end_line}")
        if problem.col:
            props.append(f"col={problem.col}")
            if problem.end_col and (problem.end_line or problem.line) == problem.line:
                props.append(f"endColumn={problem.end_col}")
    props.append(f"title={escape_property(problem.title)}")
    command = "warning" if problem.level == "warning" else "error"
    return f"::{command} {','.join(props)}::{escape_data(problem.message)}"


def github_annotations(problems: Iterable[Problem], base: Path) -> list[str]:
    """One ``::error file=...`` workflow command per problem, paths relative to the repository
    root."""
    root = repo_root(base)
    return [github_annotation(p, base, root) for p in problems]


def append_step_summary(markdown: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append to the file named by ``$GITHUB_STEP_SUMMARY`` (the job's summary page), if any."""
    env = os.environ if env is None else env
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return path


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


# ---------------------------------------------------------------------------------------- SARIF


def sarif(problems: Sequence[Problem], base: Path, *, rules: Sequence[dict] = (),
          tool: str = "pytest-astro",
          information_uri: str = DOCS_URL) -> dict:
    """A SARIF 2.1.0 log with one run. ``rules``: known rules (``id`` first); the rules the problems
    use are added when missing, so ``ruleIndex`` always points at the right entry."""
    from pytest_astro import __version__

    table = [dict(r) for r in rules]
    index = {r["id"]: i for i, r in enumerate(table)}
    for p in problems:
        if p.rule not in index:
            index[p.rule] = len(table)
            table.append({"id": p.rule, "name": p.rule.replace("/", "-"),
                          "shortDescription": {"text": p.rule_name
                                               or class_label(p.failure_class or p.rule)}})
    root = repo_root(base)
    results = []
    for p in problems:
        location: dict = {"artifactLocation": {"uri": repo_path(p.path, base, root)}}
        if p.line:
            region: dict = {"startLine": p.line}
            if p.col:
                region["startColumn"] = p.col
            if p.end_line:
                region["endLine"] = max(p.end_line, p.line)
                if p.end_col:
                    region["endColumn"] = max(p.end_col, 1)
            location["region"] = region
        result = {
            "ruleId": p.rule, "ruleIndex": index[p.rule],
            "level": "warning" if p.level == "warning" else "error",
            "message": {"text": p.message or p.title},
            "locations": [{"physicalLocation": location}],
            "partialFingerprints": {"pytestAstro/v1": fingerprint(p, base, root)},
        }
        if p.dag_id or p.failure_class:
            result["properties"] = {k: v
                                    for k, v in (("dag_id", p.dag_id), ("failure_class",
                                                                        p.failure_class)) if v}
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": tool, "version": __version__,
                                      "informationUri": information_uri,
                                      "rules": table}},
                  "results": results}],
    }


# ---------------------------------------------------------------------------------------- GitLab

_GITLAB_SEVERITY = {"error": "major", "warning": "minor"}


def fingerprint(problem: Problem, base: Path, root: Path | None = None) -> str:
    """Stable across runs and line moves: rule, file, DAG and the message's first line."""
    key = "\0".join((problem.rule, repo_path(problem.path, base, root), problem.dag_id,
                     problem.headline()))
    return hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()


def gitlab_code_quality(problems: Sequence[Problem], base: Path) -> list[dict]:
    """GitLab Code Quality report (``artifacts: reports: codequality``): the Code Climate fields
    GitLab reads: description, check_name, fingerprint, severity, location.path/lines.begin."""
    root = repo_root(base)
    out, seen = [], set()
    for p in problems:
        fp = fingerprint(p, base, root)
        while fp in seen:  # GitLab drops entries whose fingerprints repeat
            fp = hashlib.md5((fp + "+").encode(), usedforsecurity=False).hexdigest()
        seen.add(fp)
        out.append({
            "type": "issue",
            "description": p.headline(),
            "check_name": p.rule,
            "fingerprint": fp,
            "severity": _GITLAB_SEVERITY.get(p.level, "major"),
            "location": {"path": repo_path(p.path, base, root), "lines": {"begin": p.line or 1}},
        })
    return out


# ---------------------------------------------------------------------------------------- formats

FORMATS = ("text", "json", "sarif", "github", "gitlab")


def render(problems: Sequence[Problem], fmt: str, base: Path, *, rules: Sequence[dict] = ()) -> str:
    """``problems`` in one of the machine formats (``json`` here is the problem list itself)."""
    if fmt == "sarif":
        return json.dumps(sarif(problems, base, rules=rules), indent=2)
    if fmt == "gitlab":
        return json.dumps(gitlab_code_quality(problems, base), indent=2)
    if fmt == "github":
        return "\n".join(github_annotations(problems, base))
    if fmt == "json":
        from dataclasses import asdict

        return json.dumps([asdict(p) for p in problems], indent=2)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------ parse results


def parse_problems(results: Iterable) -> list[Problem]:
    """One problem per error of each failed ``FileResult`` (what ``pytest-astro parse`` reports)."""
    from pytest_astro.parse.failure_text import headline, location, long_text

    out = []
    for result in sorted(results, key=lambda r: r.file):
        if result.ok:
            continue
        if not result.errors:
            out.append(Problem(path=result.file, line=None, rule="parse/exception",
                               title="failed to parse",
                               message=f"{result.file} failed to parse", failure_class="exception"))
            continue
        text = long_text(result)
        for error in result.errors:
            _, line = location(result, error)
            out.append(Problem(
                path=result.file, line=line, rule=f"parse/{error.kind}",
                title=f"{class_label(error.kind)}: {result.file}",
                message=headline(error) if len(result.errors) > 1 else text,
                failure_class=error.kind, dag_id=",".join(d.dag_id for d in result.dags)))
    return out


# ---------------------------------------------------------------------------------- the run summary


@dataclass
class RunSummary:
    """What the terminal table and the step summary show about one run."""

    files: int
    cached: int
    failed_files: int
    dags: int
    seconds: float
    workers: int
    airflow: str = ""
    processes: int = 0  # sandbox children forked
    rechecked: int = 0  # files parsed again alone after failing in a batch
    failures: Counter = field(default_factory=Counter)  # failure class -> failing items
    slowest: list[tuple[str, float]] = field(default_factory=list)
    tests: dict[str, int] = field(default_factory=dict)  # passed/failed/errors/skipped

    @classmethod
    def build(cls, results: Iterable, stats, workers: int, problems: Iterable[Problem] = (),
              tests: Mapping[str, int] | None = None, slowest: int = 3) -> RunSummary:
        results = list(results)
        timed = sorted((r for r in results if not r.cached and r.seconds), key=lambda r: -r.seconds)
        return cls(files=len(results), cached=getattr(stats, "cached", 0),
                   failed_files=sum(not r.ok for r in results),
                   dags=sum(r.dag_count() for r in results),
                   seconds=getattr(stats, "seconds", 0.0), workers=workers,
                   airflow=getattr(stats, "airflow", ""),
                   processes=getattr(stats, "processes", 0),
                   rechecked=getattr(stats, "rechecked", 0),
                   failures=Counter(p.failure_class or "exception" for p in problems),
                   slowest=[(r.file, r.seconds) for r in timed[:slowest]], tests=dict(tests or {}))

    def one_line(self) -> str:
        return (f"{self.files} DAG files ({self.cached} unchanged, from cache), "
                f"{self.failed_files} failed to parse, {self.dags} DAGs; parse {self.seconds:.2f} "
                f"s on {self.workers} workers"
                + (f", Airflow {self.airflow}" if self.airflow else ""))

    def _ordered_failures(self) -> list[tuple[str, int]]:
        order = list(CLASS_LABELS)
        return sorted(self.failures.items(),
                      key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0]))

    def table(self) -> list[str]:
        """The terminal table: the one-line summary, then counts, failures by class, slowest
        files."""
        rows: list[tuple[str, str]] = [
            ("files parsed", f"{self.files} ({self.cached} from cache)"),
            ("DAGs found", str(self.dags)),
        ]
        if self.processes:
            rows.append(("sandbox processes", f"{self.processes}" + (
                f" ({self.rechecked} file(s) re-checked alone after failing in a "
                "batch)" if self.rechecked else "")))
        failures = self._ordered_failures()
        rows.append(("failures", str(sum(n for _, n in failures)) if failures else "none"))
        rows += [(f"  {class_label(k)}", str(n)) for k, n in failures]
        if self.slowest:
            rows.append(("slowest to parse", ""))
            rows += [(f"  {file}", f"{seconds:.2f} s") for file, seconds in self.slowest]
        width = max(len(k) for k, _ in rows) + 2
        return [self.one_line()] + [f"{k.ljust(width)}{v}".rstrip() for k, v in rows]

    def markdown(self, problems: Sequence[Problem], base: Path, limit: int = 50) -> str:
        """The ``$GITHUB_STEP_SUMMARY`` section: counts, failures by class, the failures
        themselves."""
        root = repo_root(base)
        verdict = "failed" if self.failures else "passed"
        lines = [f"### pytest-astro: DAG checks {verdict}", "",
                 "| | |", "|---|---:|",
                 f"| DAG files | {self.files} ({self.cached} from cache) |",
                 f"| DAGs found | {self.dags} |",
                 f"| failed to parse | {self.failed_files} |"]
        lines += [f"| {_md_cell(class_label(k))} | {n} |" for k, n in self._ordered_failures()]
        if self.tests:
            lines.append(f"| tests | {self.tests.get('passed', 0)} passed, "
                         f"{self.tests.get('failed', 0)} failed, {self.tests.get('skipped', 0)} "
                         "skipped |")
        lines.append(f"| parse time | {self.seconds:.2f} s on {self.workers} workers"
                     + (f", Airflow {self.airflow}" if self.airflow else "") + " |")
        if problems:
            lines += ["", "| where | class | problem |", "|---|---|---|"]
            for p in list(problems)[:limit]:
                where = repo_path(p.path, base, root) + (f":{p.line}" if p.line else "")
                lines.append(f"| `{_md_cell(where)}` | {_md_cell(class_label(p.failure_class))} "
                             f"| {_md_cell(p.headline())[:300]} |")
            if len(problems) > limit:
                lines.append(f"\n{len(problems) - limit} more: see the job's log.")
        if self.slowest:
            lines += ["",
                      "Slowest to parse: " + ", ".join(f"`{f}` {s:.2f} s" for f, s in self.slowest)]
        return "\n".join(lines) + "\n"
