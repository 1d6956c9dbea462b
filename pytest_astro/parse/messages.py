"""The parse sandbox's protocol: one message format, one direction per channel.

Every message is one line of JSON, ``{"kind": <kind>, <field>: <value>, ...}``, made from one of
the dataclasses below by ``encode`` and turned back into it by ``decode``. A receiver handles
message ``m`` in its method ``on_<m.kind>`` (``dispatch``), as pytest-xdist's controller handles a
worker's event in ``worker_<event>``.

Channels, each one way:

- engine -> sandbox (the sandbox process's stdin): one ``Request``, once the engine knows which
  files to parse;
- forked child -> pool (a pipe per child): ``Result`` of each file it parsed, or ``Rerun`` when a
  file failed after other files ran in the same process, then ``Stop``;
- sandbox -> engine (the sandbox process's stdout): ``Ready`` once Airflow is imported and warm,
  ``Result`` per file as files finish, ``Done`` at the end; or only ``Fatal``.

``kind`` is the first key of every line, so the pool passes a child's ``Result`` on to the engine
without decoding the file's result (``Result`` keeps its line; ``Result.data()`` decodes it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class Result:
    """The verdict on one file: ``FileResult.to_dict()``'s data, kept as the encoded line."""

    kind: ClassVar[str] = "result"
    line: str  # this message encoded (no newline)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Result:
        # default=str: a value of the user's that the DAG summary let through (a description
        # object) must not cost the file its verdict
        return cls('{"kind": "result", "result": ' + json.dumps(data, default=str) + "}")

    def data(self) -> dict[str, Any]:
        return json.loads(self.line)["result"]


@dataclass
class Rerun:
    """``file`` (relative) failed after other files ran in the same child: its verdict must come
    from a fresh fork, where nothing ran before it."""

    kind: ClassVar[str] = "rerun"
    file: str


@dataclass
class Stop:
    """A child's last word: ``reason`` is ``"done"``, or why it ended its batch early (e.g.
    ``"dags/x.py: the file started a thread"``); the pool queues the files it did not report."""

    kind: ClassVar[str] = "stop"
    reason: str


@dataclass
class Ready:
    """The sandbox has imported Airflow (version ``airflow``) and is about to fork."""

    kind: ClassVar[str] = "ready"
    airflow: str


@dataclass
class Done:
    """Every file was reported. What the sandbox did, for the run's stats (``RunStats``)."""

    kind: ClassVar[str] = "done"
    processes: int  # children forked
    rechecked: int  # files parsed again alone after failing in a batch
    # why children stopped before their batch's end
    ended_early: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # the sandbox's phases, in seconds


@dataclass
class Fatal:
    """The sandbox cannot parse anything (Airflow cannot be imported); ``message`` says what to
    do."""

    kind: ClassVar[str] = "fatal"
    message: str


Message = Result | Rerun | Stop | Ready | Done | Fatal

_KINDS: dict[str, type] = {cls.kind: cls for cls in (Result, Rerun, Stop, Ready, Done, Fatal)}
_PREFIX = '{"kind": "'


def encode(message: Message) -> str:
    """``message`` as one line of JSON, without the newline."""
    if isinstance(message, Result):
        return message.line
    return json.dumps({"kind": message.kind, **vars(message)})


def decode(line: str | bytes | bytearray) -> Message:
    """The message encoded in ``line`` (``ValueError`` when it is not one)."""
    if not isinstance(line, str):
        line = line.decode()
    line = line.rstrip("\n")
    if not line.startswith(_PREFIX):
        raise ValueError(f"not a sandbox message: {line[:80]!r}")
    kind = line[len(_PREFIX):line.find('"', len(_PREFIX))]
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown sandbox message kind {kind!r}")
    if cls is Result:
        return Result(line)
    data = json.loads(line)
    del data["kind"]
    try:
        return cls(**data)
    except TypeError as exc:  # a field missing or unknown
        raise ValueError(f"not a sandbox {kind!r} message: {exc}") from None


def dispatch(receiver: Any, message: Message, *context: Any) -> Any:
    """``receiver.on_<kind>(message, *context)``: what it returns."""
    return getattr(receiver, "on_" + message.kind)(message, *context)


class Writer:
    """Sends messages on file descriptor ``fd``, each as one whole line, unbuffered: what was sent
    has reached the pipe even if the process dies right after."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: Message) -> None:
        data = memoryview((encode(message) + "\n").encode())
        while data:
            data = data[os.write(self.fd, data):]


@dataclass
class Request:
    """What the engine asks the sandbox to do: parse ``files`` (absolute paths) under these
    settings."""

    files: list[str]
    timeout: float  # seconds per file
    memory_limit: int  # bytes of resident memory a file's import may add; 0: none
    workers: int  # children at a time
    address_space_limit: int = 0  # bytes of address space on top of the sandbox's (opt-in); 0: none
    # [module, [names the DAG files take from it]]: imported before forking
    preload: list[list] = field(default_factory=list)
    policy_options: dict[str, Any] = field(default_factory=dict)  # [tool.pytest-astro.policies]
    variables: dict[str, str] = field(default_factory=dict)  # served to the DAG files
    connections: dict[str, Any] = field(default_factory=dict)
    missing_variables: str = "error"  # or "placeholder"
    isolation: str = "batch"  # or "file": a fresh fork per file
    allow_network: list[str] = field(default_factory=list)  # netguard's allow-list
    coverage: dict[str, Any] | None = None  # coverage_support.request(): measure the children

    def encode(self) -> str:
        return json.dumps(vars(self))

    @classmethod
    def decode(cls, line: str) -> Request:
        return cls(**json.loads(line))
