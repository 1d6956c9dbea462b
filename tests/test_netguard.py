"""The network guard: DAG files that connect out or look up host names while being imported fail.

Every outbound case runs inside a fresh network namespace (``unshare --net``: no interface but a
loopback that is down, no route, no name server reachable), so nothing could leave this machine
even if the guard were broken; and the targets are names under ``.invalid`` (RFC 6761) and
documentation addresses (RFC 5737 TEST-NET-1/2/3), which route nowhere anyway. The loopback case
talks to a real server on 127.0.0.1 in the ordinary namespace.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading

import pytest

DAG_TAIL = '''
with DAG("{dag_id}", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="t")
'''
HEAD = '''from datetime import datetime
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
'''


def dag_file(dag_id: str, body: str) -> str:
    return HEAD + body.strip("\n") + "\n" + DAG_TAIL.format(dag_id=dag_id)


OUTBOUND = {
    "pyproject.toml": '''
[tool.pytest-astro]
allow_network = ["*.corp.invalid", "203.0.113.0/24:5432", "metrics.invalid:8125"]

[tool.pytest-astro.policies]
select = []
''',
    # a DNS lookup by an HTTP client (urllib: getaddrinfo, then connect)
    "dags/http_config.py": dag_file("http_config", '''
import urllib.request
CONFIG = urllib.request.urlopen("http://api.example.invalid:8080/config", timeout=2).read()
'''),
    # a connect to an address: no lookup at all
    "dags/raw_socket.py": dag_file("raw_socket", '''
import socket
socket.create_connection(("192.0.2.10", 443), timeout=2)
'''),
    # the file swallows what the guard raised (even a bare except): it fails anyway, at its line
    "dags/swallowed.py": dag_file("swallowed", '''
import socket
def probe():
    try:
        socket.create_connection(("192.0.2.11", 5432), timeout=2)
    except BaseException:
        return False
probe()
'''),
    # a lookup without a port, through a library call (gethostbyname)
    "dags/lookup.py": dag_file("lookup", '''
import socket
ADDRESS = socket.gethostbyname("db.example.invalid")
'''),
    # UDP needs no connect: sendto is outbound too (a statsd client at import time)
    "dags/udp.py": dag_file("udp", '''
import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"dag.parsed:1|c", ("198.51.100.7", 8125))
'''),
    # allowed: a glob of names, a network with a port, a name with a port. The namespace has no
    # network, so the real calls fail, and the file handles that: the guard let them through.
    "dags/allowed.py": dag_file("allowed", '''
import socket
REACHED = []
for attempt in (lambda: socket.getaddrinfo("vault.corp.invalid", 8200),
                lambda: socket.create_connection(("203.0.113.5", 5432), timeout=2),
                lambda: socket.getaddrinfo("metrics.invalid", 8125)):
    try:
        attempt()
    except OSError as exc:
        REACHED.append(type(exc).__name__)
assert len(REACHED) == 3, REACHED
'''),
    # allowed host, other port: refused
    "dags/wrong_port.py": dag_file("wrong_port", '''
import socket
socket.create_connection(("203.0.113.5", 22), timeout=2)
'''),
}


def _netns_works() -> str:
    """Why outbound cases cannot run here ('' when they can)."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return "needs Linux's unshare(1) to run outbound cases in a network namespace without a network"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace here (unshare --net: {probe.stderr.strip()}); needs root or user namespaces"
    return ""


needs_netns = pytest.mark.skipif(bool(_netns_works()), reason=_netns_works() or "-")


