"""Benchmark: one large project on one runner against the same project split over 4 runners.

    python bench/scale.py [--files 5000] [--shards 4] [--json bench/results-scale.json]

Generates the project of ``bench/run.py`` (same DAG files, same mix) and measures, cold (no parse
cache), each ``pytest --astro-dags`` in a fresh process with ONE parse worker (one core per runner):

  single            the whole project in one process: what one 1-core runner takes
  shards-parallel   ``--astro-shard k/N`` for k = 1..N as N processes started together, each in its
                    own copy of the project (its own cache, as on separate runners): N runners
                    simulated on this machine, so meaningful only with at least N free cores (the
                    table says how many there were)
  shards-one-by-one the same N shards one after the other: each shard's time without the others
                    competing for the cores (what a shard costs on a runner of its own)

The shards split by the parse times the single run measured (``--astro-store-durations``), as a CI
that restores the durations file does; ``--no-durations`` adds rows split without it (by count).
For each shard row: the slowest shard's wall time against the single run's, the balance (slowest /
mean shard), and whether the shards' reports add up (``sharding.check_shard_reports``: every DAG file
parsed exactly once across the shards). Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _bench_run():
    """bench/run.py, for its project generator and measuring helpers (one generator for both)."""
    spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pytest(report: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-o", "addopts=", "--astro-dags", "dags",
            "--astro-workers", "1", "--astro-report", report, *extra]


def _env(root: Path, workdir: Path) -> dict[str, str]:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    for name in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE", "CI", "CI_NODE_INDEX", "CI_NODE_TOTAL"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "bytecode")  # installed packages' bytecode, shared
    return env


def _fresh(root: Path) -> None:
    """Cold: no parse cache, no project bytecode (a fresh checkout on a fresh runner)."""
    shutil.rmtree(root / ".pytest_cache", ignore_errors=True)


def _parsed(report: Path) -> tuple[int, dict]:
    data = json.loads(report.read_text())
    return sum(not f.get("cached") for f in data["files"]), data


def run_shards(copies: list[Path], total: int, env: dict, together: bool, durations: bool) -> dict:
    """The N shards, each in its own copy of the project; wall time per shard and the checks."""
    from pytest_astro.sharding import check_shard_reports

    extra = [] if durations else ["-o", "astro_durations=no-such-durations.json"]
    cmds = [_pytest("report.json", "--astro-shard", f"{k}/{total}", *extra) for k in range(1, total + 1)]
    for copy in copies:
        _fresh(copy)
    walls: list[float] = []
    if together:
        started = time.perf_counter()
        procs = [subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for cmd, copy in zip(cmds, copies)]
        ends = [0.0] * total
        outputs = [""] * total
        pending = set(range(total))
        while pending:  # the end of each shard, not of the slowest: poll
            for i in list(pending):
                if procs[i].poll() is not None:
                    ends[i] = time.perf_counter() - started
                    outputs[i] = procs[i].stdout.read()
                    pending.discard(i)
            time.sleep(0.01)
        walls, exits = ends, [p.returncode for p in procs]
    else:
        exits, outputs = [], []
        for cmd, copy in zip(cmds, copies):
            started = time.perf_counter()
            proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            exits.append(proc.returncode)
            outputs.append(proc.stdout)
    reports, parsed = [], []
    for copy in copies:
        count, data = _parsed(copy / "report.json")
        parsed.append(count)
        reports.append(data)
    problems = check_shard_reports(reports)
    mean = sum(walls) / total
    return {"seconds": round(max(walls), 3), "shard_seconds": [round(w, 3) for w in walls],
            "balance": round(max(walls) / mean, 3) if mean else None, "parsed": parsed, "exit": max(exits),
            "adds_up": not problems, "problems": problems[:5],
            "summary": [o.strip().splitlines()[-1] if o.strip() else "" for o in outputs]}


def run(n: int, total: int, workdir: Path, with_policies: bool, no_durations: bool) -> dict:
    bench = _bench_run()
    root = workdir / f"project-{n}"
    shutil.rmtree(root, ignore_errors=True)
    bench.make_project(root, n, bench.heavy_modules())
    (root / "pyproject.toml").write_text("" if with_policies else bench.POLICIES_OFF)
    env = _env(root, workdir)
    # untimed: compiled bytecode of what is installed, as after `pip install` (bench/run.py does the same)
    warm = workdir / "warm"
    shutil.rmtree(warm, ignore_errors=True)
    bench.make_project(warm, 12, bench.heavy_modules())
    subprocess.run(_pytest("report.json", "--astro-no-cache"), cwd=warm, env=env, capture_output=True)

    rows: dict[str, dict] = {}
    _fresh(root)
    single = bench.measure(_pytest("report.json", "--astro-store-durations"), root, env)
    single["parsed"], _ = _parsed(root / "report.json")
    rows["single"] = single
    copies = []
    for k in range(1, total + 1):  # after the single run: each copy has its durations file
        copy = workdir / f"shard-{k}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".pytest_cache"))
        copies.append(copy)
    rows["shards-parallel"] = run_shards(copies, total, env, together=True, durations=True)
    rows["shards-one-by-one"] = run_shards(copies, total, env, together=False, durations=True)
    if no_durations:
        rows["shards-parallel-no-durations"] = run_shards(copies, total, env, together=True, durations=False)
        rows["shards-one-by-one-no-durations"] = run_shards(copies, total, env, together=False, durations=False)
    for name, row in rows.items():
        row["x_single"] = round(row["seconds"] / single["seconds"], 3)
    return rows


def table(results: dict) -> str:
    lines = [f"{results['machine']}; load before: {results['load_before']}; {results['files']} DAG files, "
             f"{results['shards']} shards, 1 parse worker per process", "",
             "| approach | slowest wall s | x single | balance (slowest / mean) | parsed | notes |",
             "|---|---:|---:|---:|---:|---|"]
    for name, r in results["rows"].items():
        notes = []
        if "shard_seconds" in r:
            notes.append("shards: " + ", ".join(f"{s:.2f}" for s in r["shard_seconds"]) + " s")
            notes.append("every file parsed once across the shards: " + ("yes" if r["adds_up"] else "NO"))
        if r.get("exit"):
            notes.append(f"exit {r['exit']}")
        parsed = " + ".join(str(p) for p in r["parsed"]) if isinstance(r["parsed"], list) else str(r["parsed"])
        balance = f"{r['balance']:.2f}" if r.get("balance") else "-"
        lines.append(f"| {name} | {r['seconds']:.2f} | {r['x_single']:.2f} | {balance} | {parsed} | {'; '.join(notes)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--json", default="bench/results-scale.json", help="where to write the results")
    parser.add_argument("--no-policies", action="store_true", help="switch the DAG policies off")
    parser.add_argument("--no-durations", action="store_true",
                        help="also split without the durations file (by count), to see what the durations buy")
    parser.add_argument("--workdir", default=None, help="keep the generated projects here (default: a temp dir)")
    args = parser.parse_args(argv)
    results = {"machine": f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}",
               "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()), "files": args.files,
               "shards": args.shards}
    if (os.cpu_count() or 1) < args.shards:
        print(f"note: {os.cpu_count()} cores for {args.shards} simulated runners: shards-parallel shares them; "
              f"shards-one-by-one gives each shard's own time", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pytest-astro-scale-") as tmp:
        if args.workdir:
            Path(args.workdir).mkdir(parents=True, exist_ok=True)
        rows = run(args.files, args.shards, Path(args.workdir or tmp), not args.no_policies, args.no_durations)
    results.update(rows=rows, load_after=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    results["markdown"] = table(results)
    print(results["markdown"])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
