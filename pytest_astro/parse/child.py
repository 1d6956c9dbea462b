"""What runs inside a forked child of the sandbox: parse a batch of DAG files in turn.

``run`` is called by the pool right after ``fork()`` and never returns. For each file the child
sends the pool one message (``messages.Result``, or ``messages.Rerun`` for a failure that followed
other files in this process), then ``messages.Stop`` when it ends. It ends early, leaving the rest
of the batch to the pool, after a failure (a failure may have left Airflow half-way through
something) or when a file leaves behind state that cannot be reset (``snapshot.Snapshot``).

What the pool learns without a message: where the child was when it died or was stopped
(faulthandler writes the stack to the fault file) and what each file printed (fds 1 and 2 point
at one output file per file).
"""

from __future__ import annotations

import faulthandler
import importlib.machinery
import importlib.util
import os
import resource
import signal
import sys
import time
from typing import NoReturn

from pytest_astro.parse.coverage_support import save_coverage, start_in_child
from pytest_astro.parse.errors import (at_file, failure_of_ours, from_exception, from_os_exit, from_text,
                                       internal)
from pytest_astro.parse.limits import Limits, ParseTimeout, address_space, maxrss
from pytest_astro.parse.messages import Request, Rerun, Result, Stop, Writer
from pytest_astro.parse.paths import ProjectPaths, read_tail, stack_line_in
from pytest_astro.parse.snapshot import Snapshot, watched
from pytest_astro.results import DagSummary, FileResult, ParseError

#: failure kinds that cannot depend on what ran before in the same process: never re-run alone
DETERMINISTIC = frozenset({"syntax", "timeout"})


def run(paths: ProjectPaths, request: Request, files: list[str], out_path: str, fault_path: str,
        result_fd: int, limits: Limits) -> NoReturn:
    """Parse ``files`` (absolute paths) in order, each with its output in ``out_path`` (emptied
    before each file), sending one message per file on ``result_fd``; exit."""
    Child(paths, request, limits, result_fd).run(files, out_path, fault_path)


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
        self.dags_made: dict[int, int] = {}  # id(dag) -> the order the DAGs were made in
        self.warnings: list[str] = []
        self.started = 0.0
        self.reported = False  # exactly one message per file: the pool counts them

    def reset(self, target: str) -> None:
        self.__init__()
        self.target = target
        self.real_target = os.path.realpath(target)
        self.started = time.perf_counter()


def _error_order(error: ParseError) -> tuple:
    """Errors of one file by line (those without one last), then by text: the order Airflow records
    them in varies between processes."""
    return error.line is None, error.line or 0, error.type, error.message


def _on_alarm(signum, frame):
    raise ParseTimeout()


