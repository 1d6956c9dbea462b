"""bench/run.py works end to end on a tiny project (timings are measured, never asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_bench_runs_and_checks_what_it_claims(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--files", "6",
                           "--bytecode", "as-is", "--json", str(out), "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["sizes"]["6"]
    assert set(rows) == {"template", "single-dagbag", "pytest-floor", "pytest-floor-per-file", "ours-cold",
                         "ours-warm", "ours-1-dag", "ours-include", "ablation-policies-off-cold",
                         "ablation-policies-off-warm"}
    assert all(r["exit"] == 0 for r in rows.values()), {k: r["summary"] for k, r in rows.items()}
    assert rows["ours-cold"]["parsed"] == 6 and rows["ours-cold"]["sandbox_started"]
    for floor in ("pytest-floor", "pytest-floor-per-file"):  # one item per DAG file, all run
        assert any("6 passed" in line for line in rows[floor]["summary"]), rows[floor]["summary"]
    assert rows["ours-warm"]["parsed"] == 0 and not rows["ours-warm"]["sandbox_started"]
    # the headline rows run the default settings (the policies on), one item per DAG file
    assert any("6 passed" in line for line in rows["ours-warm"]["summary"]), rows["ours-warm"]["summary"]
    assert rows["ablation-policies-off-cold"]["parsed"] == 6
    assert rows["ours-1-dag"]["parsed_exactly_it"]
    assert rows["ours-include"]["parsed_exactly_importers"] and rows["ours-include"]["importers"] == 1
    assert rows["single-dagbag"]["peak_pss"] > 0 and rows["ours-cold"]["processes"] >= 2
    assert "| 6 | ours-warm |" in proc.stdout


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_come_from_callgrind(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    env = dict(os.environ)
    small = bench.count_instructions([sys.executable, "-c", "pass"], tmp_path, env)
    more = bench.count_instructions([sys.executable, "-c", "sum(range(3_000_000))"], tmp_path, env)
    assert small and more and more > small + 10_000_000  # a loop of 3M iterations executes more
    # a program it starts is counted too (the sandbox's server)
    both = bench.count_instructions([sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, "
                                     "'-c', 'sum(range(3_000_000))'])"], tmp_path, env)
    assert both and both > more + small // 2
    assert bench.count_instructions([sys.executable, "-c", "raise SystemExit(3)"], tmp_path, env) is None
