"""The collectors of the DAG folder: its folders (``DagFolder``) and DAG files (``DagFile``), and
``NotATestModule`` for the files pytest must not import in its own process.

What to collect is the session's to say: ``astro`` is its ``session.AstroSession`` (not imported
here: the session imports these nodes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_astro.file_items import ITEM_NAME, DagFileItem, UpgradeItem
from pytest_astro.nodes import FileHooks


class NotATestModule(pytest.File):
    """A file pytest would import as a test module that must not be imported in this process."""

    def collect(self):
        return []


# pytest >= 8 (on pytest 7, a package's __init__.py gets _NotATestModule)
if hasattr(pytest, "Dir"):
    from _pytest.pathlib import scandir  # pytest's own, as pytest.Dir lists a folder: same order

    class DagFolder(pytest.Dir):
        """A folder of the DAG folder. Its DAG files come from the project's discovery, without
        asking pytest's ``pytest_ignore_collect`` and ``pytest_collect_file`` hooks for each, when
        those would decide what we decide (``AstroSession.collects_directly``); what those hooks
        cost a run is measured in docs/performance.md. Everything else in it is collected as
        pytest.Dir does."""

        @classmethod
        def from_parent(cls, parent, *, path: Path, astro: Any):  # type: ignore[override]
            return super(pytest.Dir, cls).from_parent(parent=parent, path=path, astro=astro)

        def __init__(self, *, astro: Any, **kwargs):
            super().__init__(**kwargs)
            self.astro = astro

        def collect(self):
            if not self.astro.collects_directly(self):
                yield from super().collect()
                return
            ihook, config, session = self.ihook, self.config, self.session
            # of a folder that only leads to the paths on the command line (`pytest --astro-dags
            # dags/etl.py`), pytest keeps the children on their way: the other DAG files need no
            # node
            everything = any(session.isinitpath(p) for p in (self.path, *self.path.parents))
            for entry in scandir(self.path):
                if entry.is_dir():  # as pytest.Dir
                    path = Path(entry.path)
                    if not session.isinitpath(path, with_parents=True):
                        if ihook.pytest_ignore_collect(collection_path=path, config=config):
                            continue
                    col = ihook.pytest_collect_directory(path=path, parent=self)
                    if col is not None:
                        yield col
                elif entry.is_file():
                    is_dag_file, path = self.astro.dag_file_path(entry)
                    if is_dag_file:
                        if path is not None and (everything or session.isinitpath(path)):
                            yield self.astro.dag_file(self, path, True)
                        continue
                    path = Path(entry.path)  # as pytest.Dir
                    if not session.isinitpath(path):
                        if ihook.pytest_ignore_collect(collection_path=path, config=config):
                            continue
                    yield from ihook.pytest_collect_file(file_path=path, parent=self)


class DagFile(FileHooks, pytest.File):
    """A DAG file: one item (``DagFileItem``), plus ``airflow3`` under ``--astro-upgrade-check``."""

    def __init__(self, *, astro: Any, folder: Path | None = None, **kwargs):
        super().__init__(**kwargs)
        self.astro = astro
        self.folder = folder  # its folder's collector's path (one object for all of its files)

    def collection_finished(self) -> bool:
        return self.astro.collection_finished

    def collect(self):
        # nothing is parsed here: the item asks for its verdict when it runs (or when -k asks for
        # its keywords), so that a run parses only what is left after deselection
        yield DagFileItem.from_parent(self, name=ITEM_NAME)
        if self.config.getoption("astro_upgrade_check", default=False):
            yield UpgradeItem.from_parent(self, name="airflow3")
