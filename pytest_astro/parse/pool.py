"""The pool: forks children that parse batches of DAG files, N at a time, and watches them.

The pool cuts the queue of files into batches (``Queue``), forks a child per batch, reads each
child's messages (``messages.dispatch`` to ``on_<kind>``), passes every verdict on to the engine,
and enforces the limits a child cannot enforce on itself: the hard timeout (a file that blocks
SIGALRM) and the memory limit (it samples each child's resident memory). A child that dies loses
only the file it was parsing: the pool describes the death as that file's verdict
(``errors.from_death``) and queues the rest of the batch again. A file that failed after other
files ran in the same child is parsed again alone, in a fresh fork, and that verdict counts.
No Airflow here: the child's code is given to the pool as ``start_child``.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pytest_astro.parse.errors import failure_of_ours, from_death, unreported
from pytest_astro.parse.limits import Limits, maxrss, resident
from pytest_astro.parse.messages import Message, Rerun, Result, Stop, decode, dispatch
from pytest_astro.parse.paths import ProjectPaths, read_tail
from pytest_astro.results import FileResult

#: most files one forked child parses in turn: each fork pays again for the pages it touches of
#: the sandbox's memory (copy on write), more than parsing a small file costs. 256 against 64: 5,000
#: files, 95 forks -> 42, the run's system time 3.5 s -> 2.1 s, the whole run 7% faster
MAX_BATCH = 256
#: how often the pool looks at its children's resident memory (seconds)
MEMORY_INTERVAL = 0.05
#: how long a child asked for its stack (SIGUSR1) may take to write it before it is killed; it is
#: killed as soon as the stack is written. A loaded CI runner may not schedule it at once, and a
#: verdict without the user's line would read as ours
DUMP_GRACE = 1.0
#: the exit status of a child whose own (pytest-astro's) code failed; the failure is in <fault>.ours
BUG_STATUS = 70
#: at most this many reasons why children ended their batch early are kept for the stats
ENDED_EARLY_KEPT = 20

_exit = os._exit  # children replace os._exit to report where a DAG file called it


class Queue:
    """The files left to parse, each ``(path, solo)``: a solo file is a re-run alone in a fresh
    fork.

    Solo files go to the front, after what remains of the batch their child was parsing."""

    def __init__(self, files: Iterable[str], workers: int, batching: bool = True,
                 max_batch: int = MAX_BATCH):
        self.pending: deque[tuple[str, bool]] = deque((f, False) for f in files)
        self.workers = workers
        self.batching = batching  # False: isolation = "file", a fork per file
        self.max_batch = max_batch

    def __bool__(self) -> bool:
        return bool(self.pending)

    def take(self) -> tuple[list[str], bool]:
        """The next child's files, and whether it is a solo re-run. Batches shrink as the queue
        drains, so that the workers finish together."""
        target, solo = self.pending.popleft()
        if solo or not self.batching:
            return [target], solo
        size = max(1, min(self.max_batch, len(self.pending) // (self.workers * 2)))
        batch = [target]
        while self.pending and len(batch) < size and not self.pending[0][1]:
            batch.append(self.pending.popleft()[0])
        return batch, False

    def retry_alone(self, target: str) -> None:
        self.pending.appendleft((target, True))

    def put_back(self, targets: list[str]) -> None:
        """Files a child did not get to, first in line again, in their order."""
        self.pending.extendleft((f, False) for f in reversed(targets))


@dataclass
class Job:
    """One forked child and what the pool knows about it."""

    files: list[str]  # absolute paths, parsed in this order by the child
    pid: int
    fd: int  # read end of the child's message pipe
    fault_path: str  # faulthandler's output; <fault_path>.ours: a failure of our own child code
    out_path: str  # where the output of the file being parsed goes
    limits: Limits  # with the resident memory the child started with (the sandbox's) as baseline
    started: float
    deadline: float
    solo: bool = False  # a re-run of one file alone, in a fresh fork
    buffer: bytearray = field(default_factory=bytearray)  # an incomplete line
    done: int = 0  # files reported
    stopped: str = ""  # why the child said it stops: "done", or why it ended its batch early
    killed: bool = False
    dumped: bool = False  # asked for its stack (SIGUSR1): the kill follows
    peak: int = 0  # the highest resident memory seen (sampled, then the child's ru_maxrss), bytes
    over_memory: bool = False  # killed for going past the memory limit
    fault_size: int = 0  # the size of its fault file at the last look, once asked for its stack

    @property
    def current(self) -> str:
        """The file being parsed."""
        return self.files[self.done]


@dataclass
class PoolStats:
    processes: int = 0  # children forked
    rechecked: int = 0  # files parsed again alone after failing in a batch
    # why children stopped before their batch's end
    ended_early: list[str] = field(default_factory=list)


StartChild = Callable[[list[str], str, str, int, Limits], None]


class Pool:
    """Parse every file of ``queue`` with at most ``workers`` children at a time.

    ``start_child(files, out_path, fault_path, result_fd, limits)`` runs in the forked child and
    never returns; ``emit(message)`` sends a verdict (a ``Result``) on to the engine; ``tmp`` is a
    folder for the children's output and fault files."""

    def __init__(self, paths: ProjectPaths, limits: Limits, workers: int, queue: Queue,
                 start_child: StartChild, emit: Callable[[Message], None], tmp: str):
        self.paths = paths
        self.limits = limits
        self.workers = max(1, workers)
        self.queue = queue
        self.start_child = start_child
        self.emit = emit
        self.tmp = tmp
        self.running: dict[int, Job] = {}  # read fd -> job
        self.stats = PoolStats()
        # how long a file may run before the pool kills it: the child's own alarm comes first
        self.per_file = limits.timeout + min(5.0, max(1.0, limits.timeout / 2))

    def run(self) -> PoolStats:
        while self.queue or self.running:
            while self.queue and len(self.running) < self.workers:
                self._fork(*self.queue.take())
            self._wait()
            now = time.monotonic()
            if self.limits.memory > 0:
                self._watch_memory(now)
            self._watch_deadlines(now)
        return self.stats

    def _fork(self, files: list[str], solo: bool) -> None:
        self.stats.processes += 1
        self.stats.rechecked += solo
        n = self.stats.processes
        fault_path = os.path.join(self.tmp, f"{n}.fault")
        out_path = os.path.join(self.tmp, f"{n}.out")
        read_fd, write_fd = os.pipe()
        # the child starts with the sandbox's resident memory: the limit is on what it adds
        limits = replace(self.limits,
                         baseline=resident(os.getpid())
                         or maxrss(resource.getrusage(resource.RUSAGE_SELF)))
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                for job in self.running.values():
                    os.close(job.fd)
                self.start_child(files, out_path, fault_path, write_fd, limits)
            except BaseException as exc:  # our own code failed outside any one file's check
                with open(fault_path + ".ours", "w") as fh:
                    json.dump(failure_of_ours(exc), fh)
            finally:
                _exit(BUG_STATUS)  # only reached if the child itself failed before reporting
        os.close(write_fd)
        now = time.monotonic()
        self.running[read_fd] = Job(files, pid, read_fd, fault_path, out_path, limits, started=now,
                                    deadline=now + self.per_file, solo=solo)

    def _wait(self) -> None:
        """Read what the children sent until the first deadline (or the next memory look)."""
        now = time.monotonic()
        wait = max(0.0, min(job.deadline for job in self.running.values()) - now)
        if self.limits.memory > 0 or any(j.dumped and not j.killed for j in self.running.values()):
            wait = min(wait, MEMORY_INTERVAL)  # the next memory look, or a stack being written
        ready, _, _ = select.select(list(self.running), [], [], wait)
        for fd in ready:
            job = self.running[fd]
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # EOF: the child ended, by choice (it said Stop) or not
                self._reap(job)
                continue
            *lines, rest = (job.buffer + chunk).split(b"\n")
            job.buffer = bytearray(rest)
            for line in lines:
                try:
                    message = decode(line)
                except ValueError:
                    # never written by a sane child; its file is reported as a death at EOF
                    continue
                dispatch(self, message, job)

    # ------------------------------------------------------------------ a child's messages

    def on_result(self, message: Result, job: Job) -> None:
        self._next_file(job)
        self.emit(message)

    def on_rerun(self, message: Rerun, job: Job) -> None:
        target = job.current
        self._next_file(job)
        self.queue.retry_alone(target)

    def on_stop(self, message: Stop, job: Job) -> None:
        job.stopped = message.reason
        if message.reason != "done" and len(self.stats.ended_early) < ENDED_EARLY_KEPT:
            # e.g. "dags/x.py: the file started a thread"
            self.stats.ended_early.append(message.reason)

    def _next_file(self, job: Job) -> None:
        now = time.monotonic()
        job.done += 1
        job.deadline = now + self.per_file
        # the file finished: what was asked of it was for it alone
        job.dumped = job.over_memory = False
        job.started = now

    # ------------------------------------------------------------------ a child's end

    def _reap(self, job: Job) -> None:
        os.close(job.fd)
        del self.running[job.fd]
        _, status, usage = os.wait4(job.pid, 0)
        job.peak = max(job.peak, maxrss(usage))
        rest = job.files[job.done:]  # not reported: back to the queue
        # it died while parsing this one; or stopped before reporting any file (a bug of ours: back
        # in the queue, that file would come back forever)
        dead = rest.pop(0) if rest and (not job.stopped or job.done == 0) else None
        self.queue.put_back(rest)
        if dead is not None and job.stopped:
            self.emit(Result.of(FileResult(file=self.paths.rel(dead), ok=False,
                                           errors=[unreported(self.paths, dead)]).to_dict()))
        elif dead is not None:
            if job.done == 0 or job.solo or job.killed:  # a verdict
                self.emit(Result.of(self._death_result(job, status).to_dict()))
            else:  # an earlier file of the batch may have caused it: that file runs again, alone
                self.queue.retry_alone(dead)
        for path in (job.fault_path, job.fault_path + ".ours", job.out_path):
            try:
                os.unlink(path)
            except OSError:
                pass

    def _death_result(self, job: Job, status: int) -> FileResult:
        ours = None
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == BUG_STATUS:
            try:
                ours = json.loads(Path(job.fault_path + ".ours").read_text())
            except (OSError, ValueError):
                pass
        try:
            fault = Path(job.fault_path).read_text(errors="replace")
        except OSError:
            fault = ""
        error = from_death(self.paths, job.current, status, job.limits, peak=job.peak,
                           killed=job.killed,
                           over_memory=job.over_memory, fault=fault, ours=ours)
        return FileResult(file=self.paths.rel(job.current), ok=False, errors=[error],
                          seconds=time.monotonic() - job.started, peak_memory=job.peak,
                          stdout=read_tail(job.out_path))

    # ------------------------------------------------------------------ limits

    def _watch_memory(self, now: float) -> None:
        """Look at each child's resident memory; one past the limit is asked for its stack (SIGUSR1,
        as for a timeout) and killed a moment later, and its file fails as ``memory`` with the
        peak."""
        for job in self.running.values():
            if job.killed or job.over_memory:
                continue
            rss = resident(job.pid)
            if rss is None:
                continue
            job.peak = max(job.peak, rss)
            if job.limits.over(rss):
                job.over_memory = True
                job.dumped = True
                _signal(job.pid, signal.SIGUSR1)
                job.deadline = now + DUMP_GRACE  # the kill follows (_watch_deadlines)

    def _watch_deadlines(self, now: float) -> None:
        """A child past its deadline is asked for its stack (SIGUSR1), then killed a moment
        later."""
        for job in self.running.values():
            if now < job.deadline and not (job.dumped and not job.killed and _stack_written(job)):
                continue
            if not job.dumped:
                job.dumped = True
                _signal(job.pid, signal.SIGUSR1)
                job.deadline = now + DUMP_GRACE
            elif not job.killed:
                job.killed = True
                try:
                    os.killpg(job.pid, signal.SIGKILL)  # and anything the file started
                except OSError:
                    _signal(job.pid, signal.SIGKILL)
                job.deadline = now + 3600  # EOF follows the kill


def _stack_written(job: Job) -> bool:
    """The child asked for its stack has written it: its fault file has stopped growing."""
    try:
        size = os.stat(job.fault_path).st_size
    except OSError:
        return False
    written, job.fault_size = size > 0 and size == job.fault_size, size
    return written


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
