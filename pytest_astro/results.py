"""Plain data passed between the sandbox, the cache, pytest and the CLI (all JSON-serializable).

No Airflow object ever crosses a process boundary: the sandbox turns DAGs into ``DagSummary``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


#: the last words of an internal error (``ParseError.kind == "internal"``): a failure of
# pytest-astro's
#: own code, which must never read as the user's
INTERNAL_NOTICE = ("this is a bug in pytest-astro, not in your DAG; please report it with the "
                   "traceback below")


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
    ``duplicate_dag_id``, ``dag`` (a DAG that Airflow refused: cycle, cluster policy...),
    ``metadata_db``, ``network`` (an outbound connection or DNS lookup, see netguard.py),
    ``missing_variable``..., ``internal`` (pytest-astro's own code failed: not a verdict on the
    file; ``frames`` is our traceback).
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
class RunStats:
    """What one parse of a batch of DAG files did: counts, the sandbox's work, the Airflow
    version."""

    files: int = 0
    cached: int = 0
    parsed: int = 0
    failed: int = 0
    dags: int = 0
    seconds: float = 0.0
    airflow: str = ""
    processes: int = 0  # sandbox children forked
    rechecked: int = 0  # files parsed again alone after failing in a batch
    # why a child stopped before its batch's end
    ended_early: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # the sandbox's phases, in seconds
    # parsed only for the dag_id check of the others
    also_parsed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "ended_early": list(self.ended_early), "timings": dict(self.timings),
                "also_parsed": list(self.also_parsed)}

    @classmethod
    def from_dict(cls, data: dict) -> RunStats:
        return cls(**data)


@dataclass
class FileResult:
    """The verdict on one DAG file.

    Only ``file`` and ``ok`` have no default, and no field has a class-level one: a result read from
    the cache (``from_cache``) holds its outline and decodes the rest of its JSON on first use of a
    field it lacks (``__getattr__``), so a run where nothing changed builds no DAG summaries it does
    not look at."""

    file: str  # relative to the project root, POSIX separators
    ok: bool
    dags: list[DagSummary] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    seconds: float = field(default_factory=float)
    # bytes (max RSS of the process that parsed the file)
    peak_memory: int = field(default_factory=int)
    # project modules the file imported (relative)
    imported: list[str] = field(default_factory=list)
    # `path:line: message`, e.g. placeholder variables
    warnings: list[str] = field(default_factory=list)
    # what the file printed while being imported (cut to a few KB)
    stdout: str = field(default_factory=str)
    cached: bool = field(default_factory=bool)

    def __getattr__(self, name: str) -> Any:
        # called only for an attribute the instance lacks: a cached result's details, on first use
        lazy = self.__dict__.pop("_lazy", None)
        if lazy is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        for key, value in vars(type(self).from_dict(json.loads(lazy))).items():
            self.__dict__.setdefault(key, value)
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: a shallow copy of the fields (``dataclasses.asdict`` would deep-copy
        them)."""
        dags = self.dags  # (a cached result decodes its details here)
        data = {name: value for name, value in vars(self).items() if not name.startswith("_")}
        data["dags"] = [dict(vars(d)) for d in dags]
        data["errors"] = [{**vars(e), "frames": [dict(vars(f)) for f in e.frames]}
                          for e in self.errors]
        return data

    def to_json(self) -> str:
        """``to_dict()`` as JSON text. A result read from JSON (the cache) gives back the text it
        was read from, unless it changed since (a report of cached files is then written without
        encoding them again)."""
        kept = self.__dict__.get("_json")
        if kept is not None and kept[1] == self._shape():
            return kept[0]
        return json.dumps(self.to_dict())

    def _shape(self) -> tuple:
        # what a result can change in after it is read (fail(), a test's own edits): kept text of a
        # result whose shape changed is not used
        return (self.ok, self.cached, len(self.errors), len(self.warnings), self.dag_count())

    def _unread_dags(self) -> list | None:
        # a cached result's outline of its DAGs, while its details are not decoded
        return None if "dags" in self.__dict__ else self.__dict__.get("_outline")

    def dag_refs(self) -> list[tuple[str, str, int | None]]:
        """``(dag_id, file, line)`` of each DAG (a cached result answers from its outline)."""
        outline = self._unread_dags()
        if outline is not None:
            return [(dag_id, file, line) for dag_id, file, line in outline]
        return [(d.dag_id, d.file, d.line) for d in self.dags]

    def dag_count(self) -> int:
        outline = self._unread_dags()
        return len(outline) if outline is not None else len(self.dags)

    def outline(self) -> dict[str, Any] | None:
        """What ``from_cache`` needs besides the JSON text, the file and its imports: for a result
        without errors, its warnings and its DAGs' ids, files and lines."""
        if self.errors or not self.ok:
            return None
        return {"warnings": list(self.warnings), "dags": [list(ref) for ref in self.dag_refs()]}

    @classmethod
    def from_json(cls, text: str) -> FileResult:
        result = cls.from_dict(json.loads(text))
        result.__dict__["_json"] = (text, result._shape())
        return result

    @classmethod
    def from_cache(cls, text: str, file: str, imported: list[str],
                   outline: dict[str, Any]) -> FileResult:
        """A cached result without errors: ``outline`` now, the rest of ``text`` (its JSON) on first
        use."""
        result = cls.__new__(cls)
        result.__dict__.update(file=file, ok=True, cached=True, errors=[], imported=imported,
                               warnings=list(outline["warnings"]), _outline=outline["dags"],
                               _lazy=text)
        result.__dict__["_json"] = (text, result._shape())
        return result

    def cache_key(self) -> str | None:
        """What the parse cache knows this result by (its file's bytes, the result's JSON text and
        what it was parsed under), while the result is as the cache read or stored it; else None."""
        kept = self.__dict__.get("_cache_key")
        return kept[0] if kept is not None and kept[1] == self._shape() else None

    def keep_cache_key(self, key: str) -> None:
        """Set by the parse cache when it reads or stores this result (``cache_key``)."""
        self.__dict__["_cache_key"] = (key, self._shape())

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
