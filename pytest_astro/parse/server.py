"""The parse sandbox: a warm process that imports Airflow once and forks children that parse DAG files.

Started by ``engine.py`` as ``python -m pytest_astro.parse.server`` with a sandbox environment
(AIRFLOW_HOME at the project root, what Airflow writes in a throwaway folder, a metadata-database URL
that cannot be opened). It reads one JSON request on stdin and writes one JSON line per file on
stdout, as files finish.

Why forked children: user DAG code may call ``os._exit``, loop forever, segfault, allocate
without bound, or monkeypatch Airflow and ``sys.path``. In a forked child all of that stays in
the child; the parent kills it at the deadline and reports the cause. Forking from a parent
that has already imported Airflow (and the third-party modules the DAG files import, and parsed
a warm-up DAG, then ``gc.freeze()``) makes a child cost milliseconds instead of the seconds
``import airflow`` takes.

Why batches (``isolation = "batch"``, the default): a fork still costs ~10-20 ms of CPU here (page
tables, copy-on-write faults as the child touches shared objects), against ~3-5 ms to parse a small
DAG file. So a child parses up to ``_MAX_BATCH`` files in turn and, between two files, resets what a
file can leave behind (``_Snapshot``): project modules, ``sys.path``, the environment, the working
directory, warning filters, the served variables. A file that leaves what cannot be reset (a
thread, a replaced attribute of Airflow or of ``os``/``sys``/``builtins``) ends its child, and a
file that fails after other files ran in the same child is parsed again alone, in a fresh fork,
and that verdict is the one reported (a syntax error or a timeout is not: neither depends on what
ran before). A crash, exit or hard timeout loses only the file being parsed; the rest of the batch
goes back to the queue. What files of one batch still share: in-place changes to third-party
modules, which preloading shares between all files anyway. ``isolation = "file"`` forks once per
file.
"""

from __future__ import annotations

import gc
import importlib
import importlib.machinery
import importlib.util
import json
import operator
import os
import re
import resource
import select
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The protocol channel is a private copy of stdout; fd 1 is pointed at stderr so that
# anything Airflow or user code prints can never corrupt it.
_PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

_TIMES: dict[str, float] = {"started": time.perf_counter()}  # what the sandbox spent its time on
_REAL_EXIT = os._exit  # children replace os._exit to report where a DAG file called it
_OUTPUT_LIMIT = 4000  # characters of a file's captured output kept in its result


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


@dataclass
class Limits:
    """What one DAG file may take: ``timeout`` seconds, ``memory`` bytes of resident memory on top of
    ``baseline`` (the sandbox's own, which a forked child starts with), and, only when the project
    opts in, ``address_space`` bytes of address space (RLIMIT_AS; 0: none)."""

    timeout: float
    memory: int = 0
    address_space: int = 0
    baseline: int = 0

    def over(self, peak: int) -> bool:
        return self.memory > 0 and peak - self.baseline > self.memory

    def memory_error(self, peak: int) -> dict:
        """The parts of a ParseError for a file whose import went past the memory limit."""
        return {"kind": "memory", "type": "MemoryError",
                "message": f"used {_size(peak - self.baseline)} at import, over the {_size(self.memory)} limit",
                "hint": "move the allocation into a task; or raise the limit with "
                        "--astro-memory-limit / astro_memory_limit"}


