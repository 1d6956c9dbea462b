"""Shards: one project's DAG files split over the N parallel jobs of a CI system.

``--astro-shard K/N`` checks the K-th of N parts of the DAG files (and ``--astro-shard auto`` reads
K and N from the CI's own variables). The split is a pure function of the set of DAG files and of
their durations, so every job computes the same one without talking to the others:

- balanced: longest processing time first (each file, slowest first, goes to the shard with the
  least work so far), weighted by each file's last measured parse time from the durations file
  (``--astro-store-durations`` writes it; commit it, or restore it in CI). A file with no
  measurement weighs the mean of the measured ones (1 when none is);
- stable: the same files and the same durations file always give the same split; weights are whole
  milliseconds, so no floating-point sum can differ between two machines;
- checkable: ``split_key`` names the split, each shard's ``--astro-report`` carries it, and
  ``check_shard_reports`` verifies N reports together (one split, every DAG file parsed exactly
  once, no dag_id defined in two files of different shards).

Plain data in, plain data out; nothing here imports pytest or Airflow.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: the CI systems whose parallel jobs say which one they are: (name, index variable, total variable,
#: the first job's index). GitLab numbers `parallel: N` jobs from 1, CircleCI's `parallelism` from
# 0,
#: Azure's `strategy: parallel` from 1, Bitbucket's parallel steps from 0. GitHub Actions has no
# such
#: variables: a matrix passes `--astro-shard ${{ matrix.shard }}/N` itself.
CI_VARIABLES: tuple[tuple[str, str, str, int], ...] = (
    ("GitLab CI", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    ("Azure Pipelines", "SYSTEM_JOBPOSITIONINPHASE", "SYSTEM_TOTALJOBSINPHASE", 1),
    ("Bitbucket Pipelines", "BITBUCKET_PARALLEL_STEP", "BITBUCKET_PARALLEL_STEP_COUNT", 0),
)

#: where the measured parse times live, relative to the project root (``astro_durations`` moves it)
DURATIONS_FILE = ".pytest-astro-durations.json"
DURATIONS_FORMAT = 1


class ShardError(ValueError):
    """A shard that cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class Shard:
    """The K-th (1-based ``index``) of ``total`` shards, and where that came from."""

    index: int
    total: int
    source: str = "--astro-shard"

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    @property
    def first(self) -> bool:
        """Shard 1 runs what belongs to no shard (users' own tests, when pytest-split is absent)."""
        return self.index == 1


