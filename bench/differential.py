"""Differential run at scale: thousands of generated DAG files, pytest-astro against stock Airflow.

    python bench/differential.py --examples 2000 --seed 1
    python bench/differential.py --seed 1 --only 137      # case 137 of seed 1 alone, printed

Case ``i`` of seed ``S`` is drawn from ``random.Random(f"{S}:{i}")`` (tests/differential/grammar.py),
so any case is regenerated alone. Run with the Python of a venv that has Airflow, the standard
provider and pytest-astro (``bash scripts/dev.sh env``). Prints the files compared by construct,
the disagreements (each with its file, kept under --keep) and the internal errors; exits 1 if
there are any.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_astro.project import airflow_major  # noqa: E402
from tests.differential.grammar import RandomPicker, draw_case  # noqa: E402
from tests.differential.known import triage  # noqa: E402
from tests.differential.oracles import migrate, run_batch  # noqa: E402


def cases(seed: int, indices: range | list[int], major: int, max_loop: int) -> list:
    return [draw_case(RandomPicker(random.Random(f"{seed}:{i}")), major, {"max_loop": max_loop})
            for i in indices]


class Tally:
    """Counts over the run: files by construct, disagreeing files, internal errors, known issues."""

    def __init__(self, seed: int, keep: str | None):
        self.seed, self.keep = seed, keep
        self.files, self.by_construct, self.disagreeing = 0, Counter(), Counter()
        self.internal_by_construct, self.known = Counter(), Counter()
        self.n_disagreeing = self.n_internal = self.fixed = 0
        # where stock's pick varies: several DAGs refused in one file, a dag_id bagged twice
        self.several_refused = self.bagged_twice = self.passing = 0
        self.run_errors: list[str] = []

    def add(self, result, batch: list, indices: list[int]) -> None:
        self.files += len(batch)
        self.fixed += result.fixed
        self.run_errors += result.internal
        self.by_construct.update(result.counts())
        for case, index, outcome in zip(batch, indices, result.outcomes):
            self.passing += bool(outcome.stock["ok"])
            self.several_refused += len(outcome.stock.get("refusals", [])) > 1
            self.bagged_twice += any(len(dags) > 1 for dags in outcome.stock.get("made", {}).values())
            disagreements, internal, known = triage(outcome)
            self.known.update(known)
            if disagreements:
                self.n_disagreeing += 1
                self.disagreeing.update(outcome.constructs)
            if internal:
                self.n_internal += 1
                self.internal_by_construct.update(outcome.constructs)
            if disagreements or internal:
                print(f"case {index} of seed {self.seed} ({', '.join(outcome.constructs)}):")
                for line in disagreements + internal:
                    print(f"  {line}")
                if self.keep:
                    Path(self.keep).mkdir(parents=True, exist_ok=True)
                    Path(self.keep, f"seed{self.seed}_case{index}.py").write_bytes(case.render())

    def print(self, major: int) -> None:
        print(f"\nfiles compared: {self.files} (Airflow {major}.x, seed {self.seed}), {self.passing} passing on stock")
        print(f"files where stock refused several DAGs: {self.several_refused}; where it bagged a dag_id "
              f"twice: {self.bagged_twice}")
        print(f"{'construct':40} {'files':>7} {'disagree':>9} {'internal':>9}")
        for construct, count in sorted(self.by_construct.items()):
            print(f"{construct:40} {count:7} {self.disagreeing.get(construct, 0):9} "
                  f"{self.internal_by_construct.get(construct, 0):9}")
        print(f"files changed by lint --fix (and parsed again by stock): {self.fixed}")
        print(f"files disagreeing: {self.n_disagreeing}")
        print(f"files with internal errors: {self.n_internal}")
        for line in self.run_errors:
            print(f"run error: {line}")
        for test, n in sorted(self.known.items()):
            print(f"known (tracked by {test}): {n} files")

    def failed(self) -> bool:
        return bool(self.n_disagreeing or self.n_internal or self.run_errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=250, help="files per pytest-astro / stock run")
    parser.add_argument("--max-loop", type=int, default=5000, help="largest generated loop (chain, fan)")
    parser.add_argument("--only", type=int, default=None, help="print case ONLY of the seed and judge it alone")
    parser.add_argument("--no-lint", action="store_true", help="skip the lint cross-checks")
    parser.add_argument("--keep", default=None, help="folder to keep the disagreeing files in")
    parser.add_argument("--airflow-home", default=None, help="a migrated AIRFLOW_HOME to reuse")
    args = parser.parse_args(argv)

    major = airflow_major()
    indices = [args.only] if args.only is not None else list(range(args.examples))
    all_cases = cases(args.seed, indices, major, args.max_loop)
    if args.only is not None:
        sys.stdout.buffer.write(all_cases[0].render() + b"\n")
    tally = Tally(args.seed, args.keep)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        home = migrate(Path(args.airflow_home or Path(tmp) / "airflow-home"))
        for b in range(0, len(all_cases), args.batch):
            batch = all_cases[b:b + args.batch]
            result = run_batch(batch, Path(tmp) / f"batch{b}", home, lint=not args.no_lint)
            tally.add(result, batch, indices[b:b + args.batch])
            print(f"... {tally.files}/{len(all_cases)} files, {time.time() - started:.0f} s", file=sys.stderr)
    tally.print(major)
    return 1 if tally.failed() else 0


if __name__ == "__main__":
    raise SystemExit(main())