def _maxrss(usage) -> int:
    """Peak resident memory in bytes from a ``getrusage``/``wait4`` result (Linux counts KiB, macOS
    bytes). A forked child's peak starts at its parent's: compare peaks, not one peak with a limit."""
    return usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _address_space() -> int | None:
    """This process's address space (virtual size) in bytes, None where /proc cannot tell."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _resident(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes, None where /proc cannot tell (macOS, a reaped pid)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class ParseTimeout(BaseException):
    """Raised inside a child by SIGALRM when a file takes longer than the timeout."""


def _send(message: dict) -> None:
    _PROTO.write(json.dumps(message) + "\n")
    _PROTO.flush()


# --------------------------------------------------------------------------------------------
# Paths and frames


class _Paths:
    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self.prefix = self.root + os.sep
        self._in_project: dict[str, bool] = {}
        self._real: dict[str, str] = {}  # a child resolves the same few paths for every file

    def real(self, filename: str) -> str:
        try:
            return self._real[filename]
        except KeyError:
            real = self._real[filename] = os.path.realpath(filename)
            return real

    def in_project(self, filename: str) -> bool:
        try:
            return self._in_project[filename]
        except KeyError:
            found = self._in_project[filename] = self._find_in_project(filename)
            return found

    def _find_in_project(self, filename: str) -> bool:
        if not filename or filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
            return False
        real = self.real(filename)
        if not real.startswith(self.prefix):
            return False
        rel = real[len(self.prefix):]
        # a virtualenv inside the project is not the user's code
        return "site-packages" not in rel and not rel.startswith((".venv", "venv"))

    def rel(self, filename: str) -> str:
        real = self.real(filename)
        return real[len(self.prefix):].replace(os.sep, "/") if real.startswith(self.prefix) else real


def _user_frames(paths: _Paths, tb) -> list[dict]:
    frames = []
    for fs in traceback.extract_tb(tb):
        if paths.in_project(fs.filename):
            frames.append({"file": paths.rel(fs.filename), "line": fs.lineno or 0,
                           "function": fs.name, "source": (fs.line or "").strip()})
    return frames


def _stack_line_in(path: str, start_frame) -> int | None:
    """Line of the innermost frame, from ``start_frame`` outwards, that runs code of ``path``."""
    frame = start_frame
    while frame is not None:
        if frame.f_code.co_filename == path:
            return frame.f_lineno
        frame = frame.f_back
    return None


# --------------------------------------------------------------------------------------------
# Turning what went wrong into a ParseError dict


def _missing_module_hint(paths: _Paths, name: str | None) -> str:
    if not name:
        return ""
    top = name.split(".")[0]
    for base in (paths.root, os.path.join(paths.root, "dags"), os.path.join(paths.root, "plugins")):
        if os.path.isdir(os.path.join(base, top)) or os.path.isfile(os.path.join(base, top + ".py")):
            return (f"'{top}' is part of the project, but '{name}' was not found in it: "
                    "check the module path and that the file exists")
    return (f"is the package that provides '{top}' missing from requirements.txt? "
            "Add it there and install it where these tests run")


def _lookup_hint(kind: str, name: str) -> str:
    if kind == "variable":
        return (f"define it in airflow_settings.yaml (airflow.variables: - variable_name: {name}), or as "
                f"AIRFLOW_VAR_{name.upper()} in .env; or give Variable.get a default; or move the read into "
                f"a task (a Jinja template {{{{ var.value.{name} }}}} reads it at run time)")
    return (f"define it in airflow_settings.yaml (airflow.connections: - conn_id: {name}), or as "
            f"AIRFLOW_CONN_{name.upper()} in .env; or move the lookup into a task, where hooks resolve "
            "their connection at run time")


def _error_from_exception(paths: _Paths, target: str, exc: BaseException, limits: Limits) -> dict:
    from pytest_astro.dbguard import HEADLINE, HINT, find_in_chain
    from pytest_astro.netguard import find_in_chain as network_refused

    frames = _user_frames(paths, exc.__traceback__)
    where = frames[-1] if frames else {"file": paths.rel(target), "line": None, "source": ""}
    error: dict[str, Any] = {
        "kind": "exception", "type": type(exc).__name__, "message": str(exc),
        "file": where["file"], "line": where["line"], "column": None,
        "source_line": where.get("source", ""), "hint": "", "frames": frames,
    }
    lookup = _adapter_lookup_error(exc)
    if find_in_chain(exc) is not None or _looks_like_db_error(exc):
        error.update(kind="metadata_db", type="MetadataDatabaseAccess",
                     message=f"{HEADLINE} (at {where['file']}:{where['line']})" if where["line"] else HEADLINE,
                     hint=HINT)
    elif (refused := network_refused(exc)) is not None:
        error.update(kind="network", type="NetworkAccess", message=str(refused), hint=refused.hint)
    elif lookup:
        kind, name = lookup
        error.update(kind=f"missing_{kind}", type=f"Missing{kind.title()}",
                     message=f"{kind} '{name}' is not defined" + (
                         f" (read at {where['file']}:{where['line']})" if where["line"] else ""),
                     hint=_lookup_hint(kind, name))
    elif isinstance(exc, SyntaxError):
        error.update(kind="syntax", message=exc.msg or str(exc),
                     file=paths.rel(exc.filename) if exc.filename else error["file"],
                     line=exc.lineno, column=exc.offset, source_line=(exc.text or "").rstrip("\n"))
    elif isinstance(exc, ModuleNotFoundError):
        error.update(kind="missing_module", hint=_missing_module_hint(paths, exc.name))
    elif isinstance(exc, SystemExit):
        error.update(kind="exit", message=f"the file called sys.exit({exc.code!r}) while being imported",
                     hint="DAG files must not exit: remove the call, or move it into a task")
    elif isinstance(exc, ParseTimeout):
        error.update(kind="timeout", type="Timeout",
                     message=f"importing the file took longer than {limits.timeout:g} s (stopped here)",
                     hint="find what blocks at import (a loop, a network call, a sleep) and move it "
                          "into a task; or raise the limit with --astro-timeout / astro_timeout")
    elif isinstance(exc, MemoryError):  # malloc failed: the opt-in address-space limit, or the machine's
        error.update(kind="memory", message=(
                         f"importing the file hit the address-space limit of {_size(limits.address_space)} "
                         "(address_space_limit)" if limits.address_space else
                         "importing the file ran out of memory (the machine's, or a limit set outside pytest-astro)"),
                     hint="move the allocation into a task" + (
                         "; or raise address_space_limit in [tool.pytest-astro], or remove it to limit "
                         "resident memory only" if limits.address_space else ""))
    return error


def _error_base(paths: _Paths, target: str) -> dict:
    """A ParseError dict about ``target`` as a whole (no line): the fields the kinds fill in."""
    return {"kind": "exception", "type": "", "message": "", "file": paths.rel(target), "line": None,
            "column": None, "source_line": "", "hint": "", "frames": []}


#: pytest-astro's own package folder: frames there are ours
_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _our_name(filename: str) -> str:
    """``pytest_astro/parse/adapter.py`` for a file of ours; other paths as they are."""
    if filename.startswith(_OURS):
        return "pytest_astro/" + filename[len(_OURS):].replace(os.sep, "/")
    return filename


def _failure_of_ours(exc: BaseException) -> dict:
    """What to say about an exception raised by pytest-astro's own code: the component (our innermost
    frame), the exception, and the whole traceback (Airflow's frames too: a bug report needs them)."""
    entries = traceback.extract_tb(exc.__traceback__)
    ours = [fs for fs in entries if fs.filename.startswith(_OURS)]
    return {"component": f"{_our_name(ours[-1].filename)} ({ours[-1].name})" if ours else "parse sandbox",
            "exception": f"{type(exc).__name__}: {exc}",
            "frames": [{"file": _our_name(fs.filename), "line": fs.lineno or 0, "function": fs.name,
                        "source": (fs.line or "").strip()} for fs in entries]}


def _internal_error(paths: _Paths, target: str, failure: dict, dag_id: str | None = None) -> dict:
    """A ParseError dict (kind ``internal``) for ``failure`` (``_failure_of_ours``) while checking
    ``target``: names the component and the DAG, and says that it is our bug, not the user's."""
    from pytest_astro.results import INTERNAL_NOTICE

    what = f"DAG {dag_id!r} of {paths.rel(target)}" if dag_id else paths.rel(target)
    return {**_error_base(paths, target), "kind": "internal", "type": "InternalError",
            "message": f"pytest-astro's {failure['component']} failed on {what}: {failure['exception']}; "
                       f"{INTERNAL_NOTICE}",
            "frames": failure["frames"]}


def _adapter_lookup_error(exc: BaseException):
    try:
        from pytest_astro.parse.adapter import adapter

        return adapter().lookup_error(exc)
    except Exception:
        return None


def _looks_like_db_error(exc: BaseException) -> bool:
    """A SQLAlchemy error about the (deliberately unusable) metadata database URL."""
    return type(exc).__module__.startswith("sqlalchemy") and "unable to open database file" in str(exc)


def _error_from_text(paths: _Paths, target: str, text: str, dag_id_lines: dict[str, int]) -> dict:
    """An error Airflow recorded about a DAG it refused (a cycle, a cluster policy), placed at the
    line where that DAG was created when the message names its dag_id."""
    last = text.strip().splitlines()[-1] if text.strip() else text
    m = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Violation|Warning)?):\s*(.*)$", last)
    type_, message = (m.group(1).rsplit(".", 1)[-1], m.group(2)) if m else ("ImportError", last)
    named = [dag_id for dag_id in dag_id_lines if re.search(rf"\b{re.escape(dag_id)}\b", message)]
    line = dag_id_lines[max(named, key=len)] if named else None
    return {"kind": "dag", "type": type_, "message": message, "file": paths.rel(target),
            "line": line, "column": None, "source_line": "", "hint": "", "frames": []}


