"""``--astro-shard K/N`` in a pytest run: which DAG files this job collects, where users' own tests
run, and what the reports say about the shard (the split itself is ``sharding.py``).

- DAG files of other shards are not collected at all (as files outside ``--astro-changed`` are not).
- Users' own tests: with pytest-split installed, split by pytest-split's own algorithm and durations
  file into the same N groups (this job runs group K); without it, they run in shard 1. pytest-split
  is then kept from splitting the DAG files a second time.
- Reports: ``{shard}`` in ``--junitxml``, ``--astro-report``, ``--astro-report-sarif`` and
  ``--astro-report-gitlab`` paths becomes ``K-of-N``; the JUnit suite is named after the shard; the
  SARIF run gets a per-shard ``automationDetails`` id (GitHub code scanning keeps one analysis per
  category); ``--astro-report`` gets a ``shard`` section (``sharding.report_section``).
- ``--astro-store-durations`` writes the parse times of this run into the durations file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_astro import sharding
from pytest_astro.nodes import InDagFile
from pytest_astro.user_errors import usage_error

REPORT_OPTIONS = ("astro_report", "astro_report_sarif", "astro_report_gitlab")


def _option(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name, default=None)
    if value is None:
        value = config.getini(name)
    return value or None


class ShardRun:
    """One sharded (or duration-storing) ``pytest --astro-dags`` run; registered by the session."""

    def __init__(self, astro: Any):
        self.astro = astro
        self.config: pytest.Config = astro.config
        project = astro.project
        try:
            self.shard = sharding.parse_shard(_option(self.config, "astro_shard"))
        except sharding.ShardError as exc:
            raise usage_error(exc) from None
        durations = _option(self.config, "astro_durations") or sharding.DURATIONS_FILE
        self.durations_path = Path(project.root, durations)
        self.files: set[Path] | None = None  # this shard's DAG files (resolved); None: every file
        self.rel_files: list[str] = []
        self.key = ""
        self.total_files = 0
        self.durations: dict[str, float] = {}
        self._split = None  # pytest-split's grouping of users' tests (_take_over_pytest_split)
        if self.shard is None:
            return
        try:
            self.durations = sharding.load_durations(self.durations_path)
        except sharding.ShardError as exc:
            raise usage_error(exc) from None
        everything = {project.relative(p): p for p in project.all_dag_files}
        self.total_files = len(everything)
        self.rel_files = sharding.shard_files(everything, self.durations, self.shard)
        self.files = {project.real(everything[f]) for f in self.rel_files}
        self.key = sharding.split_key(everything, self.durations, self.shard.total)
        self._split = self._take_over_pytest_split()
        self._name_reports()

    # ------------------------------------------------------------------------------ users' tests

    def _take_over_pytest_split(self):
        """pytest-split's algorithm for users' tests, when it is installed (None when not). If it is
        active (``--splits``/``--group``), it must agree with the shard; it is then unregistered, so
        that it does not split the DAG files of this shard again."""
        if not self.config.pluginmanager.hasplugin("pytest-split"):
            return None
        option = self.config.option
        splits, group = getattr(option, "splits", None), getattr(option, "group", None)
        if splits or group:
            if (splits, group) != (self.shard.total, self.shard.index):
                raise usage_error(
                    f"--astro-shard {self.shard.label} and pytest-split's --splits {splits} "
                    f"--group {group} "
                    "disagree", fix=f"give one of them: --astro-shard makes pytest-split run group "
                    f"{self.shard.index} of {self.shard.total} of your own tests")
            plugin = self.config.pluginmanager.get_plugin("pytestsplitplugin")
            if plugin is not None:
                self.config.pluginmanager.unregister(plugin)
        from pytest_split import algorithms

        name = getattr(option, "splitting_algorithm", None) or "duration_based_chunks"
        path = getattr(option, "durations_path", None)
        durations = {}
        if path:
            import json

            try:
                durations = dict(json.loads(Path(path).read_text()))
            except (OSError, ValueError, TypeError):
                durations = {}
        return lambda items: algorithms.Algorithms[name].value(self.shard.total, items,
                                                               durations)[self.shard.index - 1]

    @pytest.hookimpl(tryfirst=True)  # before -k, -m and --lf look at them
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        if self.shard is None or self.shard.total == 1:
            return
        users = [item for item in items if not isinstance(item, InDagFile)]
        if not users:
            return
        if self._split is not None:
            keep = set(self._split(users).selected)
        else:
            keep = set(users) if self.shard.first else set()
        dropped = [item for item in users if item not in keep]
        if dropped:
            dropped_ids = {id(item) for item in dropped}
            items[:] = [item for item in items if id(item) not in dropped_ids]
            config.hook.pytest_deselected(items=dropped)

    # ------------------------------------------------------------------------------ reports

    def _name_reports(self) -> None:
        tag = f"{self.shard.index}-of-{self.shard.total}"
        option = self.config.option
        for name in REPORT_OPTIONS:
            value = getattr(option, name, None)
            if value and "{shard}" in value:
                setattr(option, name, value.replace("{shard}", tag))
        try:
            from _pytest.junitxml import xml_key
        except ImportError:  # pragma: no cover - a pytest without it
            return
        xml = self.config.stash.get(xml_key, None)
        if xml is not None:
            xml.logfile = xml.logfile.replace("{shard}", tag)
            xml.suite_name = f"{xml.suite_name} (pytest-astro shard {self.shard.label})"

    def sarif_category(self) -> str | None:
        """The SARIF run's ``automationDetails.id``: one analysis per shard in code-scanning UIs."""
        return (None if self.shard is None
                else f"pytest-astro/shard-{self.shard.index}-of-{self.shard.total}/")

    def report_section(self) -> dict | None:
        if self.shard is None:
            return None
        durations = self.durations_path.name if self.durations else None
        return sharding.report_section(self.shard, self.key, self.rel_files, durations)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        if self.shard is None:
            return []
        weighed = (f"split by the parse times in {self.durations_path.name}" if self.durations
                   else f"split by count ({self.durations_path.name} not found: "
                        "`--astro-store-durations` writes it)")
        users = ("pytest-split's group" if self._split is not None
                 else "all of them" if self.shard.first else "none (they run in shard 1)")
        return [f"astro: shard {self.shard.label} ({self.shard.source}): {len(self.rel_files)} of "
                f"{self.total_files} DAG files, {weighed}; your own tests: {users}"]

    @pytest.hookimpl(trylast=True)  # after the session has its results (an xdist run's too)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.config.getoption("astro_store_durations", default=False):
            return
        if getattr(self.config, "workerinput", None) is not None or not self.astro.results:
            return
        measured = {r.file: r.seconds for r in self.astro.results.values() if r.seconds}
        try:
            existing = sharding.load_durations(self.durations_path)
        except sharding.ShardError:
            existing = {}  # written anew
        everything = [self.astro.project.relative(p) for p in self.astro.project.all_dag_files]
        sharding.store_durations(self.durations_path, measured, existing, everything)
