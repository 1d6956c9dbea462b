"""What the nodes of a DAG file (its items, its DAGs' policy items) share, that pytest would
compute again for each of them: their hook proxy and their location's path.

- pytest computes ``Node.ihook`` on every access: a conftest lookup for the node's path (and a
  ``stat`` of it once a run has more than 256 files, the lookup's cache size), about seven times
  per test. Every node under a DAG file has the file's path, so they use the DAG file's proxy,
  which it keeps once collection is over (no conftest.py loads after that; before, it is asked
  anew).
- ``Item.location`` is the path relative to the rootdir, from pathlib's ``relative_to`` (twice)
  and ``commonpath`` for each new file. Under the rootdir that is the path's tail, which the DAG
  file cuts once for all its items; outside it pytest computes it as usual.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any


class _KeptHooks:
    """``ihook`` for our nodes: a non-data descriptor, so that once the proxy is final the node
    keeps it as a plain attribute (``__dict__["ihook"]``), read without a call."""

    def __get__(self, node, owner=None):
        if node is None:
            return self
        if isinstance(node, FileHooks):
            # asked for its folder (the same conftest files), as one Path object for all of the
            # folder's files: pytest's lookup then hits its cache instead of stat()ing each file
            proxy = node.session.gethookproxy(node.folder or node.path)
            final = node.collection_finished()
        else:  # under a DAG file: its parent's (the same path), final once the parent kept it
            proxy = node.parent.ihook
            final = "ihook" in node.parent.__dict__
        if final:
            node.__dict__["ihook"] = proxy
        return proxy


class FileHooks:
    """For the DAG file's collector: its hook proxy, kept once collection has finished."""

    collection_finished: Any  # a callable: True once the session's collection is over
    folder: Any  # the path of the folder's collector (None: ask with the file's own path)
    ihook = _KeptHooks()

    @cached_property
    def rootdir_relpath(self) -> str | None:
        """The path relative to the rootdir, as ``Item.location`` gives it; None outside the
        rootdir."""
        root, path = os.path.join(str(self.config.rootpath), ""), str(self.path)
        return path[len(root):] if path.startswith(root) else None


class InDagFile:
    """For the nodes under a DAG file (same path): the DAG file's hook proxy and rootdir-relative
    path."""

    ihook = _KeptHooks()

    @cached_property
    def location(self) -> tuple[str, int | None, str]:
        path, line, name = self.reportinfo()
        dag_file = self.parent
        while not isinstance(dag_file, FileHooks):
            dag_file = dag_file.parent
        rel = dag_file.rootdir_relpath if os.fspath(path) == str(self.path) else None
        return super().location if rel is None else (rel, line, name)