# --------------------------------------------------------------------------------------------
# The child: parse a batch of files, one result line per file, exit


#: failure kinds that cannot depend on what ran before in the same process: never re-run alone
_DETERMINISTIC = frozenset({"syntax", "timeout"})


@dataclass
class Job:
    files: list[str]  # absolute paths, parsed in this order by one forked child
    pid: int
    fd: int  # read end of the result pipe
    fault_path: str
    out_paths: list[str]
    started: float
    deadline: float
    buffer: bytearray = field(default_factory=bytearray)  # an incomplete line
    done: int = 0  # results received
    stopped: str = ""  # why the child said it stops: "done", or why it ended its batch early
    solo: bool = False  # a re-run of one file alone, in a fresh fork
    killed: bool = False
    dumped: bool = False
    baseline: int = 0  # resident memory the child started with (the sandbox's), bytes
    peak: int = 0  # the highest resident memory seen (sampled, then the child's ru_maxrss), bytes
    over_memory: bool = False  # killed for going past the memory limit


class _Current:
    """What the hooks installed once per child need to know about the file being parsed."""

    def __init__(self) -> None:
        self.target = ""
        self.real_target = ""
        self.captured: list[BaseException] = []
        self.files_read: set[str] = set()
        self.imported_names: list[str] = []
        self.dag_lines: dict[int, int] = {}
        self.dag_id_lines: dict[str, int] = {}  # to place errors Airflow reports by dag_id (a cycle)
        self.warnings: list[str] = []
        self.started = 0.0
        self.out_path = ""  # where fds 1 and 2 point while the file is parsed
        self.reported = False  # exactly one result line per file: the parent counts them

    def reset(self, target: str) -> None:
        self.__init__()
        self.target = target
        self.real_target = os.path.realpath(target)
        self.started = time.perf_counter()


class _Snapshot:
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
        self.watched = [(vars(obj), set(vars(obj)), list(vars(obj).values()), getattr(obj, "__name__", obj))
                        for obj in watched]
        self.umask = os.umask(0o22)
        os.umask(self.umask)
        self.recursion_limit = sys.getrecursionlimit()
        self.locale = _locale()
        self.signals = {sig: signal.getsignal(sig) for sig in _SIGNALS}

    def restore(self, paths: _Paths) -> str | None:
        """Put back what can be put back; the reason to stop this child, if any."""
        import threading
        import warnings

        from pytest_astro.parse.secrets_backend import STORE

        for name in [n for n in sys.modules.keys() - self.modules]:
            module = sys.modules.get(name)
            where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or []), None)
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
            # same names, each bound to the very same object (identity: a replaced function or class)
            if len(namespace) != len(names) or namespace.keys() != names \
                    or not all(map(operator.is_, namespace.values(), values)):
                return f"the file changed {name!r}"
        return None


