"""What ``pytest --astro-dags`` does: collect DAG files, parse them in the sandbox, report.

Registered by ``plugin.py`` only when the DAG checks are on. Each DAG file is one item
(``dags/etl.py::astro``), made from its path alone. The parse runs once, as a batch, when
collection is over, for the DAG files of the items left after deselection (``-k``, ``--lf``,
node ids, a shard; or earlier, if ``-k`` asks the items for their keywords); results are plain
data and the user's DAG files are never imported in the pytest process. Each item then checks its
file's DAGs against the selected policies (``policies/items.py``).

``AstroSession`` is the session's state and its pytest hooks; the nodes it makes are in
``collectors.py`` (the DAG folder, its DAG files) and ``file_items.py`` (a DAG file's items).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import pytest

from pytest_astro import dbguard, gcfreeze, inprocess, xdist_batch
from pytest_astro.ci_reports_plugin import CIReports
from pytest_astro.collectors import DagFile, NotATestModule
from pytest_astro.config import ConfigError, Settings, find_project_root, load_settings
# users' filterwarnings may name the warning here
from pytest_astro.file_items import AstroParseWarning  # noqa: F401
from pytest_astro.file_items import DagFileItem
from pytest_astro.nodes import InDagFile
from pytest_astro.parse.cache import clear as clear_parse_cache
from pytest_astro.parse.engine import EngineError, ParseEngine
from pytest_astro.project import Project
from pytest_astro.results import FileResult, RunStats
from pytest_astro.user_errors import usage_error, user_message
from pytest_astro.values import load_values


def _ini_or_option(config: pytest.Config, name: str):
    value = config.getoption(name, default=None)
    if value is None:
        value = config.getini(name)
    return value or None


def settings_from_config(config: pytest.Config) -> Settings:
    """Project settings: pyproject's [tool.pytest-astro], then ini, then command-line options."""
    explicit = _ini_or_option(config, "astro_project")
    if explicit:
        # relative to where pytest was started (what a user types), else to the rootdir (an ini
        # value)
        candidates = [Path(explicit)] if Path(explicit).is_absolute() else [
            config.invocation_params.dir / explicit, config.rootpath / explicit]
        root = next((c for c in candidates if c.is_dir()), candidates[-1])
        if not root.is_dir():
            raise usage_error(f"astro_project: {root} is not a folder",
                              fix="point it at the Astro project root")
    else:
        folder = _ini_or_option(config, "astro_dags_folder") or "dags"
        root = config.rootpath if (config.rootpath / folder).is_dir() else None
    try:
        if root is None:
            root = find_project_root(config.invocation_params.dir)
        settings = load_settings(
            root,
            dags_folder=_ini_or_option(config, "astro_dags_folder"),
            timeout=_ini_or_option(config, "astro_timeout"),
            memory_limit=_ini_or_option(config, "astro_memory_limit"),
            workers=_ini_or_option(config, "astro_workers"),
            isolation=_ini_or_option(config, "astro_isolation"),
        )
    except ConfigError as exc:
        raise usage_error(exc) from None
    if config.getoption("astro_no_cache", default=False):
        settings = settings.with_overrides(cache=False)
    return settings