def _in_netns(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a fresh network namespace: nothing it does can reach another machine."""
    return pytester.run("unshare", "--net", sys.executable, "-m", "pytest", *args, timeout=300)


@needs_netns
def test_outbound_connections_and_lookups_fail_the_file(pytester: pytest.Pytester, write_files):
    write_files(pytester.path, OUTBOUND)
    result = _in_netns(pytester, "--astro-dags", "-p", "no:cacheprovider", "-rA")
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "dags/http_config.py:5: NetworkAccess: connects to api.example.invalid:8080 while being imported; "
        "move it into a task",
        "Traceback (your code only):",
        '  File "dags/http_config.py", line 5, in <module>',
        "hint: Airflow's DAG processor imports DAG files every few minutes*(it was stopped at the DNS lookup of "
        "'api.example.invalid'). If the file must reach it while being imported, allow it in pyproject.toml: "
        '[[]tool.pytest-astro] allow_network = [[]"api.example.invalid:8080"]',
    ])
    result.stdout.fnmatch_lines([
        "dags/raw_socket.py:5: NetworkAccess: connects to 192.0.2.10:443 while being imported; move it into a task"])
    result.stdout.fnmatch_lines([
        "dags/swallowed.py:7: NetworkAccess: connects to 192.0.2.11:5432 while being imported; move it into a task",
        "Traceback (your code only):",
        '  File "dags/swallowed.py", line 10, in <module>',
        '  File "dags/swallowed.py", line 7, in probe'])
    result.stdout.fnmatch_lines([
        "dags/lookup.py:5: NetworkAccess: looks up db.example.invalid while being imported; move it into a task"])
    result.stdout.fnmatch_lines([
        "dags/udp.py:5: NetworkAccess: connects to 198.51.100.7:8125 while being imported; move it into a task"])
    result.stdout.fnmatch_lines([
        "dags/wrong_port.py:5: NetworkAccess: connects to 203.0.113.5:22 while being imported; move it into a task"])
    result.stdout.fnmatch_lines(["*network access*6*"])
    result.stdout.fnmatch_lines(["PASSED dags/allowed.py::astro"])
    assert "gaierror" not in out and "Network is unreachable" not in out
    result.assert_outcomes(passed=1, failed=6)


@needs_netns
def test_parse_command_prints_host_port_and_line(pytester: pytest.Pytester, write_files):
    write_files(pytester.path, {k: v for k, v in OUTBOUND.items() if k in ("pyproject.toml", "dags/raw_socket.py")})
    done = subprocess.run(["unshare", "--net", sys.executable, "-m", "pytest_astro", "parse", "--no-cache"],
                          cwd=pytester.path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("dags/raw_socket.py:5: NetworkAccess: connects to 192.0.2.10:443 while being imported; "
            "move it into a task") in done.stdout


@needs_netns
def test_allow_everything_turns_the_guard_off(pytester: pytest.Pytester, write_files):
    write_files(pytester.path, {
        "pyproject.toml": '[tool.pytest-astro]\nallow_network = ["*"]\n[tool.pytest-astro.policies]\nselect = []\n',
        # without the guard, the namespace's own failure is what the file sees
        "dags/raw_socket.py": dag_file("raw_socket", '''
import socket
try:
    socket.create_connection(("192.0.2.10", 443), timeout=2)
except OSError as exc:
    print("unguarded:", exc)
'''),
    })
    result = _in_netns(pytester, "--astro-dags", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = b'{"tables": ["orders", "customers"]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    """A real HTTP server on 127.0.0.1; yields its port and the paths it served."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    served: list[str] = []
    handle = server.RequestHandlerClass.do_GET

    def record(self):
        served.append(self.path)
        handle(self)

    server.RequestHandlerClass = type("Recording", (_Handler,), {"do_GET": record})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], served
    server.shutdown()
    server.server_close()


def test_loopback_is_not_reported(pytester: pytest.Pytester, write_files, local_server):
    port, served = local_server
    write_files(pytester.path, {
        "pyproject.toml": "[tool.pytest-astro.policies]\nselect = []\n",
        "dags/local_config.py": dag_file("local_config", f'''
import json, socket, urllib.request
TABLES = json.loads(urllib.request.urlopen("http://127.0.0.1:{port}/tables", timeout=10).read())["tables"]
TABLES += json.loads(urllib.request.urlopen("http://localhost:{port}/more", timeout=10).read())["tables"]
socket.getaddrinfo(socket.gethostname(), None)  # the machine's own name is not outbound
assert TABLES == ["orders", "customers"] * 2
'''),
    })
    result = pytester.runpytest("--astro-dags", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert served == ["/tables", "/more"]


@pytest.mark.parametrize("entry, message", [
    ('"api.example.com"', "expected a list"),
    ('["api.example.com:99999"]', "port 99999 is not a port number"),
    ('["10.0.0.0/33"]', "is not a host name, address, glob or IP network"),
    ('["http://api.example.com/"]', "is not a host name, address, glob or IP network"),
    ('["db.internal:5432", 5432]', "5432 is not a host"),
])
def test_bad_allow_list_is_a_usage_error(pytester: pytest.Pytester, write_files, entry, message):
    write_files(pytester.path, {
        "pyproject.toml": f"[tool.pytest-astro]\nallow_network = {entry}\n",
        "dags/a.py": dag_file("a", ""),
    })
    result = pytester.runpytest("--astro-dags")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*pyproject.toml [[]tool.pytest-astro]: allow_network*{message}*"])


def test_allow_list_is_part_of_the_cache_key(tmp_path):
    from pytest_astro.config import load_settings

    (tmp_path / "pyproject.toml").write_text('[tool.pytest-astro]\nallow_network = ["*.internal"]\n')
    with_list = load_settings(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.pytest-astro]\n")
    assert with_list.parse_key() != load_settings(tmp_path).parse_key()
    assert with_list.allow_network == ("*.internal",)