def parse_shard(value: str | None, env: Mapping[str, str] | None = None) -> Shard | None:
    """``K/N`` (1 <= K <= N), or ``auto`` (from the CI's variables; None outside a parallel job).

    None or an empty value: no sharding. Raises ShardError for anything else."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.lower() == "auto":
        return from_ci(os.environ if env is None else env)
    index, sep, total = text.partition("/")
    try:
        shard = Shard(int(index), int(total)) if sep else None
    except ValueError:
        shard = None
    if shard is None:
        raise ShardError(f"--astro-shard {value!r}: write K/N (the K-th of N shards, e.g. 2/4), or "
                         "auto")
    if shard.total < 1 or not 1 <= shard.index <= shard.total:
        raise ShardError(f"--astro-shard {value!r}: K must be between 1 and N "
                         f"(1/{max(shard.total, 1)} to "
                         f"{max(shard.total, 1)}/{max(shard.total, 1)})")
    return shard


def from_ci(env: Mapping[str, str]) -> Shard | None:
    """This job's shard from the first CI system whose parallel-job variables are set (None when
    none are, or when the job is not parallel: a total of 1). Raises ShardError for values that make
    no sense, naming the variables."""
    for name, index_var, total_var, first in CI_VARIABLES:
        raw_index, raw_total = env.get(index_var, "").strip(), env.get(total_var, "").strip()
        if not raw_index or not raw_total:
            continue
        try:
            index, total = int(raw_index) - first + 1, int(raw_total)
        except ValueError:
            index = total = 0
        if total < 1 or not 1 <= index <= total:
            raise ShardError(f"--astro-shard auto: {name} says {index_var}={raw_index!r}, "
                             f"{total_var}={raw_total!r}, which is not a shard; pass --astro-shard "
                             "K/N")
        if total == 1:
            return None
        return Shard(index, total, f"{name} ({index_var}/{total_var})")
    return None


# ---------------------------------------------------------------------------------------- the split


def _weights(files: Sequence[str], durations: Mapping[str, float]) -> dict[str, int]:
    """Each file's weight in whole milliseconds (at least 1); the mean of the known ones when
    unknown."""
    known: dict[str, int] = {}
    for f in files:
        seconds = durations.get(f)
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0:
            known[f] = max(1, round(seconds * 1000))
    default = (sum(known.values()) // len(known)) if known else 1
    return {f: known.get(f, max(default, 1)) for f in files}


def split(files: Iterable[str], durations: Mapping[str, float], total: int) -> list[list[str]]:
    """``files`` (project-relative paths) in ``total`` shards of about equal parse time.

    Every file lands in exactly one shard; the result depends only on the set of files and their
    durations (not on their order). Shard k (1-based) is ``result[k - 1]``, its files sorted."""
    if total < 1:
        raise ValueError("total must be at least 1")
    names = sorted(set(files))
    weight = _weights(names, durations)
    shards: list[list[str]] = [[] for _ in range(total)]
    heap = [(0, i) for i in range(total)]  # (work so far, shard): ties go to the lower shard
    for f in sorted(names, key=lambda n: (-weight[n], n)):
        load, i = heapq.heappop(heap)
        shards[i].append(f)
        heapq.heappush(heap, (load + weight[f], i))
    return [sorted(s) for s in shards]


def shard_files(files: Iterable[str], durations: Mapping[str, float], shard: Shard) -> list[str]:
    """The files of ``shard`` (sorted)."""
    return split(files, durations, shard.total)[shard.index - 1]


def split_key(files: Iterable[str], durations: Mapping[str, float], total: int) -> str:
    """A name for the split: equal for two jobs exactly when they split the same files the same
    way."""
    names = sorted(set(files))
    weight = _weights(names, durations)
    payload = json.dumps([total, [[f, weight[f]] for f in names]], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def estimated_seconds(files: Iterable[str], durations: Mapping[str, float]) -> float:
    """The summed weight of ``files`` in seconds (the split's estimate of their parse time)."""
    names = sorted(set(files))
    return sum(_weights(names, durations).values()) / 1000


# ----------------------------------------------------------------------------------- durations file


def load_durations(path: Path) -> dict[str, float]:
    """``{file: seconds}`` from a durations file; empty when there is none. Raises ShardError naming
    the file when it is not one (a shard must not silently split differently from the others)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ShardError(f"{path}: cannot be read ({exc.strerror}); fix its permissions or delete "
                         "it") from None
    try:
        data = json.loads(text)
        files = data["files"] if isinstance(data, dict) else None
        if not isinstance(files, dict):
            raise ValueError("no 'files' table")
    except (ValueError, KeyError) as exc:
        raise ShardError(f"{path}:1: not a pytest-astro durations file ({exc}); write it again "
                         "with `pytest --astro-dags --astro-store-durations`, or delete "
                         "it") from None
    return {str(f): float(s) for f, s in files.items()
            if isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0}


def store_durations(path: Path, measured: Mapping[str, float], existing: Mapping[str, float],
                    files: Iterable[str]) -> dict[str, float]:
    """Write the durations of ``files`` (the project's DAG files now): ``measured`` where this run
    has a measurement, else what ``existing`` had. Returns what was written. One file per line,
    sorted, so that a change reviews as a small diff."""
    keep = {}
    for f in sorted(set(files)):
        seconds = measured.get(f, existing.get(f))
        if seconds is not None:
            keep[f] = round(float(seconds), 4)
    lines = ",\n".join(f"    {json.dumps(f)}: {s}" for f, s in keep.items())
    text = (f'{{\n  "format": {DURATIONS_FORMAT},\n  "files": {{\n{lines}\n  }}\n}}\n' if keep
            else f'{{\n  "format": {DURATIONS_FORMAT},\n  "files": {{}}\n}}\n')
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return keep


# ------------------------------------------------------------------------------------ shard reports


def report_section(shard: Shard, key: str, files: Sequence[str],
                   durations_file: str | None) -> dict:
    """What a shard's ``--astro-report`` says about its shard (``check_shard_reports`` reads it)."""
    return {"index": shard.index, "total": shard.total, "label": shard.label,
            "source": shard.source,
            "key": key, "files": sorted(files), "durations": durations_file}


def check_shard_reports(reports: Sequence[Mapping]) -> list[str]:
    """Problems with N shards' ``--astro-report`` data taken together (empty: they add up).

    They must come from one split (same total and key; each index once), have parsed every file of
    their shard exactly once and nothing of another shard's, and no dag_id may be defined by two
    files (including two files of different shards, which neither shard alone can see)."""
    problems: list[str] = []
    sections = [r.get("shard") for r in reports]
    if not reports or any(not isinstance(s, Mapping) for s in sections):
        return ["every report must come from a sharded run (`--astro-shard K/N --astro-report "
                "PATH`)"]
    totals = {s["total"] for s in sections}
    keys = {s["key"] for s in sections}
    if len(totals) != 1 or len(keys) != 1:
        problems.append(f"the reports come from different splits (totals {sorted(totals)}, keys "
                        f"{sorted(keys)}): every shard must see the same DAG files and the same "
                        "durations file")
    total = max(totals)
    indexes = sorted(s["index"] for s in sections)
    if indexes != list(range(1, total + 1)):
        problems.append(f"shards {indexes} reported, expected each of 1..{total} once")
    parsed: dict[str, int] = defaultdict(int)
    owner: dict[str, int] = {}
    for section in sections:
        for f in section["files"]:
            owner[f] = section["index"]
    where: dict[str, set[str]] = defaultdict(set)
    for report, section in zip(reports, sections):
        for result in report.get("files", []):
            f = result["file"]
            parsed[f] += 1
            if owner.get(f) != section["index"]:
                problems.append(f"{f}: reported by shard {section['label']} but belongs to shard "
                                f"{owner.get(f)}")
            for dag in _dag_ids(result):
                where[dag].add(f)
    for f in sorted(owner):
        if parsed.get(f, 0) != 1:
            problems.append(f"{f}: parsed {parsed.get(f, 0)} times across the shards, expected "
                            "once")
    for dag_id, files in sorted(where.items()):
        if len(files) > 1:
            problems.append(f"dag_id {dag_id!r} is defined in {', '.join(sorted(files))}: Airflow "
                            "keeps only one")
    return problems


def _dag_ids(result: Mapping) -> list[str]:
    ids = result.get("dag_ids")
    if ids is None:
        ids = [d["dag_id"] for d in result.get("dags", [])]
    return list(ids)


# ------------------------------------------------------------------------ `pytest-astro shards`


def add_arguments(parser) -> None:
    parser.add_argument("reports", nargs="+", metavar="REPORT",
                        help="the --astro-report JSON of each shard (e.g. astro-1-of-4.json ... "
                             "astro-4-of-4.json)")


def run(args) -> int:
    """`pytest-astro shards REPORT...`: check that N shards' reports add up
    (``check_shard_reports``); prints one problem per line and exits 1 when there is any, 2 when a
    report cannot be read."""
    from pytest_astro.user_errors import fail

    reports = []
    for name in args.reports:
        try:
            reports.append(json.loads(Path(name).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            return fail(f"not a readable --astro-report file ({exc})", file=name,
                        fix="pass the files `pytest --astro-report` wrote")
    problems = check_shard_reports(reports)
    for problem in problems:
        print(problem)
    if not problems:
        files = sum(len(r["shard"]["files"]) for r in reports)
        print(f"{len(reports)} shards, {files} DAG files, each parsed once; no dag_id in two files")
    return 1 if problems else 0