#: signal handlers a DAG file could install for the files after it (SIGALRM, SIGSEGV and SIGUSR1
#: are the sandbox's own and set again for every file)
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGPIPE", "SIGUSR2")
                 if hasattr(signal, name))


def _locale() -> str | None:
    import locale

    try:
        return locale.setlocale(locale.LC_ALL, None)
    except locale.Error:
        return None


def _watched(ad) -> list[Any]:
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


def _child(paths: _Paths, targets: list[str], result_fd: int, fault_path: str, out_paths: list[str],
           limits: Limits, policy_options: dict, missing_variables: str,
           coverage_settings: dict | None) -> None:
    """Runs in the forked child: parses ``targets`` in order, one result line each; never returns.

    Ends early (the parent re-queues the rest) after a failure, or when a file leaves behind state
    that cannot be reset: a failure may have left Airflow half-way through something.
    """
    real_exit = os._exit
    # The user's files are compiled afresh in every child, never cached: Python's staleness check
    # (mtime in seconds, size) would let a same-second, same-size edit reuse old bytecode.
    sys.dont_write_bytecode = True
    try:
        os.setpgid(0, 0)  # so that a timeout kill also reaches anything the file started
    except OSError:
        pass
    fault_file = open(fault_path, "w")
    import faulthandler

    # Airflow's warm-up parse left a Python-level SIGSEGV handler in the parent, which would turn
    # a segfault into an endless loop: restore the default so faulthandler can dump and re-raise.
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    faulthandler.enable(file=fault_file, all_threads=False)
    # the parent sends SIGUSR1 before killing a file that ignored the soft timeout or went past the
    # memory limit: dump where it is
    faulthandler.register(signal.SIGUSR1, file=fault_file, all_threads=False)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    _, hard_as = resource.getrlimit(resource.RLIMIT_AS)

    cur = _Current()
    setup_reads: set[str] = set()

    def audit(event, args):
        # project files read while parsing (a YAML config of a dynamic DAG, a module's source or
        # .pyc, whichever way it was imported): cache dependencies
        if event == "open" and args and isinstance(args[0], str) and (len(args) < 2 or not args[1]
                                                                       or "r" in str(args[1])):
            cur.files_read.add(args[0])
        elif event == "import" and args:  # an `import` statement loading a module not loaded yet
            cur.imported_names.append(args[0])

    def write_result(result: dict) -> None:
        """One line to the parent: ``{"stop": ...}`` as JSON; a file's result as ``<ok> <kind> <json>``,
        a header the parent reads instead of decoding the result (it passes the JSON on as is)."""
        if "stop" in result:
            line = json.dumps(result)
        else:
            kind = result["errors"][0].get("kind") or "-" if result["errors"] else "-"
            # default=str: a value of the user's that summarize() let through (a description object)
            # must not cost the file its verdict
            line = f"{int(result['ok'])} {kind} {json.dumps(result, default=str)}"
        data = (line + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(result_fd, view)
            view = view[written:]
        if "stop" not in result:
            cur.reported = True  # only once written: a failure before this reports the file again

    def finish(errors: list[dict], dags: list[dict]) -> None:
        if cur.reported:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        save_coverage(measuring)
        # Not a scan of sys.modules: touching every module object's refcount made each child
        # copy ~1,400 pages shared with the parent (~7 ms per file, measured).
        deps = {getattr(sys.modules.get(name), "__file__", None) for name in cur.imported_names}
        for f in cur.files_read | setup_reads:
            if f.endswith(".pyc"):
                try:
                    f = importlib.util.source_from_cache(f)
                except ValueError:
                    continue
            deps.add(f)
        deps.discard(None)
        imported = sorted({paths.rel(f) for f in deps if os.path.isfile(f) and paths.in_project(f)
                           and paths.real(f) != cur.real_target})
        write_result({"file": paths.rel(cur.target), "ok": not errors, "dags": dags, "errors": errors,
                      "warnings": cur.warnings,
                      "seconds": time.perf_counter() - cur.started,
                      "peak_memory": _maxrss(resource.getrusage(resource.RUSAGE_SELF)), "imported": imported,
                      "stdout": _read_tail(cur.out_path)})

    def on_alarm(signum, frame):
        raise ParseTimeout()

    def exit_hook(code=0):
        target = cur.target
        line = _stack_line_in(target, sys._getframe(1))
        frames = [{"file": paths.rel(target), "line": line, "function": "<module>", "source": ""}] if line else []
        finish([{"kind": "exit", "type": "os._exit", "file": paths.rel(target), "line": line, "column": None,
                 "message": f"the file called os._exit({code!r}) while being imported, which ends the "
                            "process that imports it (Airflow's DAG processor included)",
                 "source_line": "", "hint": "DAG files must not exit: remove the call", "frames": frames}], [])
        write_result({"stop": f"{paths.rel(target)}: the file called os._exit"})
        real_exit(0)

    # Airflow installs a Python-level SIGSEGV handler, which cannot recover from a real
    # segfault (the faulting instruction re-runs forever); keep faulthandler's instead.
    real_signal = signal.signal

    def guarded_signal(signum, handler):
        if signum == signal.SIGSEGV:
            return signal.getsignal(signum)
        return real_signal(signum, handler)

    real_exec_module = importlib.machinery.SourceFileLoader.exec_module

    def exec_module(loader, module):
        try:
            return real_exec_module(loader, module)
        except BaseException as exc:
            if os.path.realpath(getattr(loader, "path", "")) == cur.real_target:
                cur.captured.append(exc)
            raise

    from pytest_astro.parse.adapter import adapter
    from pytest_astro.parse.coverage_support import save_coverage, start_in_child
    from pytest_astro.policies.sandbox import inspect_dag, prepare, reset_records

    ad = adapter()

    def dag_init(self, *args, **kwargs):
        line = _stack_line_in(cur.target, sys._getframe(1))
        if line:
            cur.dag_lines.setdefault(id(self), line)
            dag_id = kwargs.get("dag_id", args[0] if args else None)
            if isinstance(dag_id, str):
                cur.dag_id_lines.setdefault(dag_id, line)
        return real_dag_init(self, *args, **kwargs)

    sys.addaudithook(audit)
    if missing_variables == "placeholder":
        def on_missing(name: str) -> None:
            line = _stack_line_in(cur.target, sys._getframe(1))
            where = f"{paths.rel(cur.target)}:{line}" if line else paths.rel(cur.target)
            cur.warnings.append(f"{where}: variable '{name}' is not defined; served a placeholder "
                                "(missing_variables = \"placeholder\")")

        ad.serve_placeholders(on_missing)
    measuring = start_in_child(coverage_settings)
    # DAG policies: record constructor arguments, load the project's cluster policies. What this
    # reads (airflow_local_settings.py) is a dependency of every file of the batch.
    prepare(ad, policy_options, paths.root)
    setup_reads |= cur.files_read
    signal.signal = guarded_signal
    os._exit = exit_hook
    importlib.machinery.SourceFileLoader.exec_module = exec_module
    real_dag_init = ad.DAG.__init__  # prepare()'s recorder, which dag_init wraps
    ad.DAG.__init__ = dag_init
    real_signal(signal.SIGALRM, on_alarm)
    snapshot = _Snapshot(_watched(ad))  # after our own hooks: those are meant to stay

    for index, (target, out_path) in enumerate(zip(targets, out_paths)):
        cur.reset(target)
        cur.out_path = out_path
        reset_records()
        if index:  # the previous file may have installed handlers of its own for these
            real_signal(signal.SIGALRM, on_alarm)
            faulthandler.register(signal.SIGUSR1, file=fault_file, all_threads=False)
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        if limits.address_space > 0:  # opt-in: address space is not memory (see Limits)
            current = _address_space()
            if current:
                try:
                    resource.setrlimit(resource.RLIMIT_AS, (current + limits.address_space, hard_as))
                except (ValueError, OSError):
                    pass
        failed = True
        peak_before = _maxrss(resource.getrusage(resource.RUSAGE_SELF))
        ours = False  # past the import: what fails now is pytest-astro's own code
        dag_id = None  # the DAG our code is looking at, named if that code fails
        signal.setitimer(signal.ITIMER_REAL, limits.timeout)
        try:
            bag = ad.new_dagbag(target)
            dags, error_texts = ad.parse_file(bag, target)
            signal.setitimer(signal.ITIMER_REAL, 0)
            ours = True
            errors = [_error_from_exception(paths, target, exc, limits) for exc in cur.captured[:1]]
            if not errors:
                errors = [_error_from_text(paths, target, text, cur.dag_id_lines) for text in error_texts]
            # the parent watches resident memory while the file runs; a peak between two of its looks
            # (or where it cannot look: macOS) is caught here, once the import is over
            peak = _maxrss(resource.getrusage(resource.RUSAGE_SELF))
            if peak > peak_before and limits.over(peak):
                errors = [{**_error_base(paths, target), **limits.memory_error(peak)}]
            summaries = []
            for dag in dags:
                dag_id = getattr(dag, "dag_id", None)
                summary = ad.summarize(dag, paths.rel(target), cur.dag_lines.get(id(dag)))
                summary["checks"] = inspect_dag(dag, ad, policy_options, (target, summary["line"]))
                summaries.append(summary)
            del bag, dags
            failed = bool(errors)
            finish(errors, summaries)
        except BaseException as exc:  # a timeout or an exit Airflow does not record, or a bug of ours
            signal.setitimer(signal.ITIMER_REAL, 0)
            if cur.reported:  # failed after reporting: this child is not to be trusted further
                break
            if ours and not isinstance(exc, MemoryError):
                finish([_internal_error(paths, target, _failure_of_ours(exc), dag_id)], [])
            else:
                finish([_error_from_exception(paths, target, exc, limits)], [])
        if failed:
            break
        reason = snapshot.restore(paths)
        if reason:
            write_result({"stop": f"{paths.rel(target)}: {reason}"})
            real_exit(0)
    write_result({"stop": "done"})
    real_exit(0)


# --------------------------------------------------------------------------------------------
# The parent: warm up, fork, watch deadlines, report


def _describe_death(status: int, job: Job, paths: _Paths, limits: Limits, peak: int) -> dict:
    """A ParseError for a child that ended without writing its result."""
    target = job.files[job.done]
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _BUG_STATUS:
        try:
            return _internal_error(paths, target, json.loads(Path(job.fault_path + ".ours").read_text()))
        except (OSError, ValueError):
            pass
    base = _error_base(paths, target)
    fault = ""
    try:
        fault = Path(job.fault_path).read_text(errors="replace")
    except OSError:
        pass
    frames = [{"file": paths.rel(f), "line": int(n), "function": fn, "source": ""}
              for f, n, fn in re.findall(r'File "([^"]+)", line (\d+) in (\S+)', fault) if paths.in_project(f)]
    if frames:
        base.update(frames=list(reversed(frames)), file=frames[0]["file"], line=frames[0]["line"])
    if job.over_memory:
        return {**base, **limits.memory_error(peak)}
    if job.killed:
        return {**base, "kind": "timeout", "type": "Timeout",
                "message": f"importing the file did not finish within {limits.timeout:g} s and was killed",
                "hint": "find what blocks at import (a loop, a network call) and move it into a task; "
                        "or raise the limit with --astro-timeout / astro_timeout"}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        what = {"SIGSEGV": "a segmentation fault", "SIGABRT": "an abort", "SIGBUS": "a bus error",
                "SIGKILL": "SIGKILL (the system's out-of-memory killer?)"}.get(name, name)
        return {**base, "kind": "crash", "type": name,
                "message": f"the process importing the file died of {what}",
                "hint": "usually a C extension misbehaving at import time; import it inside a task"}
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return {**base, "kind": "exit", "type": "exit",
            "message": f"the process importing the file exited with status {code} before reporting",
            "hint": "DAG files must not end the process (os._exit, os.abort, a C library exit)"}


def _preload(modules: list[list], timeout: float) -> None:
    """Import what the DAG files import from outside the project, once, before forking.

    Also resolves the names taken from each module: ``airflow.sdk`` loads ``dag``, ``task``... lazily
    on first access, which would otherwise be paid again in every child.
    """
    def on_alarm(signum, frame):
        raise ParseTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    for name, attributes in modules:
        signal.setitimer(signal.ITIMER_REAL, timeout)  # a module that hangs at import is skipped here
        try:
            if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is None:
                continue
            module = importlib.import_module(name)
            for attribute in attributes:
                getattr(module, attribute, None)
        except BaseException:  # a module that fails here will fail (and be reported) in the child
            continue
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _forget_bytecode(folder: str) -> None:
    """Remove the bytecode cached under PYTHONPYCACHEPREFIX for the files of ``folder``."""
    if sys.pycache_prefix:
        import shutil

        shutil.rmtree(os.path.join(sys.pycache_prefix, os.path.realpath(folder).lstrip(os.sep)),
                      ignore_errors=True)


def _warm_up(paths: _Paths) -> None:
    from pytest_astro.parse.adapter import adapter

    ad = adapter()
    with tempfile.TemporaryDirectory(prefix="pytest-astro-warmup-") as tmp:
        path = os.path.join(tmp, "pytest_astro_warmup.py")
        with open(path, "w") as fh:
            fh.write(ad.warmup_source())
        try:
            dags, _ = ad.parse_file(ad.new_dagbag(path), path)
            # Each child also summarizes and serializes its DAGs; Airflow imports the serialization
            # modules (SQLAlchemy models, trigger and sensor classes) lazily on first use, which
            # cost every child ~120 ms (measured) unless done here once, before forking.
            import pytest_astro.parse.coverage_support  # noqa: F401
            import pytest_astro.policies.sandbox  # noqa: F401

            for dag in dags:
                ad.summarize(dag, paths.rel(path), None)
                ad.serialize_round_trip(dag)
        except Exception:
            pass
        _forget_bytecode(tmp)  # the warm-up file's own
    # the timetable classes of the common schedules are imported lazily by (de)serialization too
    from datetime import datetime, timedelta

    for i, schedule in enumerate(("@daily", "0 3 * * *", timedelta(hours=1), "@once", None)):
        try:
            with ad.DAG(f"pytest_astro_warmup_schedule_{i}", schedule=schedule,
                        start_date=datetime(2024, 1, 1)) as dag:
                pass
            ad.serialize_round_trip(dag)
        except Exception:
            continue


def start(root: str, sys_path: list[str]) -> str | None:
    """Everything that does not depend on which files are parsed: runs while the engine is still
    checking its cache and reading the DAG files' imports. Returns a fatal message, or None."""
    _forget_bytecode(root)  # only installed modules' bytecode is kept between runs (see _child)
    os.chdir(root)
    # appended, as Airflow does: a DAG file named like a package (dags/deprecated.py) must not
    # shadow the real one for Airflow's own imports
    for p in sys_path:
        if p not in sys.path:
            sys.path.append(p)
    try:
        from pytest_astro.parse.adapter import adapter
    except ImportError as exc:
        return (f"cannot import Airflow in {sys.executable}: {exc}. Install Airflow in the "
                "environment that runs pytest-astro (pip install 'pytest-astro[airflow]' or the "
                "apache-airflow version your Astro Runtime uses)")

    # Airflow logs every import failure with a full traceback; we report it better ourselves, and
    # the captured output of a file should be what the file printed.
    import logging

    for name in ("airflow.dag_processing", "airflow.dag_processing.dagbag.DagBag", "airflow.models.dagbag",
                 "airflow.models.dagbag.DagBag"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)

    _install_guards()
    adapter().disable_metastore_secrets()
    return None


def _install_guards() -> None:
    """What parse-time code may not do, refused with a clear error in every child (installed once, in
    the parent, before forking): reach the metadata database."""
    from pytest_astro.dbguard import install as install_db_guard

    install_db_guard()


def serve(root: str, request: dict) -> int:
    from pytest_astro.netguard import install as install_network_guard
    from pytest_astro.parse.adapter import AIRFLOW_VERSION
    from pytest_astro.parse.secrets_backend import STORE

    paths = _Paths(root)
    files: list[str] = request["files"]
    timeout = float(request["timeout"])
    limits = Limits(timeout, int(request["memory_limit"]), int(request.get("address_space_limit") or 0))
    workers = max(1, int(request["workers"]))
    hard_grace = min(5.0, max(1.0, timeout / 2))
    STORE["variables"].update(request.get("variables", {}))
    STORE["connections"].update(request.get("connections", {}))

    install_network_guard(request.get("allow_network", []))  # before the preload imports anything
    _preload(request.get("preload", []), timeout)
    _TIMES["preloaded"] = time.perf_counter()
    if len(files) > 2 * workers:
        # what a warm-up and a clean heap save each child is paid once here; for a few files
        # (one DAG file edited) it would cost more than it saves (~0.2 s)
        _warm_up(paths)
        gc.collect()
    gc.freeze()
    _TIMES["warmed up"] = time.perf_counter()
    _send({"ready": True, "airflow": AIRFLOW_VERSION})

    tmp = tempfile.mkdtemp(prefix="pytest-astro-parse-")
    batching = request.get("isolation", "batch") == "batch"
    # (file, solo): solo entries are re-runs of a file alone in a fresh fork; they go to the front,
    # after what remains of the batch their child was parsing
    pending: deque[tuple[str, bool]] = deque((f, False) for f in files)
    running: dict[int, Job] = {}  # fd -> job
    counter = iter(range(1, 1 << 62))
    tally: dict[str, Any] = {"processes": 0, "rechecked": 0, "ended_early": []}
    options = (request.get("policy_options", {}), request.get("missing_variables", "error"), request.get("coverage"))
    sys.stdout.flush()
    sys.stderr.flush()

    def take() -> tuple[list[str], bool]:
        target, solo = pending.popleft()
        tally["processes"] += 1
        tally["rechecked"] += solo
        if solo or not batching:
            return [target], solo
        # batches shrink as the queue drains, so that the workers finish together
        size = max(1, min(_MAX_BATCH, len(pending) // (workers * 2)))
        batch = [target]
        while pending and len(batch) < size and not pending[0][1]:
            batch.append(pending.popleft()[0])
        return batch, False

    while pending or running:
        while pending and len(running) < workers:
            targets, solo = take()
            n = next(counter)
            fault_path = os.path.join(tmp, f"{n}.fault")
            out_paths = [os.path.join(tmp, f"{n}-{i}.out") for i in range(len(targets))]
            read_fd, write_fd = os.pipe()
            # the child starts with the sandbox's resident memory: the limit is on what it adds
            limits.baseline = _resident(os.getpid()) or _maxrss(resource.getrusage(resource.RUSAGE_SELF))
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(read_fd)
                    for job in running.values():
                        os.close(job.fd)
                    _child(paths, targets, write_fd, fault_path, out_paths, limits, *options)
                except BaseException as exc:  # our own code failed outside any one file's check
                    with open(fault_path + ".ours", "w") as fh:
                        json.dump(_failure_of_ours(exc), fh)
                finally:
                    _REAL_EXIT(_BUG_STATUS)  # only reached if the child itself failed before reporting
            os.close(write_fd)
            now = time.monotonic()
            running[read_fd] = Job(targets, pid, read_fd, fault_path, out_paths, now, now + timeout + hard_grace,
                                   solo=solo, baseline=limits.baseline)
        now = time.monotonic()
        wait = max(0.0, min(job.deadline for job in running.values()) - now)
        if limits.memory > 0:
            wait = min(wait, _MEMORY_INTERVAL)
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            job = running[fd]
            chunk = os.read(fd, 1 << 16)
            if chunk:
                *lines, rest = (job.buffer + chunk).split(b"\n")
                job.buffer = bytearray(rest)
                for line in lines:
                    _on_line(job, line, lambda f: pending.appendleft((f, True)), timeout + hard_grace,
                             tally["ended_early"])
                continue
            # EOF: the child ended, by choice (it said "stop") or not
            os.close(fd)
            del running[fd]
            _, status, usage = os.wait4(job.pid, 0)
            job.peak = max(job.peak, _maxrss(usage))
            rest = job.files[job.done:]  # not reported: back to the queue
            # it died while parsing this one; or stopped before reporting any file (a bug of ours: back
            # in the queue, that file would come back forever)
            dead = rest.pop(0) if rest and (not job.stopped or job.done == 0) else None
            pending.extendleft((f, False) for f in reversed(rest))
            if dead is not None and job.stopped:
                _send({"result": _unreported(paths, dead)})
            elif dead is not None:
                if job.done == 0 or job.solo or job.killed:  # a verdict
                    _emit(_death_result(job, status, paths, limits), job.out_paths[job.done])
                else:  # an earlier file of the batch may have caused it: that file runs again, alone
                    pending.appendleft((dead, True))
            for path in [job.fault_path, job.fault_path + ".ours", *job.out_paths]:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        now = time.monotonic()
        if limits.memory > 0:
            _watch_memory(running.values(), limits, now)
        for fd, job in list(running.items()):
            if now >= job.deadline and not job.dumped:
                job.dumped = True  # ask faulthandler for the stack, then kill
                try:
                    os.kill(job.pid, signal.SIGUSR1)
                except OSError:
                    pass
                job.deadline = now + 0.3
            elif now >= job.deadline and not job.killed:
                job.killed = True
                try:
                    os.killpg(job.pid, signal.SIGKILL)
                except OSError:
                    try:
                        os.kill(job.pid, signal.SIGKILL)
                    except OSError:
                        pass
                job.deadline = now + 3600  # EOF follows the kill
    _TIMES["parsed"] = time.perf_counter()
    marks = list(_TIMES.items())
    tally["timings"] = {name: round(t - previous, 3) for (name, t), (_, previous) in zip(marks[1:], marks)}
    _send({"done": tally})
    return 0


#: most files one forked child parses in turn; a fork costs ~10 ms of CPU, a small file ~4 ms
_MAX_BATCH = 64


def _on_line(job: Job, line: bytes, retry_alone, per_file: float, ended_early: list[str]) -> None:
    """One line from a child: the result of its next file, or its last word."""
    if line.startswith(b"{"):
        try:
            message = json.loads(line.decode())
        except ValueError:  # never written by a sane child; its file is reported as a death at EOF
            return
        if "stop" in message:
            job.stopped = message["stop"]
            if message["stop"] != "done" and len(ended_early) < 20:
                ended_early.append(message["stop"])  # e.g. "dags/x.py: the file started a thread"
        return
    try:
        ok, kind, payload = line.split(b" ", 2)
        text = payload.decode()
    except ValueError:
        return
    index = job.done
    job.done += 1
    job.deadline = time.monotonic() + per_file
    job.dumped = job.over_memory = False  # the file finished: what was asked of it was for it alone
    job.started = time.monotonic()
    if ok == b"1" or index == 0 or job.solo or kind.decode() in _DETERMINISTIC:
        _PROTO.write('{"result": ' + text + "}\n")
        _PROTO.flush()
    else:  # failed after other files ran in the same process: the verdict comes from a fresh fork
        retry_alone(job.files[index])


def _death_result(job: Job, status: int, paths: _Paths, limits: Limits) -> dict:
    return {"file": paths.rel(job.files[job.done]), "ok": False, "dags": [],
            "errors": [_describe_death(status, job, paths, limits, job.peak)],
            "seconds": time.monotonic() - job.started, "peak_memory": job.peak, "imported": []}


def _unreported(paths: _Paths, target: str) -> dict:
    """The result for a file a child stopped at without reporting it (a bug of ours)."""
    from pytest_astro.results import INTERNAL_NOTICE

    return {"file": paths.rel(target), "ok": False, "dags": [], "imported": [], "errors": [{
        **_error_base(paths, target), "kind": "internal", "type": "InternalError",
        "message": f"the parse sandbox's child stopped without a verdict on {paths.rel(target)}; "
                   f"{INTERNAL_NOTICE}"}]}


#: how often the parent looks at its children's resident memory (seconds)
_MEMORY_INTERVAL = 0.05
#: the exit status of a child whose own (pytest-astro's) code failed; the failure is in <fault>.ours
_BUG_STATUS = 70


def _watch_memory(jobs: Iterable[Job], limits: Limits, now: float) -> None:
    """Look at each child's resident memory; one past the limit is asked for its stack (SIGUSR1, as for
    a timeout) and killed a moment later, and its file fails as ``memory`` with the peak."""
    for job in jobs:
        if job.killed or job.over_memory:
            continue
        rss = _resident(job.pid)
        if rss is None:
            continue
        job.peak = max(job.peak, rss)
        if rss - job.baseline > limits.memory:
            job.over_memory = True
            job.dumped = True
            try:
                os.kill(job.pid, signal.SIGUSR1)
            except OSError:
                pass
            job.deadline = now + _MEMORY_INTERVAL  # the kill follows (see serve)


def _read_tail(path: str) -> str:
    """What a file printed while being imported: the end of its output file."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 4 * _OUTPUT_LIMIT))
            return fh.read().decode(errors="replace")[-_OUTPUT_LIMIT:]
    except OSError:
        return ""


def _emit(result: dict, out_path: str) -> None:
    result["stdout"] = _read_tail(out_path)
    _send({"result": result})


def main() -> int:
    # argv: the project root and its import paths (known before the engine has decided which files
    # to parse); stdin: the request, once it has
    fatal = start(sys.argv[1], json.loads(sys.argv[2]))
    if fatal:
        _send({"fatal": fatal})
        return 1
    _TIMES["airflow imported"] = time.perf_counter()
    line = sys.stdin.readline()
    if not line:  # the engine found nothing to parse after all
        return 0
    _TIMES["request read"] = time.perf_counter()
    return serve(sys.argv[1], json.loads(line))


if __name__ == "__main__":
    sys.exit(main())
