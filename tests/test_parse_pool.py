"""The parse pool and its protocol without Airflow: messages, batch sizing, how a child's death and a
memory overrun read, and the pool itself forking stand-in children (real forks, real pipes, real
kills) that report, fail, exit, hang, allocate or hit a bug of ours."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from pytest_astro.parse import messages
from pytest_astro.parse.errors import from_death
from pytest_astro.parse.limits import Limits, size
from pytest_astro.parse.messages import Done, Fatal, Ready, Request, Rerun, Result, Stop, Writer, decode, dispatch
from pytest_astro.parse.paths import ProjectPaths
from pytest_astro.parse.pool import MAX_BATCH, Pool, Queue
from pytest_astro.results import INTERNAL_NOTICE, FileResult

GiB = 1024**3
MiB = 1024**2


# ---------------------------------------------------------------------------------------------- messages


@pytest.mark.parametrize("message", [
    Rerun("dags/x.py"), Stop("done"), Stop("dags/x.py: the file started a thread"), Ready("3.3.2"),
    Done(processes=3, rechecked=1, ended_early=["dags/x.py: the file called os._exit"], timings={"parsed": 0.5}),
    Fatal("cannot import Airflow"),
])
def test_every_message_comes_back_as_it_was_sent(message):
    line = messages.encode(message)
    assert "\n" not in line
    assert json.loads(line)["kind"] == message.kind
    assert line.startswith('{"kind": "' + message.kind + '"')  # first: a receiver routes on it
    assert decode(line) == message
    assert decode((line + "\n").encode()) == message  # as read from a pipe


def test_a_result_is_passed_on_as_the_child_wrote_it():
    data = FileResult(file="dags/a.py", ok=True, stdout="hello").to_dict()
    line = messages.encode(Result.of(data))
    received = decode(bytearray(line.encode()))  # what the pool reads from a child's pipe
    assert isinstance(received, Result)
    assert messages.encode(received) == line  # forwarded without encoding it again
    assert FileResult.from_dict(received.data()) == FileResult(file="dags/a.py", ok=True, stdout="hello")


def test_a_value_json_cannot_hold_does_not_cost_the_file_its_verdict():
    class Description:
        def __str__(self):
            return "a description object"

    assert Result.of({"file": "dags/a.py", "ok": True, "doc": Description()}).data()["doc"] == "a description object"


@pytest.mark.parametrize("line", ["", "not json", '{"result": {}}', '{"kind": "gossip", "text": "hi"}', "1 - {}",
                                  '{"kind": "stop"}', '{"kind": "stop", "reason": "done", "extra": 1}'])
def test_what_is_not_a_message_is_refused(line):
    with pytest.raises(ValueError):
        decode(line)


def test_each_message_goes_to_the_receivers_method_for_its_kind():
    class Receiver:
        def __init__(self):
            self.calls = []

        def on_stop(self, message, job):
            self.calls.append(("stop", message.reason, job))
            return "stopped"

        def on_rerun(self, message, job):
            self.calls.append(("rerun", message.file, job))

    receiver = Receiver()
    assert dispatch(receiver, decode(messages.encode(Stop("done"))), "job-1") == "stopped"
    dispatch(receiver, Rerun("dags/b.py"), "job-2")
    assert receiver.calls == [("stop", "done", "job-1"), ("rerun", "dags/b.py", "job-2")]
    with pytest.raises(AttributeError):  # a kind the receiver does not expect on its channel
        dispatch(receiver, Ready("3.3.2"))


def test_the_request_comes_back_as_it_was_sent():
    request = Request(files=["/p/dags/a.py"], timeout=30.0, memory_limit=4 * GiB, workers=2,
                      preload=[["pandas", ["DataFrame"]]], variables={"v": "1"}, isolation="file")
    assert Request.decode(request.encode()) == request


def test_the_writer_sends_whole_lines():
    read_fd, write_fd = os.pipe()
    writer = Writer(write_fd)
    writer.send(Stop("done"))
    big = Result.of({"file": "dags/a.py", "ok": True, "stdout": "x" * 200_000})  # more than a pipe holds
    import threading

    thread = threading.Thread(target=writer.send, args=(big,))
    thread.start()
    received = b""
    while received.count(b"\n") < 2:
        received += os.read(read_fd, 1 << 16)
    thread.join()
    os.close(read_fd)
    os.close(write_fd)
    first, second, rest = received.split(b"\n")
    assert decode(first) == Stop("done")
    assert decode(second).data()["stdout"] == "x" * 200_000
    assert rest == b""


# ---------------------------------------------------------------------------------------------- batches


def drain(queue: Queue) -> list[tuple[list[str], bool]]:
    taken = []
    while queue:
        taken.append(queue.take())
    return taken


def test_batches_shrink_as_the_queue_drains_so_that_workers_finish_together():
    files = [f"f{i}" for i in range(100)]
    batches = drain(Queue(files, workers=2))
    sizes = [len(b) for b, _ in batches]
    assert sizes[0] == 99 // 4  # a quarter of what is left with two workers: half of it each, in two turns
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-3:] == [1, 1, 1]
    assert [f for b, _ in batches for f in b] == files  # in order, each once
    assert not any(solo for _, solo in batches)


def test_no_batch_is_larger_than_the_maximum():
    sizes = [len(b) for b, _ in drain(Queue([f"f{i}" for i in range(2000)], workers=1))]
    assert max(sizes) == MAX_BATCH


def test_isolation_per_file_forks_once_per_file():
    assert drain(Queue(["a", "b", "c"], workers=1, batching=False)) == [(["a"], False), (["b"], False), (["c"], False)]


def test_a_file_to_re_run_goes_first_and_alone_and_the_rest_of_its_batch_follows():
    queue = Queue([f"f{i}" for i in range(20)], workers=1)
    batch, _ = queue.take()
    assert batch == [f"f{i}" for i in range(9)]
    # its child reported f0 and f1, then f2 failed after them; it stopped there
    queue.put_back(batch[3:])
    queue.retry_alone(batch[2])
    assert queue.take() == (["f2"], True)
    assert queue.take()[0][0] == "f3"  # what the child did not get to, in its order


def test_a_solo_file_is_never_batched_with_others():
    queue = Queue(list("abcdefgh"), workers=1)
    assert queue.take() == (["a", "b", "c"], False)
    queue.pending.insert(1, ("again", True))  # behind "d": the batch that starts at "d" stops before it
    assert queue.take() == (["d"], False)
    assert queue.take() == (["again"], True)


# ---------------------------------------------------------------------------------------------- verdicts


def test_the_memory_verdict_says_what_the_import_added_and_the_limit():
    limits = Limits(timeout=30, memory=GiB, baseline=300 * MiB)
    assert not limits.over(300 * MiB + GiB)
    assert limits.over(300 * MiB + GiB + 1)
    assert not Limits(timeout=30, memory=0).over(100 * GiB)  # no limit
    at = from_death(ProjectPaths("/p"), "/p/dags/x.py", signal.SIGKILL, limits, peak=300 * MiB + int(1.5 * GiB),
                    killed=True, over_memory=True, fault='  File "/p/dags/x.py", line 7 in <module>\n', ours=None)
    assert (at.kind, at.type, at.file, at.line) == ("memory", "MemoryError", "dags/x.py", 7)
    assert at.message == "used 1.5 GiB at import, over the 1 GiB limit"
    assert "--astro-memory-limit" in at.hint


@pytest.mark.parametrize("n, text", [(12, "12 bytes"), (2048, "2 KiB"), (int(1.5 * MiB), "1.5 MiB"), (4 * GiB, "4 GiB")])
def test_sizes_read_as_people_write_them(n, text):
    assert size(n) == text


FAULT = """Fatal Python error: Segmentation fault

