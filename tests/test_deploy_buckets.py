"""Bucket targets: sync the DAG folder to S3 (moto's server) and GCS (gcp-storage-emulator), both on
127.0.0.1, through a proxy that can fail uploads to prove a sync interrupted midway leaves the old
DAGs in place."""

from __future__ import annotations

import logging
import re

import pytest

try:
    from tests.fake_astro.support import AWS_SECRET, DAG, FaultyProxy, Scenario
except ImportError:  # pragma: no cover
    from fake_astro.support import AWS_SECRET, DAG, FaultyProxy, Scenario

pytestmark = pytest.mark.slow

OLD = "# the old version\n" + DAG.format(name="etl")


@pytest.fixture(scope="session")
def moto_port():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server.get_host_and_port()[1]
    server.stop()


@pytest.fixture(scope="session")
def gcs_port():
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    yield server._api._httpd.server_address[1]
    server.stop()


@pytest.fixture
def s3(moto_port):
    """(proxy in front of moto, a boto3 client straight to moto)."""
    import boto3

    proxy = FaultyProxy(moto_port)
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    yield proxy, client
    proxy.close()


@pytest.fixture
def gcs(gcs_port):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    proxy = FaultyProxy(gcs_port)
    client = storage.Client(project="test", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": f"http://127.0.0.1:{gcs_port}"})
    yield proxy, client
    proxy.close()


def bucket_name(tmp_path) -> str:
    return re.sub(r"[^a-z0-9]", "-", tmp_path.name.lower())[-50:].strip("-") + "-b"


def project(tmp_path, url: str) -> Scenario:
    s = Scenario(tmp_path, branches={"main": {"bucket": url}}, retries=1)
    s.change({
        "dags/.airflowignore": "scratch_*\n",
        "dags/scratch_notes.py": "# airflow dag, ignored\n",
        "dags/sql/query.sql": "select 1\n",
    }, "supporting files")
    return s


class S3:
    def __init__(self, client, name):
        self.client, self.name = client, name
        client.create_bucket(Bucket=name)

    def put(self, key, text):
        self.client.put_object(Bucket=self.name, Key=key, Body=text.encode())

    def contents(self) -> dict[str, str]:
        objs = self.client.list_objects_v2(Bucket=self.name).get("Contents", [])
        return {o["Key"]: self.client.get_object(Bucket=self.name, Key=o["Key"])["Body"].read().decode() for o in objs}


class GCS:
    def __init__(self, client, name):
        self.bucket = client.create_bucket(name)
        self.client = client

    def put(self, key, text):
        self.bucket.blob(key).upload_from_string(text)

    def contents(self) -> dict[str, str]:
        return {b.name: b.download_as_bytes().decode() for b in self.client.list_blobs(self.bucket)}


@pytest.fixture(params=["s3", "gcs"])
def store(request, tmp_path):
    """(bucket helper, proxy, url, env for the gate)."""
    name = bucket_name(tmp_path)
    if request.param == "s3":
        proxy, client = request.getfixturevalue("s3")
        helper = S3(client, name)
        env = dict(AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
                   AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_DEFAULT_REGION="us-east-1")
    else:
        proxy, client = request.getfixturevalue("gcs")
        helper = GCS(client, name)
        env = dict(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{proxy.port}", GOOGLE_CLOUD_PROJECT="test")
    helper.put("dags/etl.py", OLD)
    helper.put("dags/gone.py", DAG.format(name="gone"))  # removed from the project since
    helper.put("elsewhere/keep.txt", "not under the prefix\n")
    scheme = "s3" if request.param == "s3" else "gs"
    return helper, proxy, f"{scheme}://{name}/dags", env


def test_sync_uploads_changes_then_deletes_removed_files(tmp_path, store):
    helper, proxy, url, env = store
    s = project(tmp_path, url)
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    contents = helper.contents()
    # .airflowignore decides what Airflow parses, not what is shipped: the ignored file goes up too
    assert set(contents) == {"dags/etl.py", "dags/report.py", "dags/sql/query.sql", "dags/.airflowignore",
                             "dags/scratch_notes.py", "elsewhere/keep.txt"}
    assert contents["dags/etl.py"] == (s.root / "dags/etl.py").read_text()
    out = proc.stdout
    # supporting files first, DAG files after them, deletions last
    assert out.index("upload") < out.index("sql/query.sql") < out.index("dags/etl.py") < out.index("delete ")
    assert "2 to upload" not in out and "1 to delete" in out
    rec = s.read_record()
    assert rec["outcome"] == "deployed" and rec["bucket_sync"]["deleted"] == ["dags/gone.py"]
    assert not [k for k in s.suite_env if k.startswith("AWS_")]
    assert AWS_SECRET not in out + proc.stderr
    # a second run with nothing changed uploads nothing
    again = s.gate(env=s.env(**env))
    assert again.returncode == 0 and "0 to upload, 0 to delete, 5 unchanged" in again.stdout


def test_sync_interrupted_midway_leaves_the_old_dags_in_place(tmp_path, store):
    helper, proxy, url, env = store
    s = project(tmp_path, url)
    proxy.fail_from = 2  # the first upload lands, then the storage goes down for good
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 1
    assert "deploy FAILED" in proc.stdout and "still failing after 1 retries" in proc.stdout, proc.stdout
    contents = helper.contents()
    assert contents["dags/gone.py"] == DAG.format(name="gone")  # nothing was deleted
    assert contents["dags/etl.py"] == OLD  # a DAG not yet uploaded keeps its working version
    assert "dags/.airflowignore" in contents  # the one upload that went through (supporting files first)
    assert s.read_record()["outcome"] == "failed"


def test_sync_retries_a_transient_failure(tmp_path, store):
    helper, proxy, url, env = store
    s = project(tmp_path, url)
    proxy.fail_once = 2
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proxy.failed == 1 and "(transient), retry 1/1" in proc.stdout
    assert helper.contents()["dags/etl.py"] == (s.root / "dags/etl.py").read_text()


def test_refused_suite_leaves_the_bucket_untouched(tmp_path, store):
    helper, proxy, url, env = store
    s = project(tmp_path, url)
    s.set_suite(exit=1, passed=1, failed=1)
    before = helper.contents()
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 1 and "NOT deploying" in proc.stdout
    assert helper.contents() == before and proxy.uploads == 0


def test_an_image_deploy_to_a_bucket_is_refused(tmp_path):
    s = Scenario(tmp_path, branches={"main": {"bucket": "s3://some-bucket/dags"}})
    proc = s.gate("--image")
    assert proc.returncode == 2 and "syncs the DAG folder only" in proc.stdout


def test_a_helper_folder_named_in_airflowignore_is_uploaded_not_deleted(tmp_path, store):
    helper, proxy, url, env = store
    s = Scenario(tmp_path, branches={"main": {"bucket": url}}, retries=1)
    s.change({"dags/.airflowignore": "common/\n", "dags/common/util.py": "PREFIX = 'x'\n",
              "dags/etl.py": "from common.util import PREFIX\n" + DAG.format(name="etl")})
    helper.put("dags/common/util.py", "PREFIX = 'old'\n")
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    contents = helper.contents()
    assert contents["dags/common/util.py"] == "PREFIX = 'x'\n"
    assert "dags/common/util.py" not in s.read_record()["bucket_sync"]["deleted"]


def test_git_ignored_files_are_not_uploaded(tmp_path, store):
    helper, proxy, url, env = store
    s = Scenario(tmp_path, branches={"main": {"bucket": url}}, retries=1)
    s.change({".gitignore": "*.local\n"})
    (s.root / "dags/notes.local").write_text("scratch\n")
    assert s.gate(env=s.env(**env)).returncode == 0
    assert "dags/notes.local" not in helper.contents()


@pytest.fixture
def s3_store(tmp_path, s3):
    proxy, client = s3
    helper = S3(client, bucket_name(tmp_path))
    env = dict(AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
               AWS_SECRET_ACCESS_KEY=AWS_SECRET, AWS_DEFAULT_REGION="us-east-1")
    return helper, proxy, env


def test_a_bucket_root_is_refused_unless_allowed_and_dry_run_lists_the_deletions(tmp_path, s3_store):
    helper, proxy, env = s3_store
    helper.put("backups/2024.tar", "backup\n")
    helper.put("logs/today.log", "log\n")
    url = f"s3://{helper.name}"
    s = Scenario(tmp_path, branches={"main": {"bucket": url}}, retries=1)
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 2 and "is a whole bucket" in proc.stdout and "allow-bucket-root" in proc.stdout
    dry = s.gate("--dry-run", "--allow-bucket-root", env=s.env(**env))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"would delete s3://{helper.name}/backups/2024.tar" in dry.stdout, dry.stdout
    assert f"would delete s3://{helper.name}/logs/today.log" in dry.stdout
    assert f"would upload s3://{helper.name}/etl.py" in dry.stdout
    assert set(helper.contents()) == {"backups/2024.tar", "logs/today.log"} and proxy.uploads == 0


def test_links_leaving_the_project_are_not_published(tmp_path, s3_store):
    helper, proxy, env = s3_store
    s = Scenario(tmp_path, branches={"main": {"bucket": f"s3://{helper.name}/dags"}}, retries=1)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "id_rsa.py").write_text("PRIVATE = 'key'\n")
    (outside / "folder").mkdir()
    (outside / "folder" / "more.py").write_text("x = 1\n")
    (s.root / "dags/key.py").symlink_to(outside / "id_rsa.py")
    (s.root / "dags/shared").symlink_to(outside / "folder")
    (s.root / "dags/inside.py").symlink_to(s.root / "include/helpers.py")  # inside the project: fine
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 1
    assert "dags/key.py is a symbolic link to" in proc.stdout and "dags/shared is a symbolic link to" in proc.stdout
    assert helper.contents() == {} and proxy.uploads == 0
    (s.root / "dags/key.py").unlink()
    (s.root / "dags/shared").unlink()
    proc = s.gate(env=s.env(**env))
    assert proc.returncode == 0, proc.stdout
    assert helper.contents()["dags/inside.py"] == "X = 1\n"


def test_ctrl_c_during_a_sync_writes_an_interrupted_record(tmp_path, s3_store):
    import signal
    import subprocess
    import sys
    import time

    helper, proxy, env = s3_store
    helper.put("dags/gone.py", "old\n")
    s = Scenario(tmp_path, branches={"main": {"bucket": f"s3://{helper.name}/dags"}}, retries=1)
    s.change({f"dags/sql/q{i}.sql": f"select {i}\n" for i in range(4)})
    proxy.delay = 0.5
    gate = subprocess.Popen([sys.executable, "-m", "pytest_astro", "deploy", "--record", str(s.record),
                             "--plan", str(s.plan)], cwd=s.root, env=s.env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while proxy.uploads < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    gate.send_signal(signal.SIGINT)
    out, _ = gate.communicate(timeout=120)
    assert gate.returncode == 130, out
    assert "INTERRUPTED during the deploy" in out
    rec = s.read_record()
    assert rec["outcome"] == "interrupted"
    assert 1 <= len(rec["bucket_sync"]["uploaded"]) < len(rec["bucket_sync"]["planned_uploads"])
    assert rec["bucket_sync"]["deleted"] == [] and "dags/gone.py" in helper.contents()
