"""A stand-in for `python -m pytest --astro-dags` that writes the report the plugin writes.

argv: REPORT SPEC. SPEC is a JSON file: {"exit": 0, "passed": 2, "failed": 0, "skipped": 0,
"broken": ["dags/x.py"], "crash": false, "omit": ["dags/y.py"], "rewrite": {"dags/x.py": "text"}}.
"rewrite" writes files after the report, as a conftest.py's pytest_sessionfinish could; "daemon": PATH
leaves a process running (PATH.pid), detached from the suite, that writes PATH.woke 3 s later. The suite's
environment is dumped beside SPEC (env.json), so tests can prove it holds no credential.
"""
import json
import os
import signal
import sys
from pathlib import Path

report, spec_path = Path(sys.argv[1]), Path(sys.argv[2])
spec = json.loads(spec_path.read_text())
(spec_path.parent / "env.json").write_text(json.dumps(dict(os.environ)))
print("fake suite: collected tests in", os.getcwd())
print("fake suite: extra args", sys.argv[3:])
if spec.get("crash"):
    os.kill(os.getpid(), signal.SIGKILL)
files = []
for path in sorted(Path(spec.get("dags_folder", "dags")).rglob("*.py")):
    rel = path.as_posix()
    if rel in spec.get("omit", []):
        continue
    ok = rel not in spec.get("broken", [])
    files.append({"file": rel, "ok": ok, "errors": [] if ok else [{"kind": "exception", "message": "boom"}]})
tests = {k: spec.get(k, 0) for k in ("passed", "failed", "errors", "skipped")}
tests["total"] = sum(tests.values())
report.write_text(json.dumps({"version": 1, "files": files, "parsed": len(files),
                              "failed": sum(not f["ok"] for f in files), "tests": tests}))
if spec.get("daemon"):  # leave a process behind, as a DAG file or a test could: it waits for the deploy
    if os.fork() == 0:
        os.setsid()
        import time
        if os.fork() == 0:
            Path(spec["daemon"] + ".tmp").write_text(str(os.getpid()))
            os.rename(spec["daemon"] + ".tmp", spec["daemon"] + ".pid")
            time.sleep(3)
            Path(spec["daemon"] + ".woke").write_text("still running after the suite")
            os._exit(0)
        while not Path(spec["daemon"] + ".pid").exists():  # the suite ends once the daemon is up
            time.sleep(0.01)
        os._exit(0)
    os.wait()
for rel, text in spec.get("rewrite", {}).items():
    Path(rel).write_text(text)
print(f"fake suite: {tests['passed']} passed, {tests['failed']} failed")
sys.exit(spec.get("exit", 0))