Current thread 0x00007f (most recent call first):
  File "/usr/lib/python3/site-packages/airflow/models/dagbag.py", line 300 in _load
  File "/p/include/native.py", line 12 in crash
  File "/p/dags/x.py", line 5 in <module>
"""


def death(status: int, **kwargs):
    given = {"peak": 0, "killed": False, "over_memory": False, "fault": "", "ours": None, **kwargs}
    return from_death(ProjectPaths("/p"), "/p/dags/x.py", status, Limits(timeout=30, memory=GiB), **given)


def test_a_crash_is_placed_at_the_users_innermost_frame_with_their_frames_only():
    error = death(signal.SIGSEGV, fault=FAULT)
    assert (error.kind, error.type, error.file, error.line) == ("crash", "SIGSEGV", "include/native.py", 12)
    assert error.message == "the process importing the file died of a segmentation fault"
    assert [(f.file, f.line, f.function) for f in error.frames] == [("dags/x.py", 5, "<module>"),
                                                                     ("include/native.py", 12, "crash")]


@pytest.mark.parametrize("sig, what", [(signal.SIGABRT, "an abort"), (signal.SIGBUS, "a bus error"),
                                       (signal.SIGKILL, "SIGKILL (the system's out-of-memory killer?)"),
                                       (signal.SIGTERM, "SIGTERM")])
def test_each_deadly_signal_is_named(sig, what):
    error = death(sig)
    assert error.message == f"the process importing the file died of {what}"
    assert (error.file, error.line, error.frames) == ("dags/x.py", None, [])


def test_an_exit_before_reporting_says_the_status():
    error = death(3 << 8)  # wait status of exit(3)
    assert (error.kind, error.type) == ("exit", "exit")
    assert error.message == "the process importing the file exited with status 3 before reporting"


def test_a_kill_at_the_deadline_is_a_timeout_where_the_file_was_stuck():
    error = death(signal.SIGKILL, killed=True, fault='  File "/p/dags/x.py", line 9 in <module>\n')
    assert (error.kind, error.type, error.line) == ("timeout", "Timeout", 9)
    assert error.message == "importing the file did not finish within 30 s and was killed"
    assert "--astro-timeout" in error.hint


def test_a_death_caused_by_our_own_code_is_an_internal_error_naming_the_component():
    ours = {"component": "pytest_astro/parse/child.py (_begin)", "exception": "OSError: no space left",
            "frames": [{"file": "pytest_astro/parse/child.py", "line": 3, "function": "_begin", "source": "x"}]}
    error = death(70 << 8, ours=ours)
    assert (error.kind, error.type, error.file) == ("internal", "InternalError", "dags/x.py")
    assert error.message == (f"pytest-astro's pytest_astro/parse/child.py (_begin) failed on dags/x.py: "
                             f"OSError: no space left; {INTERNAL_NOTICE}")
    assert error.frames[0].function == "_begin"


# ---------------------------------------------------------------------------------------------- the pool


def stand_in_child(files, out_path, fault_path, result_fd, limits):
    """What a child does, by file name: ``ok``, ``fail`` (a failure), ``exit`` (os._exit(3) at
    import), ``hang``, ``hog`` (allocates 400 MiB and waits), ``bug`` (our own code raises)."""
    send = Writer(result_fd).send
    faulthandler.register(signal.SIGUSR1, file=open(fault_path, "w"), all_threads=False)  # as a real child does
    for index, path in enumerate(files):
        name = os.path.basename(path)
        with open(out_path, "w") as out:
            out.write(f"printed by {name}")
        if name.startswith("exit"):
            os._exit(3)
        if name.startswith("hang"):
            time.sleep(60)
        if name.startswith("hog"):
            hog = b"x" * (400 * MiB)  # noqa: F841 (resident: every page written)
            time.sleep(60)
        if name.startswith("bug"):
            raise RuntimeError("a bug of ours")
        failed = name.startswith("fail")
        if failed and index > 0:
            send(Rerun(name))
        else:
            send(Result.of(FileResult(file=name, ok=not failed, stdout=f"child {os.getpid()}").to_dict()))
        if failed:
            break
    send(Stop("done"))
    os._exit(0)


def run_pool(tmp_path: Path, names: list[str], workers: int = 1, **limits) -> tuple[dict[str, FileResult], object]:
    sent: list = []
    files = [str(tmp_path / name) for name in names]
    pool = Pool(ProjectPaths(str(tmp_path)), Limits(**{"timeout": 30.0, **limits}), workers,
                Queue(files, workers), start_child=stand_in_child, emit=sent.append, tmp=str(tmp_path))
    stats = pool.run()
    results = [FileResult.from_dict(m.data()) for m in sent]
    assert sorted(r.file for r in results) == sorted(names)  # one verdict per file, each once
    assert sorted(os.listdir(tmp_path)) == []  # no output or fault file left behind
    return {r.file: r for r in results}, stats


def test_the_pool_batches_files_and_passes_every_verdict_on(tmp_path):
    names = [f"ok{i:02}.py" for i in range(30)]
    results, stats = run_pool(tmp_path, names, workers=2)
    assert all(r.ok for r in results.values())
    assert stats.processes < len(names)  # batched
    assert len({r.stdout for r in results.values()}) == stats.processes
    assert stats.rechecked == 0


def test_a_failure_after_other_files_is_rechecked_alone(tmp_path):
    names = [f"ok{i}.py" for i in range(3)] + ["fail.py"] + [f"ok{i}.py" for i in range(3, 12)]
    results, stats = run_pool(tmp_path, names)
    assert not results["fail.py"].ok
    assert stats.rechecked == 1
    assert all(r.ok for name, r in results.items() if name != "fail.py")


def test_a_child_that_dies_loses_only_its_file_and_the_verdict_comes_from_a_fresh_fork(tmp_path):
    names = [f"ok{i}.py" for i in range(3)] + ["exit.py"] + [f"ok{i}.py" for i in range(3, 12)]
    results, stats = run_pool(tmp_path, names)
    error = results["exit.py"].errors[0]
    assert error.message == "the process importing the file exited with status 3 before reporting"
    assert results["exit.py"].stdout == "printed by exit.py"
    assert stats.rechecked == 1  # it died after other files: once more, alone, before the verdict
    assert all(r.ok for name, r in results.items() if name != "exit.py")


def test_a_file_that_hangs_is_killed_at_the_deadline(tmp_path):
    started = time.monotonic()
    results, _ = run_pool(tmp_path, ["hang.py", "ok.py"], timeout=0.2)
    assert results["hang.py"].errors[0].kind == "timeout"
    assert results["ok.py"].ok
    assert time.monotonic() - started < 10


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/statm"), reason="the pool samples memory in /proc")
def test_a_file_past_the_memory_limit_is_stopped_by_the_pool(tmp_path):
    results, _ = run_pool(tmp_path, ["hog.py", "ok.py"], memory=100 * MiB)
    error = results["hog.py"].errors[0]
    assert (error.kind, error.type) == ("memory", "MemoryError")
    assert error.message.endswith("at import, over the 100 MiB limit")
    assert results["hog.py"].peak_memory > 100 * MiB
    assert results["ok.py"].ok


def test_a_failure_of_our_child_code_is_an_internal_error_not_the_files(tmp_path):
    results, _ = run_pool(tmp_path, ["bug.py"])
    error = results["bug.py"].errors[0]
    assert error.kind == "internal"
    assert "RuntimeError: a bug of ours" in error.message and error.message.endswith(INTERNAL_NOTICE)
    assert error.message.startswith("pytest-astro's pytest_astro/parse/pool.py (_fork) failed on bug.py")


def test_the_parse_modules_the_pool_uses_import_no_airflow():
    import subprocess

    code = ("import sys; import pytest_astro.parse.pool, pytest_astro.parse.messages, pytest_astro.parse.errors; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
