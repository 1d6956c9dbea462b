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


KNOWN: tuple[Known, ...] = ()  # nothing known: every disagreement fails the run


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
