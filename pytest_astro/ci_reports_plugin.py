"""The pytest side of CI reporting (``pytest --astro-dags``): registered by ``session.py``.

Works from test reports, not items, so it gives the same output under pytest-xdist (the controller
sees every worker's reports). Our items describe themselves with ``user_properties`` (``dag_file``,
``line``, ``dag_id``, ``failure_class``, and one ``finding`` / ``exempted`` per policy finding, as
its ruff-style line), which also land in ``--junitxml`` as ``<property>``s. A DAG file's item is one
test, but the CI formats get one problem per finding, at its line.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from pytest_astro import ci_reports
from pytest_astro.ci_reports import Problem, RunSummary


def set_property(item: pytest.Item, name: str, value: Any) -> None:
    """Set (not append) one of ``item.user_properties``; ``None`` removes it."""
    item.user_properties[:] = [(k, v) for k, v in item.user_properties if k != name]
    if value is not None and value != "":
        item.user_properties.append((name, value))


def describe(item: pytest.Item, *, dag_file: str, line: int | None, dag_id: str = "") -> None:
    """The properties every DAG check item carries (JUnit ``<property>``s, annotations' source)."""
    set_property(item, "dag_file", dag_file)
    set_property(item, "line", line)
    set_property(item, "dag_id", dag_id)


@lru_cache(maxsize=1)  # asked once per test
def _junit_key():
    try:
        from _pytest.junitxml import xml_key  # what pytest's own record_xml_attribute uses
    except ImportError:  # pragma: no cover - a pytest without it: JUnit names stay pytest's
        return None
    return xml_key


class CIReports:
    """Collects failing DAG check items; writes the terminal table, annotations and report files."""

    def __init__(self, astro: Any):
        self.astro = astro
        self.config: pytest.Config = astro.config
        self.problems: list[Problem] = []
        self.internal_errors: list[str] = []  # our own bugs while reporting (printed at the end)
        self.exempted: list[str] = []  # policy findings an exemption covers, as their lines

    @property
    def base(self) -> Path:
        return self.astro.project.root

    # ------------------------------------------------------------------------------ reports

    @pytest.hookimpl(tryfirst=True)  # before junitxml's, so the testcase is named as below
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if "dag_file" not in props:
            return  # a user's test: not ours to describe
        if report.when == "setup":
            self._junit_name(report, props)
        if report.when == "call":
            self.exempted.extend(str(v) for k, v in report.user_properties if k == "exempted")
        if report.failed:
            try:
                self.problems.extend(self._problems(report))
            except Exception as exc:  # a bug here must not end the run: the item's outcome stands
                from pytest_astro.policies.items import BUG, trace_of

                self.internal_errors.append("pytest-astro: internal error in the CI reports on "
                                            f"{report.nodeid}: {BUG}\n{trace_of(exc)}")

    def _test_name(self, report: pytest.TestReport, props: dict) -> str:
        """``dags/x.py::astro``: the node id relative to the project root (not the rootdir)."""
        tail = report.nodeid.split("::", 1)[1] if "::" in report.nodeid else report.nodeid
        return f"{props['dag_file']}::{tail}"

    def _junit_name(self, report: pytest.TestReport, props: dict) -> None:
        key = _junit_key()
        xml = self.config.stash.get(key, None) if key is not None else None
        if xml is not None:
            xml.node_reporter(report).add_attribute("name", self._test_name(report, props))

    def _problems(self, report: pytest.TestReport) -> list[Problem]:
        """One problem per policy finding (at its own line), else one for the failed item."""
        from pytest_astro.policies.items import FINDING_LINE

        props = dict(report.user_properties)
        test = self._test_name(report, props)
        findings = [m for k, v in report.user_properties if k == "finding"
                    and (m := FINDING_LINE.match(str(v)))]
        findings = findings if report.when == "call" else []
        out = [Problem(path=m["file"], line=int(m["line"]) if m["line"] else None, rule=m["code"],
                       title=f"{m['code']} {m['dag_id']}: {test}", message=m.group(0),
                       failure_class="policy",
                       dag_id=m["dag_id"]) for m in findings]
        failure_class = props.get("failure_class") or "exception"
        if report.when != "call":
            failure_class = "error"  # a component raised (the item errors): not the file's finding
        elif failure_class == "policy":
            return out
        text = report.longreprtext.strip()
        # a file that failed to parse, and whose DAGs broke policies: the parse failure alone
        if findings:
            text = text.split("\n" + findings[0].group(0))[0]
        rule = "airflow3" if failure_class == "airflow3" else f"parse/{failure_class}"
        line = props.get("line")
        return [Problem(path=str(props["dag_file"]), line=int(line) if line else None, rule=rule,
                        title=f"{ci_reports.class_label(failure_class)}: "
                              f"{test}", message=text or f"{report.nodeid} failed",
                        failure_class=failure_class, dag_id=str(props.get("dag_id", ""))), *out]

    # ------------------------------------------------------------------------------ output

    def summary(self) -> RunSummary:
        astro = self.astro
        return RunSummary.build((astro.results or {}).values(), astro.engine.stats,
                                astro.settings.worker_count(),
                                self.problems, tests=astro.counts)

    def terminal_summary(self, terminalreporter) -> None:
        """The table (one line with ``-q``), then, under GitHub Actions, the annotations."""
        summary = self.summary()
        terminalreporter.write_sep("-", "pytest-astro")
        # Config.get_verbosity() is pytest >= 8 only
        quiet = (self.config.getoption("verbose") or 0) < 0
        for line in ([summary.one_line()] if quiet else summary.table()):
            terminalreporter.write_line(line)
        if self.exempted and not quiet:  # they pass, but the exemptions stay visible
            terminalreporter.write_line(f"exempted findings ({len(self.exempted)}):")
            for line in self.exempted:
                terminalreporter.write_line(f"  {line}")
        for error in self.internal_errors:
            terminalreporter.write_line(error.rstrip(), red=True)
        if ci_reports.in_github_actions():
            for line in ci_reports.github_annotations(self.problems, self.base):
                terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)  # after the session loaded an xdist run's results
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if getattr(self.config, "workerinput", None) is not None:
            return
        # the files are written even when nothing was collected: CI upload steps expect them
        where = self.config.invocation_params.dir
        sarif_path = self.config.getoption("astro_report_sarif", default=None)
        if sarif_path:
            log = ci_reports.sarif(self.problems, self.base)
            category = self.astro.shards.sarif_category()
            if category:  # one analysis per shard: a shard's upload does not close another's alerts
                log["runs"][0]["automationDetails"] = {"id": category}
            ci_reports.write_json(Path(where, sarif_path), log)
        gitlab_path = self.config.getoption("astro_report_gitlab", default=None)
        if gitlab_path:
            ci_reports.write_json(Path(where, gitlab_path),
                                  ci_reports.gitlab_code_quality(self.problems, self.base))
        if ci_reports.in_github_actions() and self.astro.results is not None:
            ci_reports.append_step_summary(self.summary().markdown(self.problems, self.base))
