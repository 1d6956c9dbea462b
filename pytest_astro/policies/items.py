"""DAG policies inside a DAG file's item: every finding of every DAG of the file, ruff-style.

``PolicyRun`` holds what a session's policy checks share: the policies (built-in and from
plugins or any ``conftest.py``), the ``[tool.pytest-astro.policies]`` configuration and the
project-wide data (every DAG by dag_id, pools, connections). ``file_findings`` checks one parsed
DAG file with it and returns plain data: the findings (exempted ones marked with their reason) and
the errors of components that raised (a policy, a ``pytest_astro_check_dag`` hook, our own code).
Nothing here imports Airflow.
"""

from __future__ import annotations

import inspect
import re
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_astro.config import ConfigError
from pytest_astro.policies.api import PolicyContext, Violation, validate_policy
from pytest_astro.policies.options import PolicyConfig, inline_exemptions
from pytest_astro.policies.snapshots import UPDATE_OPTION
from pytest_astro.results import INTERNAL_NOTICE, DagSummary, FileResult
from pytest_astro.user_errors import usage_error

BUG = INTERNAL_NOTICE  # the last words of every internal error's headline
# what a file's parse failure reports already (a dag_id defined twice, a cycle): not found again
FOLLOW_FROM_PARSE = ("DAG004", "DAG005")
# what every inline exemption comment holds (config.INLINE's fixed part)
MARKER = "pytest-astro:"
# the rule of a finding about an exemption comment itself (not a policy's)
EXEMPTION_RULE = "exemption"


@dataclass
class Finding:
    """One thing a policy found in one DAG: where, which policy, what, and how to fix it."""

    file: str
    line: int | None
    code: str  # the policy's code, or EXEMPTION_RULE for a malformed exemption comment
    name: str  # the policy's name
    dag_id: str
    message: str
    hint: str = ""
    exempt: str = ""  # "<where>: <reason>" when an exemption covers it

    def text(self) -> str:
        """``dags/etl.py:12: DAG002 etl_daily: the DAG has 0 tag(s)... (hint: add tags=[...])``; an
        exempted one ends with ``[exempt at <where>: <reason>]`` instead of the hint."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        tail = f" [exempt at {self.exempt}]" if self.exempt else f" (hint: {self.hint})" if self.hint else ""
        return f"{where}: {self.code} {self.dag_id}: {self.message}{tail}"


#: ``Finding.text()`` read back (CI reports work from test reports, which carry the text)
FINDING_LINE = re.compile(r"^(?P<file>.+?):(?:(?P<line>\d+):)? (?P<code>\S+) (?P<dag_id>\S+): (?P<message>.*)$")


@dataclass
class ComponentError:
    """A component raised while checking a file: one of ours (a bug) or a team's policy or hook."""

    component: str  # "policy DAG005 no_cycles", "policy TEAM001 no_tmp (from conftest.py)", ...
    dag: str  # "etl_daily (dags/etl.py:12)", or the file
    ours: bool
    trace: str  # the traceback, from the component's own frames down

    def text(self) -> str:
        if self.ours:
            head = f"pytest-astro: internal error in {self.component} on {self.dag}: {BUG}"
        else:
            head = (f"{self.component} raised an exception on {self.dag} (an error of that policy, not a "
                    f"finding: fix the policy or report it to its authors)")
        return f"{head}\n{self.trace.rstrip()}"


@dataclass
class FileFindings:
    """What the policies say about one DAG file."""

    findings: list[Finding] = field(default_factory=list)  # exempted ones included (``exempt`` set)
    errors: list[ComponentError] = field(default_factory=list)

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if not f.exempt]

    @property
    def exempted(self) -> list[Finding]:
        return [f for f in self.findings if f.exempt]


def is_ours(obj: Any) -> bool:
    """Whether ``obj`` (a policy, a hook's function) is pytest-astro's own code."""
    module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "") or ""
    return module == "pytest_astro" or module.startswith("pytest_astro.")


def trace_of(exc: BaseException) -> str:
    """The exception's traceback from the component's own frames down: none of pytest's runner (the
    exception was caught below it), nor the frames of this module that called the component."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _origin(policy: Any, config: pytest.Config) -> str:
    """Where a policy's class is defined, relative to the rootdir (``tests/conftest.py``), else its module."""
    try:
        path = Path(inspect.getsourcefile(type(policy)) or "")
        return path.relative_to(config.rootpath).as_posix() if path.is_absolute() else type(policy).__module__
    except (TypeError, ValueError):
        return type(policy).__module__


