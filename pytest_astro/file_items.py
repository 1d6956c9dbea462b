"""The items of a DAG file: its check (``DagFileItem``, ``dags/etl.py::astro``) and, under
``--astro-upgrade-check``, its Airflow 3 check (``UpgradeItem``, ``::airflow3``).

An item needs only its path at collection; it asks the session (``session.AstroSession``) for its
file's result when it runs, or when ``-k`` asks for its keywords.
"""

from __future__ import annotations

import warnings

import pytest

from pytest_astro.ci_reports_plugin import describe, set_property
from pytest_astro.nodes import InDagFile
from pytest_astro.parse.failure_text import location, long_text
from pytest_astro.results import FileResult


class AstroParseWarning(UserWarning):
    """Something a DAG file got away with that it should not (e.g. a placeholder variable)."""


class ParseFailed(Exception):
    """Raised by a parse item whose file did not import; carries the result for the report."""

    def __init__(self, result: FileResult, findings: str = ""):
        super().__init__(result.file)
        self.result = result
        self.findings = findings  # the policies' findings on the DAGs the file did define


class UpgradeFindings(Exception):
    pass


class UpgradeItem(InDagFile, pytest.Item):
    """``--astro-upgrade-check``: passes when nothing in the file breaks on Airflow 3."""

    # our rules read the file: it may run without pytest's capture (direct_run.py)
    runs_user_code = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        describe(self, dag_file=self.parent.astro.project.relative(self.path), line=None)

    def runtest(self) -> None:
        findings = self.parent.astro.upgrade_findings(self.path)
        if findings:
            first = findings[0].split(":")  # `path:line:col: CODE message`
            set_property(self, "line",
                         int(first[1]) if len(first) > 2 and first[1].isdigit() else None)
            set_property(self, "failure_class", "airflow3")
            raise UpgradeFindings("\n".join(findings))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, UpgradeFindings):
            return (f"{len(str(excinfo.value).splitlines())} change(s) needed before this file "
                    "runs on Airflow 3 (`pytest-astro lint --target-airflow 3 --fix` rewrites the "
                    f"exact ones):\n{excinfo.value}")
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        # line 0, the file's: pytest needs a line for a skip mark's location
        return self.path, 0, f"airflow3 {self.parent.astro.project.relative(self.path)}"


#: the name of a DAG file's item: ``dags/etl.py::astro`` (as pytest-mypy's ``::mypy``)
ITEM_NAME = "astro"


class Findings(Exception):
    """Raised by a DAG file's item whose DAGs break selected policies; its text is the report."""


class InternalError(Exception):
    """Raised (in setup: the item errors) when a component failed while checking the file."""


class _Lazy:
    """The extra keywords of a DAG file's item: its dag_ids and the codes it breaks, computed on
    first use (``-k`` asks for them at deselection; without ``-k`` nobody does)."""

    def __get__(self, item, owner=None):
        if item is None:
            return self
        words = item.__dict__["_extra_keywords"]
        if not item.__dict__.get("_keywords_added"):
            item.__dict__["_keywords_added"] = True
            words.update(item.verdict_keywords())
        return words

    def __set__(self, item, value):
        item.__dict__["_extra_keywords"] = value