class AstroSession:
    """The pytest plugin object that exists for one ``pytest --astro-dags`` run."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.settings = settings_from_config(config)
        self.project = Project(self.settings)
        try:
            values = load_values(self.settings)
        except ConfigError as exc:
            raise usage_error(exc) from None
        self.values = values  # read once: the sandbox, users' tests and the policies share them
        self.engine = ParseEngine(self.project, values=values)
        self.results: dict[str, FileResult] | None = None
        self._policy_run = None  # built on first use, once collection is over (policy_run)
        # files parsed only for another file's checks (_also_parse)
        self.also_parsed: set[str] = set()
        # DAG files of the items collected (before deselection)
        self._candidates: list[Path] | None = None
        # for -k: selection.KnownIds, or False when -k may name a policy code
        self._known_ids = None
        self._exceptions = self._integrity_exceptions()
        # --astro-upgrade-check findings per file
        self._upgrade: dict[Path, list[str]] | None = None
        mismatch = self.project.runtime_mismatch()
        if mismatch:
            warnings.warn(pytest.PytestConfigWarning(user_message(mismatch)), stacklevel=1)
        self.counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
        self.collection_finished = False
        try:
            self._dag_files = set(self.project.all_dag_files)
        except ConfigError as exc:  # a symlink loop in the DAG folder
            raise usage_error(exc) from None
        self._add_dags_folder_to_args()
        # --astro-changed: only the DAG files a change can affect are collected and parsed
        self.changed_note = ""
        self._selected = self._changed_selection()
        # --astro-shard: only this shard's DAG files are collected and parsed (sharding_plugin.py)
        from pytest_astro.sharding_plugin import ShardRun

        self.shards = ShardRun(self)
        if self.shards.files is not None:
            self._selected = (self.shards.files if self._selected is None
                              else self._selected & self.shards.files)
        config.pluginmanager.register(self.shards, "astro-shards")
        if config.getoption("cacheclear", default=False) and not hasattr(config, "workerinput"):
            # pytest clears only the rootdir's cache; ours may be elsewhere
            clear_parse_cache(self.project)
        xdist_batch.prepare_controller(config)
        # CI reports: the terminal table, GitHub annotations, SARIF / GitLab files, JUnit names
        self.ci = CIReports(self)
        config.pluginmanager.register(self.ci, "astro-ci-reports")
        # Last, once nothing above can fail (pytest_unconfigure undoes it only for a registered
        # session): users' tests run in the same database-free sandbox as the parse (inprocess.py).
        inprocess.activate(self.project, values, ensure=self.ensure_results)
        dbguard.use_test_message()
        dags = self.project.dags_path  # collected (its items need a parse), and not by xdist workers
        if (self._dag_files and self._selected != set() and not config.getoption("collectonly", False)
                and getattr(config, "workerinput", None) is None and not config.getoption("numprocesses", None)
                and any(p == dags or p in dags.parents or dags in p.parents for p in self._requested_paths())):
            self.engine.prestart()  # with no parse cache, `import airflow` runs while pytest collects

    # ---------------------------------------------------------------------------------- collection

    def _add_dags_folder_to_args(self) -> None:
        """Collect the DAG folder even when testpaths (or the invocation dir) does not include it.

        Explicit command-line paths are respected: ``pytest --astro-dags dags/etl.py`` checks one
        file.
        """
        if (self.config.args_source == pytest.Config.ArgsSource.ARGS
            or not self.project.dags_path.is_dir()):
            return
        dags = self.project.dags_path
        if any(path == dags or path in dags.parents for path in self._requested_paths()):
            return
        self.config.args.append(str(dags))

    def _changed_selection(self) -> set[Path] | None:
        ref = self.config.getoption("astro_changed", default=None)
        if ref is None:
            return None
        from pytest_astro.changed import ChangedError, affected_dag_files, changed_files

        try:
            changed, what = changed_files(self.project.root, ref or None)
        except ChangedError as exc:
            raise usage_error(exc) from None
        selected = {p.resolve()
                    for p in affected_dag_files(self.project, changed, sorted(self._dag_files))}
        self.changed_note = f"--astro-changed: {len(selected)} affected by {what}"
        return selected

    def _parse_batch(self, targets: list[Path]) -> dict[str, FileResult]:
        def parse():
            extra = self._also_parse(targets)
            results = self.engine.parse(targets + extra)
            also = sorted(self.project.relative(p) for p in extra)
            return results, dataclasses.replace(self.engine.stats, also_parsed=also)

        results, stats = xdist_batch.shared_batch(self.config, self.project, parse)
        self._take_stats(stats)
        return results

    def _take_stats(self, stats: RunStats) -> None:
        """The parse's stats (from this process, or from the xdist worker that parsed the batch)."""
        self.engine.stats = stats
        self.also_parsed = set(stats.also_parsed)

    def _requested_paths(self) -> list[Path]:
        """The paths pytest collects (its args without ``::`` node parts), absolute."""
        return [Path(self.config.invocation_params.dir, arg.split("::")[0]).resolve()
                for arg in self.config.args]

    def _initial_batch(self, items: list[pytest.Item] | None = None) -> None:
        """Parse the batch: the DAG files of ``items`` (the items left once collection is over);
        before that, those of the items collected (``-k`` asks them for their keywords before it
        deselects), or, before there are items (a fixture of a user's test), every file pytest was
        asked for."""
        if self.results is not None:
            return
        if items is not None or self._candidates is not None:
            paths = (i.path for i in items
                     if isinstance(i, DagFileItem)) if items is not None else self._candidates
            targets = sorted({self.project.real(p) for p in paths}, key=str)
        else:
            targets = self.project.dag_files(self._requested_paths())
            if self._selected is not None:
                targets = [t for t in targets if self.project.real(t) in self._selected]
        try:
            self.results = self._parse_batch(targets)
        except EngineError as exc:
            raise usage_error(exc) from None
        inprocess.set_results(self.results)

    def _also_parse(self, targets: list[Path]) -> list[Path]:
        """For a run over part of the project: the other DAG files that spell out a dag_id one of
        ``targets`` spells out, parsed too so that a dag_id in two files still fails
        (selection.py)."""
        chosen = {self.project.real(t) for t in targets}
        others = [p for p in self.project.all_dag_files if self.project.real(p) not in chosen]
        if not others or not targets:
            return []
        from pytest_astro.selection import also_parse

        return also_parse(targets, others)

    def keyword_ids(self, path: Path) -> set[str] | None:
        """``-k``'s dag_ids of a DAG file, without parsing it (selection.KnownIds); None when ``-k``
        may name a policy code: then the item's findings, hence its parse, decide."""
        if self._known_ids is None:
            from pytest_astro.parse import coverage_support
            from pytest_astro.selection import KnownIds, names_a_code

            if names_a_code(self.config.getoption("keyword", ""), self.policy_run.known):
                self._known_ids = False
            else:
                use_cache = self.settings.cache and not coverage_support.active()
                self._known_ids = KnownIds(self.project, self.values.digest(), use_cache)
        if self._known_ids is False:
            return None
        result = (self.results or {}).get(self.project.relative(path))
        if result is None:
            return self._known_ids.of(path)
        return {d for d, _, _ in result.dag_refs()}

    def results_for(self, path: Path) -> FileResult | None:
        self._initial_batch()
        assert self.results is not None
        rel = self.project.relative(path)
        if rel not in self.results:  # collected but outside the batch (e.g. a path given twice)
            self.ensure_results([path])
        return self.results.get(rel)

    def ensure_results(self, paths) -> None:
        """Isolated results for ``paths`` (DAG files), parsing in one batch those not parsed yet.

        Users' tests and fixtures call this (through inprocess) before Airflow imports a DAG file in
        this process, so a file that would exit, hang or crash is known to fail beforehand.
        """
        self._initial_batch()
        assert self.results is not None
        missing = [Path(p) for p in paths if self.project.relative(p) not in self.results]
        if missing:
            try:
                self.results.update(self.engine.parse(missing))
            except EngineError as exc:
                raise usage_error(exc) from None
            inprocess.set_results(self.results)

    def is_integrity_exception(self, rel: str) -> bool:
        """Whether ``.astro/dag_integrity_exceptions.txt`` lists the DAG file (``rel``: relative to
        the project): the Astro CLI's parse test lets it fail, and so does its item (it skips)."""
        return rel in self._exceptions

    def _integrity_exceptions(self) -> set[str]:
        """``.astro/dag_integrity_exceptions.txt``: files the Astro CLI's parse test lets fail."""
        path = self.project.root / ".astro" / "dag_integrity_exceptions.txt"
        if not path.is_file():
            return set()
        lines = (line.split("#")[0].strip()
                 for line in path.read_text(encoding="utf-8").splitlines())
        return {line.lstrip("./") for line in lines if line}

    # --------------------------------------------------------------------------------- users' tests

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """``astro_dag``: the test runs once per DAG of the project, with the dag_id as its id."""
        if "astro_dag" not in metafunc.fixturenames:
            return
        self.ensure_results(self.project.all_dag_files)
        dag_ids = sorted(d.dag_id for r in (self.results or {}).values() if r.ok for d in r.dags)
        metafunc.parametrize("astro_dag", dag_ids, ids=dag_ids, indirect=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        inprocess.deactivate()

    @property
    def policy_run(self):
        """The session's ``policies.items.PolicyRun``: built once collection is over, when every
        conftest.py pytest loads for this run (``tests/conftest.py`` too) has registered its
        policies. A bad ``[tool.pytest-astro.policies]`` table or policy is a usage error."""
        if self._policy_run is None:
            from pytest_astro.policies.items import PolicyRun

            self._policy_run = PolicyRun(self.config, self)
        return self._policy_run

    @pytest.hookimpl(tryfirst=True)  # before -k deselects: it asks the items for their keywords
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self._candidates = [item.path for item in items if isinstance(item, DagFileItem)]
        if self._candidates:
            self.policy_run  # noqa: B018 - built now: its errors stop the run before anything runs

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collection_finished = True  # no conftest.py loads after this: DagFile keeps its hooks
        # our own items never open a database: the marker's wrapper runs only when users' tests do
        if any(not isinstance(item, InDagFile) for item in session.items):
            self.config.pluginmanager.register(DatabaseMarker(), "astro-db-marker")
        # the batch is parsed once deselection is over (a parse error of the engine is a usage error
        # here, not one item's error)
        if not self.config.getoption("collectonly",
                                     False) and any(isinstance(i, DagFileItem)
                                                    for i in session.items):
            self._initial_batch(session.items)  # only the files of the items that will run
            if all(isinstance(item, InDagFile) for item in session.items):
                gcfreeze.freeze()  # no test of the user's runs in this process

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector):
        resolved = self.project.real(file_path)
        if resolved in self._dag_files and (self._selected is None or resolved in self._selected):
            # a file of the parent's folder is named by its file name: said here, pytest need not
            # find that out with pathlib (a compare and a relative_to per file)
            in_folder = os.path.dirname(str(file_path)) == str(parent.path)
            return self.dag_file(parent, file_path, in_folder)
        return None

    def dag_file(self, parent: pytest.Collector, path: Path, in_folder: bool) -> DagFile:
        return DagFile.from_parent(parent, path=path,
                                   name=path.name.replace("\\", "/") if in_folder else None,
                                   astro=self, folder=parent.path if in_folder else None)

    def dag_file_path(self, entry: os.DirEntry) -> tuple[bool, Path | None]:
        """For ``DagFolder``: (whether the entry is a DAG file, its path if it is one to check)."""
        resolved = self.project.real(entry.path)
        if resolved not in self._dag_files:
            return False, None
        if self._selected is not None and resolved not in self._selected:
            return True, None
        # the discovery's Path object when it is the path as found (no symlink): one fewer to make
        return True, resolved if str(resolved) == entry.path else Path(entry.path)

    def collects_directly(self, folder: pytest.Collector) -> bool:
        """Whether ``folder``'s DAG files may skip pytest's per-file hooks: only when they would
        decide what ours decides. That is, no ``--ignore`` / ``--ignore-glob`` /
        ``--doctest-modules``, no ``collect_ignore`` in a conftest.py, and nothing but pytest and us
        implements ``pytest_ignore_collect`` and ``pytest_collect_file`` for the folder (a plugin
        that makes items of every .py file, pytest-mypy say, still gets the DAG files)."""
        config = self.config
        if (config.getoption("ignore") or config.getoption("ignore_glob")
            or config.getoption("doctestmodules", False)):
            return False
        try:
            if (config._getconftest_pathlist("collect_ignore", path=folder.path)
                    or config._getconftest_pathlist("collect_ignore_glob", path=folder.path)):
                return False
        except (AttributeError, TypeError):  # pragma: no cover - a pytest without it: hooks decide
            return False
        from pytest_astro.direct_run import only_implemented_by

        return (only_implemented_by(folder.ihook, "pytest_ignore_collect", ("_pytest.main",))
                and only_implemented_by(folder.ihook,
                                        "pytest_collect_file", ("_pytest.python", "_pytest.doctest",
                                                                __name__)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent: pytest.Collector):
        """A DAG file named on the command line (or named ``test_*.py``) is not a test module:
        pytest must not import it in its own process. The DagFile above checks it. Nor is the
        ``__init__.py`` of a package in the DAG folder (pytest 7 makes its Package from it)."""
        real = self.project.real(module_path)
        if real in self._dag_files or (module_path.name == "__init__.py"
                                       and self._in_dags_folder(real.parent)):
            return NotATestModule.from_parent(parent, path=module_path)
        return None

    @pytest.hookimpl(tryfirst=True, optionalhook=True)  # pytest >= 8
    def pytest_collect_directory(self, path: Path, parent: pytest.Collector):
        """The DAG folder and its subfolders are ``DagFolder``s, plain folders: a package there
        (``dags/__init__.py``, common for ``from dags.utils import``) would be pytest's Package,
        which imports its ``__init__.py`` in this process (to look for ``setup_module``), running
        project code, and Airflow, outside the sandbox."""
        if self._in_dags_folder(self.project.real(path)):
            from pytest_astro.collectors import DagFolder  # defined on pytest >= 8 only

            return DagFolder.from_parent(parent, path=path, astro=self)
        return None

    def _in_dags_folder(self, real: Path) -> bool:
        dags = self.project.real(self.project.dags_path)
        return real == dags or dags in real.parents

    # ---------------------------------------------------------------------------------- reporting

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.counts["passed" if report.passed else "failed" if report.failed
                        else "skipped"] += 1
        elif report.failed:
            self.counts["errors"] += 1
        elif report.skipped:
            self.counts["skipped"] += 1

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        mismatch = self.project.runtime_mismatch()
        return ([f"astro: warning: {mismatch}"] if mismatch else []) + [
            f"astro: project {self.project.root}, dags folder {self.settings.dags_folder}/, "
            f"{len(self._dag_files)} DAG "
            "files" + (f" ({self.changed_note})" if self.changed_note else "")]

    def upgrade_findings(self, path: Path) -> list[str]:
        """Airflow 3 migration findings (lint rules AST301-AST304) for one DAG file, linted in one
        batch."""
        if self._upgrade is None:
            from pytest_astro.lint.engine import lint_paths

            files = sorted(self._dag_files)
            report = lint_paths(files, select=["AST301", "AST302", "AST303", "AST304"],
                                cwd=self.project.root,
                                target_airflow=3)
            self._upgrade = {}
            for finding in report.findings:
                key = (self.project.root / finding.path).resolve()
                self._upgrade.setdefault(key, []).append(finding.text())
        return self._upgrade.get(path.resolve(), [])

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.results is None:
            return
        self.ci.terminal_summary(terminalreporter)  # the table (one line with -q): ci_reports.py

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.results is None and getattr(self.config, "workerinput", None) is None:
            # the xdist controller collects nothing: its workers left the batch for the summary and
            # report
            uid = xdist_batch.run_id(self.config)
            loaded = xdist_batch.read_batch(self.project, uid)
            if loaded is not None:
                self.results, stats = loaded
                self._take_stats(stats)
            xdist_batch.finish(self.project, uid)
        path = self.config.getoption("astro_report", default=None)
        if not path:
            return
        results = [r for r in (self.results or {}).values() if r.file not in self.also_parsed]
        data = {
            "version": 1,
            "project": str(self.project.root),
            "files": [RawJSON(r.to_json()) for r in results],
            "parsed": len(results),
            "failed": sum(not r.ok for r in results),
            "tests": {**self.counts, "total": sum(self.counts.values())},
        }
        # parsed for the dag_id check of the files above, not checked themselves
        if self.also_parsed:
            data["also_parsed"] = sorted(self.also_parsed)
        shard = self.shards.report_section()
        if shard is not None:
            data["shard"] = shard
        out = Path(self.config.invocation_params.dir, path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report_json(data))


class DatabaseMarker:
    """``@pytest.mark.astro_db`` lets one test connect to the (throwaway) metadata database."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem):
        dbguard.set_allowed(item.get_closest_marker("astro_db") is not None)
        try:
            return (yield)
        finally:
            dbguard.set_allowed(False)


class RawJSON(str):
    """Text that is already JSON (a result as the cache keeps it), for ``report_json``."""


def report_json(data: dict) -> str:
    """``data`` as JSON, indented at the top level with one line per list element (a DAG file).

    ``json.dumps(indent=...)`` switches to the pure-Python encoder (its cost: docs/architecture.md);
    this keeps the C encoder and a diffable layout."""
    def encode(value) -> str:
        return value if isinstance(value, RawJSON) else json.dumps(value)

    fields = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            text = "[\n    " + ",\n    ".join(encode(v) for v in value) + "\n  ]"
        else:
            text = json.dumps(value)
        fields.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"