class PolicyRun:
    """Per-session state: the policies (built-in and from plugins), the config, project-wide data.

    Built once collection is over (``AstroSession.pytest_collection_modifyitems``): every
    ``conftest.py`` pytest loads for the run, ``tests/conftest.py`` included, has registered its
    ``pytest_astro_dag_policies`` by then."""

    def __init__(self, config: pytest.Config, astro: Any):
        from pytest_astro.policies.builtin import BUILTIN_POLICIES

        self.config = config
        self.astro = astro
        policies = list(BUILTIN_POLICIES)
        seen = {p.code: "pytest-astro" for p in policies}
        for impl_result in config.hook.pytest_astro_dag_policies(config=config):
            for policy in impl_result or []:
                problem = validate_policy(policy, "pytest_astro_dag_policies")
                if problem:
                    raise usage_error(problem)
                if policy.code in seen:
                    raise usage_error(
                        f"pytest_astro_dag_policies: two policies have the code {policy.code} ({policy!r} and the "
                        f"one from {seen[policy.code]})", fix="codes must be unique")
                seen[policy.code] = repr(policy)
                policies.append(policy)
        self.policies = policies
        self.known = {p.code for p in policies}
        settings = astro.settings
        try:
            self.policy_config = PolicyConfig.load(settings.table.get("policies", {}) or {}, policies,
                                                   settings.root / "pyproject.toml")
        except ConfigError as exc:
            raise usage_error(exc) from None
        # called one by one (in pluggy's order), so that an implementation that raises is named
        self.check_dag_hooks = [impl for impl in reversed(config.hook.pytest_astro_check_dag.get_hookimpls())
                                if not (getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False))]
        self._values: tuple[set[str], set[str]] | None = None
        self._of_results: dict[str, tuple[tuple, Any]] = {}  # name -> (the results' identity, value)
        self._origins: dict[type, str] = {}
        # what policies/findings_cache.py may keep per file: our own policies, unless a check_dag
        # hook may add to any policy's violations; DAG010 reads the snapshot folder when there is one
        self.snapshots = settings.snapshots_path.is_dir() or bool(config.getoption(UPDATE_OPTION, default=False))
        self.cached_codes = set() if self.check_dag_hooks else {
            p.code for p in self.policy_config.selected if is_ours(p) and not (p.code == "DAG010" and self.snapshots)}
        self.live = [p for p in self.policy_config.selected if p.code not in self.cached_codes]
        self._findings: Any = None  # FindingsCache, or False when nothing is cached (findings_cache)

    @property
    def runs_user_code(self) -> bool:
        """Whether checking a file runs code of the user's: a selected policy from a plugin or a
        conftest.py, or a ``pytest_astro_check_dag`` hook. Built-in policies alone run only ours;
        the file's item may then skip pytest's capture (direct_run.py)."""
        return bool(self.check_dag_hooks) or not all(is_ours(p) for p in self.policy_config.selected)

    def _project_wide(self, name: str, build) -> Any:
        """``build(results)`` over every file's result; built again only when the results change."""
        results = self.astro.results or {}
        key = (id(results), len(results))
        kept = self._of_results.get(name)
        if kept is None or kept[0] != key:
            kept = self._of_results[name] = (key, build(results))
        return kept[1]

    def all_dags(self) -> dict[str, list[DagSummary]]:
        """Every parsed DAG by dag_id (asked once per file)."""
        def build(results):
            where: dict[str, list[DagSummary]] = defaultdict(list)
            for result in results.values():
                if result.ok:
                    for dag in result.dags:
                        where[dag.dag_id].append(dag)
            return where

        return self._project_wide("all_dags", build)

    def dag_places(self) -> dict[str, list[list]]:
        """Where each dag_id is defined, ``[[file, line], ...]`` over the parsed files that imported
        (what ``all_dags`` holds), from the results' outlines: DAG004's cross-file input."""
        def build(results):
            where: dict[str, list[list]] = defaultdict(list)
            for result in results.values():
                if result.ok:
                    for dag_id, file, line in result.dag_refs():
                        where[dag_id].append([file, line])
            return where

        return self._project_wide("dag_places", build)

    @property
    def findings_cache(self):
        """The project's ``FindingsCache`` for this run's policy setup (None when nothing is cached:
        see ``cached_codes``); saved when the session finishes."""
        if self._findings is None:
            self._findings = False
            if self.cached_codes:
                from pytest_astro.policies.findings_cache import FindingsCache, run_key

                pools, connections = self.values()
                modules = [type(p).__module__ for p in self.policy_config.selected if p.code in self.cached_codes]
                key = run_key(self.policy_config, sorted(self.cached_codes), self.known, pools, connections,
                              self.snapshots, modules)
                self._findings = FindingsCache(self.astro.project.root, key)
                self.config.pluginmanager.register(_SaveFindings(self._findings))
        return self._findings or None

    def file_key(self, result: FileResult) -> str | None:
        """The key of ``result``'s findings in the cache (None: not cacheable, see findings_cache)."""
        from pytest_astro.policies.findings_cache import file_key

        cache_key = result.cache_key()
        if cache_key is None or not result.ok:
            return None
        places = self.dag_places()
        duplicates = [[dag_id, places[dag_id]] for dag_id, _, _ in result.dag_refs() if len(places.get(dag_id, ())) > 1]
        return file_key(cache_key, duplicates)

    def values(self) -> tuple[set[str], set[str]]:
        """(pools, connection ids) the project defines."""
        if self._values is None:
            values = self.astro.values  # read once by the session (pytest_astro.values)
            self._values = set(values.pools), set(values.connections)
        return self._values

    def context(self, policy: Any, result: FileResult) -> PolicyContext:
        pools, connections = self.values()
        return PolicyContext(options=self.policy_config.options.get(policy.code, {}), result=result,
                             all_dags=self.all_dags(), project=self.astro.project, pools=pools,
                             connections=connections, config=self.config)

    def origin(self, policy: Any) -> str:
        kind = type(policy)
        if kind not in self._origins:
            self._origins[kind] = _origin(policy, self.config)
        return self._origins[kind]

    def describe(self, policy: Any) -> str:
        """``policy DAG005 no_cycles`` (ours), ``policy TEAM001 no_tmp (from conftest.py)`` (a team's)."""
        name = f"policy {policy.code} {policy.name}"
        return name if is_ours(policy) else f"{name} (from {self.origin(policy)})"


