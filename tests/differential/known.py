"""Disagreements already found and routed: each is tracked by a strict-xfail regression case in
tests/test_differential.py (named here), so the generated runs stay green for everything else.

When the bug is fixed, its regression case passes, strict xfail turns that into a failure, and
whoever fixed it deletes the xfail mark and the entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.differential.oracles import Outcome


Match = Callable[[str, Outcome], bool]


def never(line: str, outcome: Outcome) -> bool:
    return False


@dataclass(frozen=True)
class Known:
    test: str  # the regression case(s) in tests/test_differential.py
    owner: str  # who the lead routes it to
    disagreement: Match = never  # (a disagreement's line, the outcome) -> explained by this entry
    internal: Match = never  # (an internal error's line, the outcome) -> explained by this entry


KNOWN: tuple[Known, ...] = (
    # AST203 on a task id used in and out of a TaskGroup whose tasks pass dag= (the group's prefix is
    # ignored): a lint claim that Airflow refuses a file stock parses
    Known("test_routed_regression[same_task_id_in_a_group_with_dag_arg-disagreements]", "lintfast",
          disagreement=lambda line, o: line.startswith("lint AST203 ") and o.stock["ok"]
          and {"task_group", "style:dag_arg"} <= set(o.constructs)),
)


def triage(outcome: Outcome) -> tuple[list[str], list[str], set[str]]:
    """``outcome``'s disagreements and internal errors that no known entry explains, and the names
    of the known entries that matched."""
    seen: set[str] = set()
    unexplained: list[list[str]] = [[], []]
    for kind, lines in (("disagreement", outcome.disagreements), ("internal", outcome.internal)):
        for line in lines:
            hits = [k.test for k in KNOWN if getattr(k, kind)(line, outcome)]
            seen.update(hits)
            if not hits:
                unexplained[kind == "internal"].append(line)
    return unexplained[0], unexplained[1], seen
