"""What a partial run must parse besides the DAG files of the items that run.

A run that checks part of the project (``-k``, ``--lf``, node ids, ``--deselect``, a shard) parses
only the DAG files of its items, but the project-wide check, a dag_id defined in two files, needs
the other files' dag_ids too. Parsing them all would undo the point of the selection; so a cheap
static pass reads the dag_ids the files spell out as literals (``DAG("etl")``, ``dag_id="etl"``, the
name of a function under ``@dag``) and the run parses, as well, each file outside the selection that
spells out an id one of the selected files spells out. The verdict is then made from the real parse
results of both files, as in a full run: the static pass only decides what else to parse, never
fails a file.

What it cannot see: a dag_id made at run time (an f-string, a loop, a YAML config) in a file outside
the run. A full run sees it; across shards, ``sharding.check_shard_reports`` does (every shard's
report lists the dag_ids of every file it parsed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_LITERAL = r"""(["'])([^"'\\\n{}]{1,250})\1"""
# DAG("etl", ...) / models.DAG("etl") / @dag("etl") / DAG(dag_id="etl") / dag_id="etl" anywhere
# (`\b` keeps out trigger_dag_id= and external_dag_id=, which name another DAG); an f-string has a
# prefix before its quote, so it is never taken for a literal
_CALL = re.compile(r"\b(?:DAG|dag)\(\s*(?:dag_id\s*=\s*)?" + _LITERAL)
_KEYWORD = re.compile(r"\bdag_id\s*=\s*" + _LITERAL)
_DECORATOR = re.compile(r"^[ \t]*@(?:\w+\.)*dag\b", re.M)
_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)", re.M)


def literal_dag_ids(text: str) -> set[str]:
    """The dag_ids ``text`` (a DAG file's source) may define, as far as literals tell: a superset of
    the literal ones, which may name ids that it does not define (a ``dag_id=`` argument of
    something else, a DAG in a function that is never called)."""
    ids = {m.group(2) for m in _CALL.finditer(text)}
    ids.update(m.group(2) for m in _KEYWORD.finditer(text))
    for decorator in _DECORATOR.finditer(text):  # @dag without dag_id: the function's name
        function = _DEF.search(text, decorator.end())
        if function:
            ids.add(function.group(1))
    return ids


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return ""


def also_parse(selected: Iterable[Path], others: Iterable[Path]) -> list[Path]:
    """The files of ``others`` that spell out a dag_id that a file of ``selected`` spells out: the
    run parses them too, so that a dag_id defined in a selected file and in one of them fails
    both."""
    wanted: set[str] = set()
    for path in selected:
        wanted |= literal_dag_ids(_read(path))
    if not wanted:
        return []
    return [path for path in others if not wanted.isdisjoint(literal_dag_ids(_read(path)))]


# ------------------------------------------------------------------------------ -k before parsing

_IDENT = re.compile(r"[\w:+\-.\[\]\\/]+")  # what pytest's -k grammar takes for a name


def names_a_code(expression: str, codes: Iterable[str]) -> bool:
    """Whether the ``-k`` expression may match a policy code (pytest matches each name as a
    case-insensitive substring): then an item's keywords need its findings, hence its parse."""
    names = {n.lower() for n in _IDENT.findall(expression or "")} - {"and", "or", "not"}
    lowered = [c.lower() for c in codes]
    return any(name in code for name in names for code in lowered)


class KnownIds:
    """The dag_ids of DAG files that are not parsed: from the parse cache's outline of the file when
    it holds a valid result (exact), else the ids its source spells out (``literal_dag_ids``)."""

    def __init__(self, project, extra_key: str, use_cache: bool):
        self.cache = None
        if use_cache:
            from pytest_astro.parse.cache import ParseCache

            # the cache takes the discovery's digests: the parse's needs them too
            kept = dict(project.content_digests)
            self.cache = ParseCache(project, extra_key=extra_key)
            project.content_digests = kept

    def of(self, path: Path) -> set[str]:
        hit = self.cache.get(path) if self.cache is not None else None
        if hit is not None:
            return {dag_id for dag_id, _, _ in hit.dag_refs()}
        return literal_dag_ids(_read(path))