class _SaveFindings:
    """Writes the findings cache once the session is over."""

    def __init__(self, cache: Any):
        self.cache = cache

    def pytest_sessionfinish(self) -> None:
        self.cache.save()


def _decorator_lines(lines: list[str], dag_line: int) -> list[int]:
    """For ``my_dag()`` on the DAG's line: the lines of ``@dag(...)`` above ``def my_dag``."""
    m = re.match(r"\s*(?:\w+\s*=\s*)?(\w+)\(", lines[dag_line - 1]) if 0 < dag_line <= len(lines) else None
    if not m:
        return []
    for i, text in enumerate(lines):
        if re.match(rf"\s*(?:async\s+)?def\s+{re.escape(m.group(1))}\s*\(", text):
            out, j = [], i - 1
            while j >= 0 and (lines[j].lstrip().startswith(("@", "#")) or lines[j].strip().startswith(")")
                              or "=" in lines[j] and lines[j].startswith((" ", "\t"))):
                out.append(j + 1)
                j -= 1
            return out
    return []


def _where(dag: DagSummary) -> str:
    return f"{dag.dag_id} ({dag.file}:{dag.line})" if dag.line else f"{dag.dag_id} ({dag.file})"


class _Checker:
    """Checks the DAGs of one file; each component's exception is recorded, never raised."""

    def __init__(self, run: PolicyRun, result: FileResult, stored: list | None = None):
        self.run, self.result = run, result
        self.out = FileFindings()
        self._lines: dict[str, list[str]] = {}
        self._contexts: dict[str, PolicyContext] = {}
        # the cached findings of run.cached_codes, by (DAG index, code); None: they are checked now
        self.stored: dict[tuple[int, str], list[Finding]] | None = None
        if stored is not None:
            self.stored = defaultdict(list)
            for index, *fields in stored:
                self.stored[index, fields[2]].append(Finding(*fields))
        self.record: list[list] = []  # what is checked now of run.cached_codes, to store: [index, *fields]

    def guarded(self, component: str, dag: str, ours: bool, func, *args):
        try:
            return func(*args)
        except Exception as exc:  # a component's bug must not hide the other DAGs' findings
            self.out.errors.append(ComponentError(component, dag, ours, trace_of(exc)))
            return None

    def inline(self, dag: DagSummary) -> list:
        """The ``# pytest-astro: ignore[...]`` comments that apply to ``dag`` (the file read once; a
        file without the marker is not looked at further)."""
        lines = self._lines.get(dag.file)
        if lines is None:
            context = PolicyContext(options={}, result=self.result, all_dags={}, project=self.run.astro.project)
            lines = context.source_lines(dag.file)
            lines = self._lines[dag.file] = lines if any(MARKER in line for line in lines) else []
        if not lines:
            return []
        return inline_exemptions(lines, dag.line, _decorator_lines(lines, dag.line or 0))

    def context(self, policy: Any) -> PolicyContext:
        """The policy's context for this file (made once per policy, shared by the file's DAGs)."""
        context = self._contexts.get(policy.code)
        if context is None:
            context = self._contexts[policy.code] = self.run.context(policy, self.result)
        return context

    def add(self, index: int, finding: Finding, cached: bool) -> None:
        self.out.findings.append(finding)
        if cached:
            self.record.append([index, *vars(finding).values()])

    def dag(self, dag: DagSummary, index: int) -> None:
        """Check the file's ``index``-th DAG: the cached findings where there are (``stored``)."""
        run, stored = self.run, self.stored
        inline = self.guarded("the inline exemption reader", _where(dag), True, self.inline, dag) or []
        if stored is not None:
            self.out.findings += stored.get((index, EXEMPTION_RULE), [])
        for ex in inline if stored is None else ():
            unknown = [c for c in ex.codes if not any(k.startswith(c) for k in run.known)]
            if ex.error or unknown:
                message = (f"`# pytest-astro: ignore[...]` {ex.error}" if ex.error else
                           f"`# pytest-astro: ignore[...]` names unknown code(s) {', '.join(unknown)}; known codes: "
                           f"{', '.join(sorted(run.known))}")
                self.add(index, Finding(dag.file, ex.line, EXEMPTION_RULE, "exemption", dag.dag_id, message), True)
        usable = [ex for ex in inline if not ex.error]
        for policy in run.policy_config.selected:
            if policy.code == "DAG900" and "cluster_policy" not in dag.checks:
                continue  # the project has no airflow_local_settings.py
            if not self.result.ok and policy.code in FOLLOW_FROM_PARSE:
                continue  # the file's parse failure (a duplicate dag_id, a cycle) says it already
            cached = policy.code in run.cached_codes
            if stored is not None and cached:
                self.out.findings += stored.get((index, policy.code), [])
                continue
            for v in self.policy(policy, dag):
                self.add(index, self.finding(policy, dag, v, usable), cached)

    def policy(self, policy: Any, dag: DagSummary) -> list[Violation]:
        run = self.run
        context = self.guarded("the policy context", _where(dag), True, self.context, policy)
        if context is None:
            return []
        found = self.guarded(run.describe(policy), _where(dag), is_ours(policy),
                             lambda: list(policy.check(dag, context) or []))
        violations = list(found or [])
        for impl in run.check_dag_hooks:
            name = f"the pytest_astro_check_dag hook of {impl.plugin_name}"
            extra = self.guarded(name, _where(dag), is_ours(impl.function),
                                 lambda: list(impl.function(dag=dag, policy=policy, context=context) or []))
            violations.extend(extra or [])
        return violations

    def finding(self, policy: Any, dag: DagSummary, v: Violation, inline: list) -> Finding:
        file = v.file or dag.file
        line = v.line or (dag.line if file == dag.file else None)
        exempt = ""
        for ex in inline:
            if any(policy.code.startswith(c) for c in ex.codes):
                exempt = f"{dag.file}:{ex.line}: {ex.reason}"
                break
        else:
            for ex in self.run.policy_config.exemptions:
                if ex.covers(policy.code, dag.dag_id, dag.file):
                    exempt = f"{ex.where}: {ex.reason}"
                    break
        return Finding(file, line, policy.code, policy.name, dag.dag_id, v.render(), policy.hint, exempt)