class Child:
    """One forked child: its hooks into Python and Airflow, installed once, and the files it parses."""

    def __init__(self, paths: ProjectPaths, request: Request, limits: Limits, result_fd: int) -> None:
        self.paths = paths
        self.request = request
        self.limits = limits
        self._send = Writer(result_fd).send
        self.cur = _Current()
        # read before the first file (the cluster policies): a dependency of every file
        self.setup_reads: set[str] = set()
        self.index = 0  # of the file being parsed, in this child's batch
        self.measuring = None  # coverage of the files' code, when the pytest process is measured
        self.real_exit = os._exit
        self.real_signal = signal.signal
        self.fault_file = None
        self.hard_as = resource.RLIM_INFINITY
        self.out_path = ""  # the output file: fds 1 and 2 while a file is parsed, emptied for each
        self.out_fd = -1

    def run(self, files: list[str], out_path: str, fault_path: str) -> NoReturn:
        self._prepare_process(fault_path, out_path)
        ad = self._install_hooks()
        snapshot = Snapshot(watched(ad))  # after our own hooks: those are meant to stay
        for index, target in enumerate(files):
            self._begin(index, target)
            if self._check(ad, target):
                break
            reason = snapshot.restore(self.paths)
            if reason:
                self._send(Stop(f"{self.paths.rel(target)}: {reason}"))
                self.real_exit(0)
        self._send(Stop("done"))
        self.real_exit(0)

    def _prepare_process(self, fault_path: str, out_path: str) -> None:
        # The user's files are compiled afresh in every child, never cached: Python's staleness check
        # (mtime in seconds, size) would let a same-second, same-size edit reuse old bytecode.
        sys.dont_write_bytecode = True
        try:
            os.setpgid(0, 0)  # so that a timeout kill also reaches anything the file started
        except OSError:
            pass
        self.fault_file = open(fault_path, "w")
        # One output file per child, emptied before each file (O_APPEND: what is written after the
        # truncation starts at 0): creating a file costs more than parsing a small DAG file on some
        # file systems
        self.out_path = out_path
        self.out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        # Airflow's warm-up parse left a Python-level SIGSEGV handler in the parent, which would turn
        # a segfault into an endless loop: restore the default so faulthandler can dump and re-raise.
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        faulthandler.enable(file=self.fault_file, all_threads=False)
        # the pool sends SIGUSR1 before killing a file that ignored the soft timeout or went past the
        # memory limit: dump where it is
        faulthandler.register(signal.SIGUSR1, file=self.fault_file, all_threads=False)
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ValueError, OSError):
            pass
        _, self.hard_as = resource.getrlimit(resource.RLIMIT_AS)

    def _install_hooks(self):
        """What every file of this child runs under; returns the Airflow adapter."""
        from pytest_astro.parse.adapter import adapter
        from pytest_astro.policies.sandbox import prepare

        cur = self.cur

        def audit(event, args):
            # project files read while parsing (a YAML config of a dynamic DAG, a module's source or
            # .pyc, whichever way it was imported): cache dependencies
            if event == "open" and args and isinstance(args[0], str) and (len(args) < 2 or not args[1]
                                                                           or "r" in str(args[1])):
                cur.files_read.add(args[0])
            elif event == "import" and args:  # an `import` statement loading a module not loaded yet
                cur.imported_names.append(args[0])

        ad = adapter()
        sys.addaudithook(audit)
        if self.request.missing_variables == "placeholder":
            ad.serve_placeholders(self._on_missing_variable)
        self.measuring = start_in_child(self.request.coverage)
        # DAG policies: record constructor arguments, load the project's cluster policies. What this
        # reads (airflow_local_settings.py) is a dependency of every file of the batch.
        prepare(ad, self.request.policy_options, self.paths.root)
        self.setup_reads |= cur.files_read
        signal.signal = self._guarded_signal
        os._exit = self._exit_hook
        self._hook_module_exec()
        self._hook_dag_init(ad)
        self.real_signal(signal.SIGALRM, _on_alarm)
        return ad

    def _hook_module_exec(self) -> None:
        """Keep the exception the DAG file itself raised (Airflow records only its text)."""
        cur = self.cur
        real_exec_module = importlib.machinery.SourceFileLoader.exec_module

        def exec_module(loader, module):
            try:
                return real_exec_module(loader, module)
            except BaseException as exc:
                if os.path.realpath(getattr(loader, "path", "")) == cur.real_target:
                    cur.captured.append(exc)
                raise

        importlib.machinery.SourceFileLoader.exec_module = exec_module

    def _hook_dag_init(self, ad) -> None:
        """Record the line of the DAG file where each DAG is created."""
        cur = self.cur
        real_dag_init = ad.DAG.__init__  # policies.sandbox.prepare()'s recorder, which this wraps

        def dag_init(dag, *args, **kwargs):
            cur.dags_made.setdefault(id(dag), len(cur.dags_made))
            line = stack_line_in(cur.target, sys._getframe(1))
            if line:
                cur.dag_lines.setdefault(id(dag), line)
                dag_id = kwargs.get("dag_id", args[0] if args else None)
                if isinstance(dag_id, str):
                    cur.dag_id_lines.setdefault(dag_id, line)
            return real_dag_init(dag, *args, **kwargs)

        ad.DAG.__init__ = dag_init

    def _on_missing_variable(self, name: str) -> None:
        cur = self.cur
        line = stack_line_in(cur.target, sys._getframe(1))
        where = f"{self.paths.rel(cur.target)}:{line}" if line else self.paths.rel(cur.target)
        cur.warnings.append(f"{where}: variable '{name}' is not defined; served a placeholder "
                            "(missing_variables = \"placeholder\")")

    def _guarded_signal(self, signum, handler):
        # Airflow installs a Python-level SIGSEGV handler, which cannot recover from a real
        # segfault (the faulting instruction re-runs forever); keep faulthandler's instead.
        if signum == signal.SIGSEGV:
            return signal.getsignal(signum)
        return self.real_signal(signum, handler)

    def _exit_hook(self, code=0):
        """``os._exit`` while a file is parsed: its verdict, at the line that called it."""
        target = self.cur.target
        line = stack_line_in(target, sys._getframe(1))
        self._finish([from_os_exit(self.paths, target, code, line)], [])
        self._send(Stop(f"{self.paths.rel(target)}: the file called os._exit"))
        self.real_exit(0)

    def _begin(self, index: int, target: str) -> None:
        """Get ready for the next file: fresh per-file records, its output file, its limits."""
        from pytest_astro.policies.sandbox import reset_records

        self.index = index
        self.cur.reset(target)
        reset_records()
        if index:  # the previous file may have installed handlers of its own for these, and printed
            self.real_signal(signal.SIGALRM, _on_alarm)
            faulthandler.register(signal.SIGUSR1, file=self.fault_file, all_threads=False)
            os.ftruncate(self.out_fd, 0)
        os.dup2(self.out_fd, 1)
        os.dup2(self.out_fd, 2)
        if self.limits.address_space > 0:  # opt-in: address space is not memory (see Limits)
            current = address_space()
            if current:
                try:
                    limit = current + self.limits.address_space
                    resource.setrlimit(resource.RLIMIT_AS, (limit, self.hard_as))
                except (ValueError, OSError):
                    pass

    def _check(self, ad, target: str) -> bool:
        """Parse ``target`` and check its DAGs; send its verdict. Whether this child must stop."""
        from pytest_astro.policies.sandbox import inspect_dag

        paths, limits, cur = self.paths, self.limits, self.cur
        failed = True
        peak_before = maxrss(resource.getrusage(resource.RUSAGE_SELF))
        ours = False  # past the import: what fails now is pytest-astro's own code
        dag_id = None  # the DAG our code is looking at, named if that code fails
        signal.setitimer(signal.ITIMER_REAL, limits.timeout)
        try:
            bag = ad.new_dagbag(target)
            dags, refusals = ad.parse_file(bag, target)
            signal.setitimer(signal.ITIMER_REAL, 0)
            ours = True
            errors = [from_exception(paths, target, exc, limits) for exc in cur.captured[:1]]
            if not errors:  # every DAG Airflow refused, each at its own line
                errors = sorted((from_text(paths, target, text, cur.dag_id_lines, cur.dag_lines.get(id(dag)))
                                 for text, dag in refusals), key=_error_order)
            # the pool watches resident memory while the file runs; a peak between two of its looks
            # (or where it cannot look: macOS) is caught here, once the import is over
            peak = maxrss(resource.getrusage(resource.RUSAGE_SELF))
            if peak > peak_before and limits.over(peak):
                errors = [limits.memory_error(peak, at_file(paths, target))]
            summaries = []
            for dag in self._kept(dags):
                dag_id = getattr(dag, "dag_id", None)
                summary = ad.summarize(dag, paths.rel(target), cur.dag_lines.get(id(dag)))
                summary["checks"] = inspect_dag(dag, ad, self.request.policy_options,
                                                (target, summary["line"]))
                summaries.append(summary)
            del bag, dags
            failed = bool(errors)
            self._finish(errors, summaries)
        except BaseException as exc:  # a timeout or an exit Airflow does not record, or a bug of ours
            signal.setitimer(signal.ITIMER_REAL, 0)
            if cur.reported:  # failed after reporting: this child is not to be trusted further
                return True
            if ours and not isinstance(exc, MemoryError):
                self._finish([internal(paths, target, failure_of_ours(exc), dag_id)], [])
            else:
                self._finish([from_exception(paths, target, exc, limits)], [])
        return failed

    def _kept(self, dags: list) -> list:
        """The DAGs Airflow bagged, one per dag_id, by source line (then dag_id): a stable order.

        A dag_id made twice in the file is bagged twice: the second replaces the first in the bag,
        but which one comes second follows the order of a set, which varies between processes. The
        last one made is kept here, and a warning says so.
        """
        cur, rel = self.cur, self.paths.rel(self.cur.target)
        made: dict[str, list] = {}
        for dag in sorted(dags, key=lambda d: cur.dags_made.get(id(d), -1)):
            made.setdefault(dag.dag_id, []).append(dag)
        for dag_id, same in made.items():
            if len(same) > 1:
                lines = [cur.dag_lines.get(id(d)) for d in same]
                where = f"{rel}:{lines[-1]}" if lines[-1] else rel
                at = ", ".join(str(n) for n in lines if n)
                cur.warnings.append(f"{where}: dag_id {dag_id!r} is made {len(same)} times in this file"
                                    + (f" (lines {at})" if at else "") + ": Airflow keeps one of them, not "
                                    "always the same one; pytest-astro checks the last one made. Give each "
                                    "DAG its own dag_id")

        def by_line(dag) -> tuple:
            line = cur.dag_lines.get(id(dag))
            return line is None, line or 0, dag.dag_id

        return sorted((same[-1] for same in made.values()), key=by_line)

    def _finish(self, errors: list[ParseError], dags: list[dict]) -> None:
        """Send the file's verdict (once): a ``Result``, or a ``Rerun`` for a failure that followed
        other files in this process (unless it cannot depend on them: ``DETERMINISTIC``)."""
        cur = self.cur
        if cur.reported:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        save_coverage(self.measuring)
        rel = self.paths.rel(cur.target)
        if errors and self.index > 0 and errors[0].kind not in DETERMINISTIC:
            self._send(Rerun(rel))
        else:
            result = FileResult(file=rel, ok=not errors, dags=[DagSummary(**d) for d in dags], errors=errors,
                                warnings=cur.warnings, seconds=time.perf_counter() - cur.started,
                                peak_memory=maxrss(resource.getrusage(resource.RUSAGE_SELF)),
                                imported=self._imported(), stdout=read_tail(self.out_path))
            self._send(Result.of(result.to_dict()))
        cur.reported = True  # only once sent: a failure before this reports the file again

    def _imported(self) -> list[str]:
        """The project files the current file imported or read (relative): its cache dependencies."""
        paths, cur = self.paths, self.cur
        # Not a scan of sys.modules: touching every module object's refcount would make each child
        # copy the pages it shares with the parent.
        deps = {getattr(sys.modules.get(name), "__file__", None) for name in cur.imported_names}
        for f in cur.files_read | self.setup_reads:
            if f.endswith(".pyc"):
                try:
                    f = importlib.util.source_from_cache(f)
                except ValueError:
                    continue
            deps.add(f)
        deps.discard(None)
        return sorted({paths.rel(f) for f in deps if os.path.isfile(f) and paths.in_project(f)
                       and paths.real(f) != cur.real_target})