class DagFileItem(InDagFile, pytest.Item):
    """A DAG file's check: fails when the file does not import cleanly in the sandbox, or when a DAG
    in it breaks a selected policy; errors when a component (a policy, the cache, ...) raised.

    At collection it needs only its path. Its verdict (the file's parse result, then its findings,
    which need every selected file's result for the project-wide checks) is made on first need: in
    setup, or when ``-k`` asks for its keywords."""

    extra_keyword_matches = _Lazy()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.astro = self.parent.astro  # the session's AstroSession
        self.rel = self.astro.project.relative(self.path)
        self.result: FileResult | None = None
        self.found = None  # policies.items.FileFindings, once checked
        self.error: BaseException | None = None  # what made the verdict fail (reported in setup)
        self._made = False
        describe(self, dag_file=self.rel, line=None)

    @property
    def runs_user_code(self) -> bool:
        run = self.astro.policy_run
        return run is not None and run.runs_user_code

    def verdict(self) -> None:
        """Make the verdict once: the result, the findings, the properties reports read."""
        if self._made:
            return
        self._made = True
        from pytest_astro.policies.items import ComponentError, file_findings, trace_of

        step = "the parse engine or its cache (the file's result)"
        try:
            self.result = self.astro.results_for(self.path)
            # each policy's own errors are caught and named by file_findings
            step = "the policy checks"
            run = self.astro.policy_run
            if self.result is not None and run is not None:
                self.found = file_findings(run, self.result)
            step = "the report of the file's check"
            self._describe()
            if self.result is not None and any(e.kind == "internal" for e in self.result.errors):
                # our sandbox code failed on the file: no verdict on it, an error of ours
                self.error = InternalError(long_text(self.result))
        except pytest.UsageError:
            raise
        except Exception as exc:  # our own bug: this item errors, the run goes on
            self.found = None
            self.error = InternalError(ComponentError(step, self.rel, True, trace_of(exc)).text())

    def _describe(self) -> None:
        result, found = self.result, self.found
        refs = result.dag_refs() if result is not None else []  # (a cached result's outline)
        dag_ids = ",".join(dag_id for dag_id, _, _ in refs)
        set_property(self, "dag_ids", dag_ids if result is not None else None)
        line = refs[0][2] if refs else None
        if result is None or not result.ok:
            error = result.errors[0] if result is not None and result.errors else None
            set_property(self, "failure_class", error.kind if error else "exception")
            line = location(result, error)[1] if error else None
        elif found is not None and found.failing:
            set_property(self, "failure_class", "policy")
            first = next((f for f in found.failing if f.file == self.rel and f.line), None)
            line = first.line if first else line
        describe(self, dag_file=self.rel, line=line, dag_id=dag_ids)
        if found is not None:
            for f in found.findings:
                self.user_properties.append(("exempted" if f.exempt else "finding", f.text()))
            if found.errors:
                self.error = InternalError("\n".join(e.text() for e in found.errors))

    def verdict_keywords(self) -> set[str]:
        known = self.astro.keyword_ids(self.path)
        # -k names no policy code: the dag_ids are enough, known without a parse
        if known is not None:
            return known
        try:
            self.verdict()
        except pytest.UsageError:
            raise
        refs = self.result.dag_refs() if self.result is not None else []
        words = {dag_id for dag_id, _, _ in refs}
        if self.found is not None:
            words.update(f.code for f in self.found.failing)
        return words

    def setup(self) -> None:
        self.verdict()
        if self.error is not None:  # an error, not a failure: it happened in setup
            pytest.fail(str(self.error), pytrace=False)  # the text alone: its traceback is in it

    def runtest(self) -> None:
        result = self.result
        if result is None:
            raise ParseFailed(FileResult(file=self.rel, ok=False))
        for message in result.warnings:
            warnings.warn(AstroParseWarning(message), stacklevel=1)
        from pytest_astro.policies.items import render_findings

        findings = render_findings(self.found) if self.found is not None else ""
        if not result.ok:
            if self.astro.is_integrity_exception(result.file):
                pytest.skip(f"{result.file} is listed in .astro/dag_integrity_exceptions.txt "
                            f"({result.errors[0].type if result.errors else 'failed'})")
            raise ParseFailed(result, findings)
        if self.found is not None and self.found.failing:
            raise Findings(findings)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ParseFailed):
            findings = excinfo.value.findings
            return long_text(excinfo.value.result) + (f"\n{findings}" if findings else "")
        if isinstance(excinfo.value, Findings):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        # line 0, the file's: the item is about the whole file (its findings have their own lines),
        # and pytest asks for the location before setup, when no verdict is made yet
        return self.path, 0, self.rel
