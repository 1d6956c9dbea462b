"""pytest items for DAG policies: one per DAG and policy (``dags/etl.py::etl_daily::tags``).

A ``DagNode`` collector per DAG (named by dag_id) holds one ``PolicyItem`` per selected policy
(named by the policy's name, with its code as a keyword), so node ids, ``-k tags``, ``-k DAG002``,
``--lf`` and JUnit reports work as for any test. Policies run on plain data; nothing here imports
Airflow.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_astro.config import ConfigError
from pytest_astro.nodes import InDagFile
from pytest_astro.policies.api import PolicyContext, Violation, validate_policy
from pytest_astro.policies.config import PolicyConfig, inline_exemptions
from pytest_astro.reporting_plugin import describe, set_property
from pytest_astro.results import DagSummary, FileResult

_RUN = pytest.StashKey["PolicyRun"]()
_CYCLE = re.compile(r"Cycle detected in (?:Dag|DAG):? (?P<dag_id>.+?)\. Faulty task: (?P<task>.+)$")


class PolicyFailed(Exception):
    """Raised by a policy item; its text is the whole report."""


class PolicyRun:
    """Per-session state: the policies (built-in and from plugins), the config, project-wide data."""

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
                    pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)
                if policy.code in seen:
                    pytest.exit(f"pytest_astro_dag_policies: two policies have the code {policy.code} "
                                f"({policy!r} and the one from {seen[policy.code]}); codes must be unique",
                                returncode=pytest.ExitCode.USAGE_ERROR)
                seen[policy.code] = repr(policy)
                policies.append(policy)
        self.policies = policies
        settings = astro.settings
        self.error: str | None = None
        try:
            self.policy_config = PolicyConfig.load(settings.table.get("policies", {}) or {}, policies,
                                                   settings.root / "pyproject.toml")
        except ConfigError as exc:
            self.error = str(exc)
            self.policy_config = PolicyConfig(selected=[], options={}, exemptions=[])
        self._values: tuple[set[str], set[str]] | None = None
        self._check_dag_hooks: bool | None = None
        self._lines: dict[str, list[str]] = {}
        self._inline: dict[tuple[str, int | None], list] = {}

    def runs_user_code(self, policy: Any) -> bool:
        """Whether checking ``policy`` runs code of the user's: a policy from a plugin or conftest.py,
        or a ``pytest_astro_check_dag`` hook. A built-in policy on its own runs only ours; its item
        may then skip pytest's capture (protocol.py). Asked when the items run: every conftest.py
        has loaded by then."""
        if self._check_dag_hooks is None:
            self._check_dag_hooks = bool(self.config.hook.pytest_astro_check_dag.get_hookimpls())
        return self._check_dag_hooks or type(policy).__module__ != "pytest_astro.policies.builtin"

    def all_dags(self) -> dict[str, list[DagSummary]]:
        # asked once per policy item: rebuilt only when the results change (O(files) each time
        # made 1,000 files x 10 policies cost ~8 s)
        results = self.astro.results or {}
        key = (id(results), len(results))
        if getattr(self, "_all_dags_key", None) != key:
            where: dict[str, list[DagSummary]] = defaultdict(list)
            for result in results.values():
                for dag in result.dags:
                    where[dag.dag_id].append(dag)
            self._all_dags, self._all_dags_key = where, key
        return self._all_dags

    def values(self) -> tuple[set[str], set[str]]:
        """(pools, connection ids) the project defines."""
        if self._values is None:
            values = self.astro.values  # read once by the session (pytest_astro.values)
            self._values = set(values.pools), set(values.connections)
        return self._values

    def inline_exemptions(self, context: PolicyContext, dag: DagSummary) -> list:
        """The ``# pytest-astro: ignore[...]`` comments that apply to ``dag``: read once per DAG
        (ten policy items each read and scanned the whole file: ~10% of a run from the cache)."""
        key = (dag.file, dag.line)
        found = self._inline.get(key)
        if found is None:
            lines = self._lines.get(dag.file)
            if lines is None:
                lines = self._lines[dag.file] = context.source_lines(dag.file)
            found = self._inline[key] = inline_exemptions(lines, dag.line, _decorator_lines(lines, dag.line or 0))
        return found

    def context(self, policy: Any, result: FileResult) -> PolicyContext:
        pools, connections = self.values()
        return PolicyContext(options=self.policy_config.options.get(policy.code, {}), result=result,
                             all_dags=self.all_dags(), project=self.astro.project, pools=pools,
                             connections=connections, config=self.config)


def _run(dag_file: Any) -> PolicyRun:
    config = dag_file.config
    run = config.stash.get(_RUN, None)
    if run is None:
        run = config.stash[_RUN] = PolicyRun(config, dag_file.astro)
    return run


def _refused_dags(result: FileResult) -> list[DagSummary]:
    """DAGs Airflow refused while bagging (a cycle): a stand-in summary so ``no_cycles`` reports it."""
    out = []
    for error in result.errors:
        m = _CYCLE.search(error.message) if error.kind == "dag" else None
        if m:
            out.append(DagSummary(dag_id=m.group("dag_id"), file=result.file, line=error.line,
                                  checks={"cycle": f"{error.type}: {error.message}", "refused": True}))
    return out


def policy_items(dag_file: Any, result: FileResult) -> Iterator[Any]:
    """Items for the policies that apply to the DAGs of ``result``, children of ``dag_file``."""
    run = _run(dag_file)
    if run.error:  # reported once, as a collection error of the first DAG file
        error, run.error = run.error, None
        raise dag_file.CollectError(f"pytest-astro policies: {error}")
    if not run.policy_config.selected:
        return
    for dag in result.dags:
        yield DagNode.from_parent(dag_file, name=dag.dag_id, dag=dag, result=result, run=run,
                                  policies=run.policy_config.selected)
    for dag in _refused_dags(result):
        policies = [p for p in run.policy_config.selected if p.code == "DAG005"]
        if policies:
            yield DagNode.from_parent(dag_file, name=dag.dag_id, dag=dag, result=result, run=run, policies=policies)


class DagNode(InDagFile, pytest.Collector):
    """One DAG of a DAG file; its children are the policy items."""

    def __init__(self, *, dag: DagSummary, result: FileResult, run: PolicyRun, policies: list, **kwargs):
        super().__init__(**kwargs)
        self.dag, self.result, self.run, self.policies = dag, result, run, policies

    def collect(self):
        for policy in self.policies:
            if policy.code == "DAG900" and "cluster_policy" not in self.dag.checks:
                continue  # the project has no airflow_local_settings.py
            yield PolicyItem.from_parent(self, name=policy.name, policy=policy)

    def reportinfo(self):
        return self.path, (self.dag.line - 1) if self.dag.line else None, self.dag.dag_id


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


class PolicyItem(InDagFile, pytest.Item):
    """Passes when the policy finds nothing wrong with the DAG (or the DAG is exempt, then: skipped)."""

    def __init__(self, *, policy: Any, **kwargs):
        super().__init__(**kwargs)
        self.policy = policy
        self.extra_keyword_matches.add(policy.code)
        self.dag: DagSummary = self.parent.dag
        self.user_properties.append(("policy", policy.code))
        describe(self, dag_file=self.dag.file, line=self.dag.line, dag_id=self.dag.dag_id)

    @property
    def runs_user_code(self) -> bool:
        return self.parent.run.runs_user_code(self.policy)

    def _where(self, violation: Violation | None = None) -> str:
        file = (violation.file if violation and violation.file else None) or self.dag.file
        line = violation.line if violation and violation.line else (self.dag.line if file == self.dag.file else None)
        return f"{file}:{line}" if line else file

    def runtest(self) -> None:
        run: PolicyRun = self.parent.run
        dag, policy = self.dag, self.policy
        context = run.context(policy, self.parent.result)
        inline = run.inline_exemptions(context, dag)
        known = {p.code for p in run.policies}
        for ex in inline:
            unknown = [c for c in ex.codes if not any(k.startswith(c) for k in known)]
            applies = any(policy.code.startswith(c) for c in ex.codes) or unknown
            if ex.error and applies:
                raise PolicyFailed(f"{dag.file}:{ex.line}: `# pytest-astro: ignore[...]` {ex.error}")
            if unknown:
                raise PolicyFailed(f"{dag.file}:{ex.line}: `# pytest-astro: ignore[...]` names unknown code(s) "
                                   f"{', '.join(unknown)}; known codes: {', '.join(sorted(known))}")
        violations = list(policy.check(dag, context) or [])
        for extra in self.config.hook.pytest_astro_check_dag(dag=dag, policy=policy, context=context):
            violations.extend(extra or [])
        if not violations:
            return
        for ex in inline:
            if any(policy.code.startswith(c) for c in ex.codes):
                pytest.skip(f"{policy.code} exempt at {dag.file}:{ex.line}: {ex.reason}")
        for ex in run.policy_config.exemptions:
            if ex.covers(policy.code, dag.dag_id, dag.file):
                pytest.skip(f"{policy.code} exempt ({ex.where}): {ex.reason}")
        text = [f"{self._where(v)}: {policy.code} {policy.name}: {v.render()}" for v in violations]
        if policy.hint:
            text.append(f"hint: {policy.hint}")
        if dag.line:
            text.append(f"(or exempt the DAG: `# pytest-astro: ignore[{policy.code}] <reason>` on "
                        f"{dag.file}:{dag.line}, or [[tool.pytest-astro.policies.exempt]] in pyproject.toml)")
        # CI annotations point at the first violation when it is in the DAG's own file
        first = violations[0]
        if first.line and (first.file or dag.file) == dag.file:
            set_property(self, "line", first.line)
        set_property(self, "failure_class", "policy")
        raise PolicyFailed("\n".join(text))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, PolicyFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        line = (self.dag.line - 1) if self.dag.line else None
        return self.path, line, f"{self.policy.code} {self.dag.dag_id}::{self.name} {self.dag.file}"
