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
from tests.differential.oracles import migrate, run_batch  # noqa: E402


def cases(seed: int, indices: range | list[int], major: int, max_loop: int) -> list:
    return [draw_case(RandomPicker(random.Random(f"{seed}:{i}")), major, {"max_loop": max_loop})
            for i in indices]


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
    indices = [args.only] if args.only is not None else range(args.examples)
    all_cases = cases(args.seed, indices, major, args.max_loop)
    if args.only is not None:
        sys.stdout.buffer.write(all_cases[0].render() + b"\n")
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        home = migrate(Path(args.airflow_home or Path(tmp) / "airflow-home"))
        by_construct, disagreeing = Counter(), Counter()
        n_dis = 0
        internal: list[str] = []
        started = time.time()
        for b in range(0, len(all_cases), args.batch):
            batch = all_cases[b:b + args.batch]
            result = run_batch(batch, Path(tmp) / f"batch{b}", home, lint=not args.no_lint)
            internal += result.internal
            by_construct.update(result.counts())
            for n, outcome in enumerate(result.outcomes):
                index = indices[b + n]
                if outcome.disagreements:
                    n_dis += 1
                    disagreeing.update(outcome.constructs)
                    print(f"DISAGREE seed {args.seed} case {index} ({', '.join(outcome.constructs)}):")
                    for line in outcome.disagreements:
                        print(f"  {line}")
                    if args.keep:
                        Path(args.keep).mkdir(parents=True, exist_ok=True)
                        Path(args.keep, f"seed{args.seed}_case{index}.py").write_bytes(batch[n].render())
            print(f"... {min(b + args.batch, len(all_cases))}/{len(all_cases)} files, "
                  f"{time.time() - started:.0f} s", file=sys.stderr)
    print(f"\nfiles compared: {len(all_cases)} (Airflow {major}.x, seed {args.seed})")
    print(f"{'construct':40} {'files':>7} {'disagree':>9}")
    for construct, count in sorted(by_construct.items()):
        print(f"{construct:40} {count:7} {disagreeing.get(construct, 0):9}")
    print(f"files disagreeing: {n_dis}")
    print(f"internal errors: {len(internal)}")
    for line in internal[:50]:
        print(f"  {line}")
    return 1 if (n_dis or internal) else 0


if __name__ == "__main__":
    raise SystemExit(main())
