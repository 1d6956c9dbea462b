"""Builders and local servers for the deploy gate's tests (only 127.0.0.1 is ever reached)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_SUITE = HERE / "fake_suite.py"
REPO_ROOT = HERE.parent.parent
# Looks like an Astro API token (a JWT) and must never appear in any output.
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkZXBsb3ktZ2F0ZS10ZXN0In0.c2VjcmV0LXNpZ25hdHVyZS1YWVo"
AWS_SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

DAG = '''\
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow import DAG

with DAG("{name}", schedule=None, tags=["t"], default_args={{"retries": 2}}):
    EmptyOperator(task_id="t")
'''


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com",
                           "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                          cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def write(root: Path, files: dict[str, str | None]) -> None:
    """Write (or with None, delete) files under ``root``."""
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def deploy_toml(branches: dict[str, str | dict], **top) -> str:
    """A [tool.pytest-astro.deploy] section (values rendered as TOML via json, which is close enough)."""
    lines = ["[tool.pytest-astro.deploy]"]
    lines += [f"{k.replace('_', '-')} = {json.dumps(v)}" for k, v in top.items()]
    lines.append("[tool.pytest-astro.deploy.branches]")
    for name, value in branches.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f'"{name}" = {{ {inner} }}')
        else:
            lines.append(f'"{name}" = {json.dumps(value)}')
    return "\n".join(lines) + "\n"


class Scenario:
    """A real git repository holding an Astro project, with a fake suite and a fake astro CLI."""

    def __init__(self, tmp_path: Path, branches: dict | None = None, subdir: str = "", real_suite: bool = False,
                 **deploy):
        self.tmp = tmp_path
        self.repo = tmp_path / "repo"
        self.root = self.repo / subdir if subdir else self.repo
        self.root.mkdir(parents=True)
        self.spec_path = tmp_path / "suite" / "spec.json"
        self.spec_path.parent.mkdir()
        self.astro_log = tmp_path / "astro.jsonl"
        self.record = tmp_path / "record.json"
        self.plan = tmp_path / "plan.json"
        self.summary = tmp_path / "summary.md"
        self.set_suite(passed=3)
        if not real_suite:
            deploy.setdefault("suite", ["{python}", str(FAKE_SUITE), "{report}", str(self.spec_path)])
        git(self.repo, "init", "-q")
        write(self.root, {
            "Dockerfile": "FROM astrocrpublic.azurecr.io/runtime:3.1-1\n",
            "requirements.txt": "",
            "pyproject.toml": deploy_toml(branches if branches is not None else {"main": "clmain000"}, **deploy),
            "dags/etl.py": DAG.format(name="etl"),
            "dags/report.py": DAG.format(name="report"),
            "include/helpers.py": "X = 1\n",
            "tests/test_nothing.py": "def test_ok():\n    pass\n",
        })
        self.first = commit_all(self.repo, "initial project")

    def set_suite(self, **spec) -> None:
        self.spec_path.write_text(json.dumps(spec))

    @property
    def suite_env(self) -> dict:
        return json.loads((self.spec_path.parent / "env.json").read_text())

    def change(self, files: dict[str, str | None], message: str = "change") -> str:
        write(self.root, files)
        return commit_all(self.repo, message)

    def env(self, **extra: str) -> dict:
        """A clean environment: no CI variables of the machine running the tests leak in."""
        env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
        env["PATH"] = os.pathsep.join([str(HERE), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env.update(ASTRO_API_TOKEN=TOKEN, FAKE_ASTRO_LOG=str(self.astro_log), PYTHONDONTWRITEBYTECODE="1",
                   GITHUB_STEP_SUMMARY=str(self.summary))
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def gate(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """``pytest-astro deploy ARGS`` in a subprocess, from the project root (ARGS may start with the
        phase, check or apply)."""
        return subprocess.run([sys.executable, "-m", "pytest_astro", "deploy", *args, "--record", str(self.record),
                               "--plan", str(self.plan)],
                              cwd=self.root, env=self.env() if env is None else env, capture_output=True,
                              text=True, timeout=300)

    def astro_calls(self) -> list[dict]:
        if not self.astro_log.exists():
            return []
        return [json.loads(line) for line in self.astro_log.read_text().splitlines()]

    def deploys(self) -> list[list[str]]:
        return [c["argv"] for c in self.astro_calls() if c["argv"][:1] == ["deploy"]]

    def read_record(self) -> dict:
        return json.loads(self.record.read_text())


# ---------------------------------------------------------------------------- servers

class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of a storage server that can fail uploads.

    ``fail_from``: the 1-based number of the upload from which every upload fails with HTTP 503
    (an outage midway); ``fail_once``: the number of the upload that fails once (a blip).
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.fail_from: int | None = None
        self.fail_once: int | None = None
        self.delay = 0.0  # seconds each upload is held (time to interrupt a sync midway)
        self.uploads = 0  # upload requests seen (failed ones included)
        self.failed = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers `Expect: 100-continue` at once (boto3 waits 1 s otherwise)

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self):
                body = self._body()
                is_upload = self.command == "PUT" or "/upload/" in self.path
                if is_upload:
                    with proxy.lock:
                        proxy.uploads += 1
                        n = proxy.uploads
                        fail = (proxy.fail_from is not None and n >= proxy.fail_from) or n == proxy.fail_once
                        proxy.failed += fail
                    if proxy.delay:
                        time.sleep(proxy.delay)
                    if fail:
                        payload = b"injected outage"
                        self.send_response(503)
                        self.send_header("Content-Length", str(len(payload)))
                        self.send_header("Connection", "close")
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection", "expect")}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
