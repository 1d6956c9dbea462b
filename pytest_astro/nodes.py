"""What the nodes of a DAG file (its items, its DAGs' policy items) share: their hook proxy.

pytest computes ``Node.ihook`` on every access: a conftest lookup for the node's path, and a
``stat`` of it once a run has more than 256 files (the lookup's cache size). A test's run
reads it about seven times, so it was a tenth of a run whose results all come from the cache.
Every node under a DAG file has the file's path, so they use the DAG file's proxy, which it
keeps once collection is over (no conftest.py is loaded after that; before, it is asked anew).
"""

from __future__ import annotations

from typing import Any


class FileHooks:
    """For the DAG file's collector: its hook proxy, remembered once collection has finished."""

    collection_finished: Any  # a callable: True once the session's collection is over

    @property
    def ihook(self):
        proxy = self.__dict__.get("_astro_ihook")
        if proxy is None:
            proxy = self.session.gethookproxy(self.path)
            if self.collection_finished():
                self.__dict__["_astro_ihook"] = proxy
        return proxy


class InDagFile:
    """For the nodes under a DAG file (same path): the DAG file's hook proxy."""

    @property
    def ihook(self):
        return self.parent.ihook
