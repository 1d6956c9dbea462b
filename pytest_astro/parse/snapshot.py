"""The process state a DAG file can change, which the next file parsed in the same child must not
see.

A child takes a ``Snapshot`` once its own hooks are in place, and calls ``restore`` after each file.
"""

from __future__ import annotations

import operator
import os
import signal
import sys
import time
from typing import Any

from pytest_astro.parse.paths import ProjectPaths


class Snapshot:
    """The process state a DAG file can change and the next file in the same child must not see.

    Restored between files: project modules (re-imported by the next file, so each file records
    its own dependencies and sees fresh module state), ``sys.path``, ``sys.meta_path``,
    ``os.environ`` (and the time zone), the working directory, the umask, ``sys.argv``, the
    recursion limit, the locale, signal handlers, warning filters, the values served as variables
    and connections. Checked, not restorable: new threads, replaced attributes of Airflow's and
    Python's core modules (a monkeypatch). A file that leaves either behind ends its child after
    its result, so the files after it start from a fresh fork.
    """

    def __init__(self, watched: list[Any]) -> None:
        import threading
        import warnings

        from pytest_astro.parse.secrets_backend import STORE

        self.modules = set(sys.modules)
        self.path = list(sys.path)
        self.meta_path = list(sys.meta_path)
        self.environ = dict(os.environ)
        # compared as os.environ's own bytes mapping (no decoding of every variable per file)
        self.environ_data = dict(getattr(os.environ, "_data", {}))
        self.cwd = os.getcwd()
        self.argv = list(sys.argv)
        self.filters = list(warnings.filters)
        self.store = {k: dict(v) for k, v in STORE.items()}
        self.threads = threading.active_count()
        self.watched = [(vars(obj), set(vars(obj)), list(vars(obj).values()),
                         getattr(obj, "__name__", obj))
                        for obj in watched]
        self.umask = os.umask(0o22)
        os.umask(self.umask)
        self.recursion_limit = sys.getrecursionlimit()
        self.locale = _locale()
        self.signals = {sig: signal.getsignal(sig) for sig in _SIGNALS}

    def restore(self, paths: ProjectPaths) -> str | None:
        """Put back what can be put back; the reason to stop this child, if any."""
        import threading
        import warnings

        from pytest_astro.parse.secrets_backend import STORE

        for name in [n for n in sys.modules.keys() - self.modules]:
            module = sys.modules.get(name)
            where = getattr(module, "__file__",
                            None) or next(iter(getattr(module, "__path__", None) or []), None)
            if where is not None and paths.in_project(where):
                del sys.modules[name]
        sys.path[:] = self.path
        sys.meta_path[:] = self.meta_path
        data = getattr(os.environ, "_data", None)
        if (data != self.environ_data) if data is not None else (os.environ != self.environ):
            tz = os.environ.get("TZ")
            os.environ.clear()
            os.environ.update(self.environ)
            if tz != os.environ.get("TZ"):
                time.tzset()
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        os.umask(self.umask)
        sys.argv[:] = self.argv
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
        if self.locale is not None and _locale() != self.locale:
            import locale

            locale.setlocale(locale.LC_ALL, self.locale)
        for sig, handler in self.signals.items():
            if signal.getsignal(sig) is not handler and handler is not None:
                signal.signal(sig, handler)
        if warnings.filters != self.filters:
            warnings.filters[:] = self.filters
            getattr(warnings, "_filters_mutated", lambda: None)()
        for kind, values in self.store.items():
            if STORE[kind] != values:
                STORE[kind].clear()
                STORE[kind].update(values)
        if threading.active_count() > self.threads:
            return "the file started a thread"
        for namespace, names, values, name in self.watched:
            # same names, each bound to the very same object (identity: a replaced function or
            # class)
            if len(namespace) != len(names) or namespace.keys() != names \
                    or not all(map(operator.is_, namespace.values(), values)):
                return f"the file changed {name!r}"
        return None


#: signal handlers a DAG file could install for the files after it (SIGALRM, SIGSEGV and SIGUSR1
#: are the sandbox's own and set again for every file)
_SIGNALS = tuple(getattr(signal, name)
                 for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGPIPE", "SIGUSR2")
                 if hasattr(signal, name))


def _locale() -> str | None:
    import locale

    try:
        return locale.setlocale(locale.LC_ALL, None)
    except locale.Error:
        return None


def watched(ad) -> list[Any]:
    """Objects whose attributes a DAG file could replace for every file after it."""
    import builtins

    objects: list[Any] = [builtins, os, sys, ad.DAG]
    for name in ("airflow.settings", "airflow.models.baseoperator", "airflow.sdk.bases.operator",
                 "airflow.sdk.definitions._internal.abstractoperator", "airflow.models.variable",
                 "airflow.hooks.base", "airflow.sdk.bases.hook"):
        module = sys.modules.get(name)
        if module is not None:
            objects.append(module)
    for cls in ad.variable_classes():
        objects.append(cls)
    return objects
