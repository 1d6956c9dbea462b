"""Plain data passed between the sandbox, the cache, pytest and the CLI (all JSON-serializable).

No Airflow object ever crosses a process boundary: the sandbox turns DAGs into ``DagSummary``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    """One frame of a traceback, in the user's project (``file`` relative to the project root)."""

    file: str
    line: int
    function: str
    source: str = ""


@dataclass
class ParseError:
    """Why a DAG file did not import.

    ``kind`` is one of: ``exception`` (raised while importing), ``syntax``, ``missing_module``,
    ``exit`` (sys.exit / os._exit), ``timeout``, ``memory``, ``crash`` (killed by a signal),
    ``duplicate_dag_id``, ``dag`` (a DAG that Airflow refused: cycle, cluster policy...).
    """

    kind: str
    type: str
    message: str
    file: str  # where it happened (relative), the DAG file itself when unknown
    line: int | None = None
    column: int | None = None
    source_line: str = ""
    hint: str = ""
    frames: list[Frame] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> ParseError:
        data = dict(data)
        data["frames"] = [Frame(**f) for f in data.get("frames", [])]
        return cls(**data)


@dataclass
class DagSummary:
    """What policies and reports need to know about one DAG, without Airflow."""

    dag_id: str
    file: str
    line: int | None
    task_ids: list[str] = field(default_factory=list)
    edges: list[list[str]] = field(default_factory=list)  # [upstream, downstream]
    tags: list[str] = field(default_factory=list)
    owner: str = ""
    task_owners: dict[str, str] = field(default_factory=dict)
    retries: int | None = None  # default_args["retries"], None when not set
    task_retries: dict[str, int] = field(default_factory=dict)
    schedule: str | None = None  # as written: a cron string, "@daily", a timedelta, "assets", None
    timetable: str = ""  # Airflow's timetable summary
    catchup: bool | None = None
    start_date: str | None = None  # ISO 8601
    start_date_tz: str | None = None
    description: str | None = None
    has_doc_md: bool = False
    max_active_runs: int | None = None
    dagrun_timeout: float | None = None  # seconds
    has_failure_callback: bool = False
    params: list[str] = field(default_factory=list)
    pools: list[str] = field(default_factory=list)
    operators: dict[str, str] = field(default_factory=dict)  # task_id -> operator class name
    # results of checks that need the real DAG object, computed in the sandbox by
    # pytest_astro.policies.sandbox.inspect_dag (e.g. serialization round trip, cluster policies)
    checks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> DagSummary:
        return cls(**data)


@dataclass
class FileResult:
    """The verdict on one DAG file."""

    file: str  # relative to the project root, POSIX separators
    ok: bool
    dags: list[DagSummary] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    seconds: float = 0.0
    peak_memory: int = 0  # bytes (max RSS of the process that parsed the file)
    imported: list[str] = field(default_factory=list)  # project modules the file imported (relative)
    warnings: list[str] = field(default_factory=list)  # `path:line: message`, e.g. placeholder variables
    stdout: str = ""  # what the file printed while being imported (cut to a few KB)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``dataclasses.asdict`` deep-copies: ~0.7 ms a file, most of a cache write)."""
        data = dict(vars(self))
        data.pop("_json", None)
        data["dags"] = [dict(vars(d)) for d in self.dags]
        data["errors"] = [{**vars(e), "frames": [dict(vars(f)) for f in e.frames]} for e in self.errors]
        return data

    def to_json(self) -> str:
        """``to_dict()`` as JSON text. A result read from JSON (the cache) gives back the text it was
        read from, unless it changed since (a report of 1,000 cached files is then written without
        encoding them again: ~0.1 s)."""
        kept = self.__dict__.get("_json")
        if kept is not None and kept[1] == self._shape():
            return kept[0]
        return json.dumps(self.to_dict())

    def _shape(self) -> tuple:
        # what a result can change in after it is read (fail(), a test's own edits): kept text of a
        # result whose shape changed is not used
        return (self.ok, self.cached, len(self.errors), len(self.warnings), len(self.dags))

    @classmethod
    def from_json(cls, text: str) -> FileResult:
        result = cls.from_dict(json.loads(text))
        result.__dict__["_json"] = (text, result._shape())
        return result

    def fail(self, error: ParseError) -> None:
        """Turn the verdict into a failure (e.g. a dag_id also defined in another file)."""
        self.ok = False
        self.errors.append(error)

    @classmethod
    def from_dict(cls, data: dict) -> FileResult:
        data = dict(data)
        data["dags"] = [DagSummary.from_dict(d) for d in data.get("dags", [])]
        data["errors"] = [ParseError.from_dict(e) for e in data.get("errors", [])]
        return cls(**data)