def file_findings(run: PolicyRun, result: FileResult) -> FileFindings:
    """The findings of the selected policies on every DAG of ``result``: the DAGs a file defined
    (a file with a duplicate dag_id or a cyclic DAG defines the others), but what its parse
    failure reports already (``FOLLOW_FROM_PARSE``); a file that did not import defines none."""
    if not run.policy_config.selected:
        return FileFindings()
    cache = run.findings_cache
    key = run.file_key(result) if cache is not None else None
    stored = cache.get(result.file, key) if key is not None else None
    if stored is not None and not run.live:  # nothing to check: a cached result's DAGs stay undecoded
        return FileFindings(findings=[Finding(*fields) for _, *fields in stored])
    checker = _Checker(run, result, stored)
    dags = checker.guarded("the parse cache (reading the file's DAGs)", result.file, True, lambda: result.dags) or []
    for index, dag in enumerate(dags):
        checker.dag(dag, index)
    if key is not None and stored is None and not checker.out.errors:
        cache.put(result.file, key, checker.record)
    return checker.out


def render_findings(found: FileFindings) -> str:
    """The failure text: the findings, one per line, then the exempted ones with their reasons."""
    lines = [f.text() for f in found.failing]
    if lines:
        lines.append("(to exempt a DAG: `# pytest-astro: ignore[CODE] <reason>` on its line, or "
                     "[[tool.pytest-astro.policies.exempt]] in pyproject.toml)")
    lines += [f"exempted: {f.text()}" for f in found.exempted]
    return "\n".join(lines)
