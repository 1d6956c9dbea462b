"""AST001-AST007: work that runs every time Airflow parses the file.

The DAG processor re-imports every DAG file every ``min_file_process_interval`` (30 s by default)
and has ``dagbag_import_timeout`` seconds to do it. Anything slow or stateful at module level,
in a ``with DAG`` block, in a ``@dag`` function body or in DAG/operator arguments runs on every
one of those parses, on the scheduler's machine, and fails the parse when the service is down.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pytest_astro.lint.core import FileContext, Invalid, Rule, Valid, cst, keyword, string_value
from pytest_astro.lint.prefilter import SourceFacts


class _ParseTimeCall(Rule):
    """Shared: report calls matched by :meth:`message_for` when they run at parse time."""

    #: Every call the rule reports names one of these words (:meth:`may_report`).
    WORDS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return ctx.imported_at_parse_time and facts.has_any(cls.WORDS)

    def message_for(self, call: cst.Call, name: str) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def visit_Call(self, node: cst.Call) -> None:
        if not self.parse_time:
            return
        name = self.walker.call_name(node)
        if not name:
            return
        message = self.message_for(node, name)
        if message:
            self.report(node, message)


class VariableAtParseTime(_ParseTimeCall):
    """``Variable.get()`` outside a task: every parse of the file reads the secrets backend or
    the metadata database (and fails when the variable is missing).

    Read the variable where it is used: in a templated field as ``"{{ var.value.my_key }}"``
    (``"{{ var.json.my_key }}"`` for JSON), or call ``Variable.get`` inside the task.
    """

    CODE = "AST001"
    NAME = "variable-at-parse-time"
    MESSAGE = "Variable.get() runs at every parse of this file"
    VALID = [
        Valid("from airflow.sdk import Variable, task\n\n@task\ndef load():\n    return Variable.get('bucket')\n"),
        Valid("from airflow.providers.standard.operators.bash import BashOperator\n"
              "t = BashOperator(task_id='t', bash_command='echo {{ var.value.bucket }}')\n"),
        Valid("from airflow.sdk import Variable\n\ndef helper():\n    return Variable.get('bucket')\n"),
        Valid("from airflow.sdk import Variable\nif __name__ == '__main__':\n    print(Variable.get('x'))\n"),
    ]
    INVALID = [
        Invalid("from airflow.models import Variable\nBUCKET = Variable.get('bucket')\n", line=2),
        Invalid("from airflow.sdk import DAG, Variable\nwith DAG('d', params={'b': Variable.get('b', deserialize_json=True)}):\n    pass\n"),
        Invalid("from airflow.sdk import Variable, dag\n\n@dag(schedule=None)\ndef d():\n    x = Variable.get('x')\n\nd()\n", line=5),
        Invalid("from airflow.sdk import Variable\n\ndef make():\n    return Variable.get('x')\n\nmake()\n", line=4),
        Invalid("from airflow.sdk import Variable, task\n\n@task\ndef t(x=Variable.get('x')):\n    return x\n", line=4),
    ]

    WORDS = frozenset({"Variable"})

    def message_for(self, call: cst.Call, name: str) -> str | None:
        if not (name == "Variable.get" or name.endswith(".Variable.get")):
            return None
        key = string_value(call.args[0].value) if call.args and not call.args[0].keyword else None
        as_json = keyword(call, "deserialize_json")
        kind = "json" if as_json is not None and isinstance(as_json.value, cst.Name) and as_json.value.value == "True" else "value"
        template = f"{{{{ var.{kind}.{key} }}}}" if key and key.isidentifier() else f"{{{{ var.{kind}.<key> }}}}"
        return (f"Variable.get() runs at every parse of this file (secrets backend or metadata DB); "
                f"use the template \"{template}\" in a templated field, or call it inside the task")


class ConnectionAtParseTime(_ParseTimeCall):
    """Looking up a connection outside a task (``BaseHook.get_connection``,
    ``Connection.get_connection_from_secrets``, ``Connection.get``): every parse queries the
    secrets backend or the metadata database.

    Use the ``{{ conn.my_conn.host }}`` template in a templated field, or look the connection up
    inside the task (hooks do it for you when given a ``conn_id``).
    """

    CODE = "AST002"
    NAME = "connection-at-parse-time"
    MESSAGE = "connection lookup runs at every parse of this file"
    VALID = [
        Valid("from airflow.sdk import BaseHook, task\n\n@task\ndef f():\n    return BaseHook.get_connection('pg').host\n"),
    ]
    INVALID = [
        Invalid("from airflow.hooks.base import BaseHook\nHOST = BaseHook.get_connection('pg').host\n", line=2),
        Invalid("from airflow.models import Connection\nc = Connection.get_connection_from_secrets('pg')\n"),
        Invalid("from airflow.sdk import Connection\nc = Connection.get('pg')\n"),
    ]

    WORDS = frozenset({"get_connection", "Connection"})

    def message_for(self, call: cst.Call, name: str) -> str | None:
        last2 = ".".join(name.split(".")[-2:])
        if not (name.endswith(".get_connection") or last2 in ("Connection.get_connection_from_secrets", "Connection.get")):
            return None
        conn = string_value(call.args[0].value) if call.args else None
        template = f"{{{{ conn.{conn}.host }}}}" if conn and conn.isidentifier() else "{{ conn.<conn_id>.host }}"
        return (f"{name}() looks up a connection at every parse of this file; use the template "
                f"\"{template}\" in a templated field, or look it up inside the task")


_HOOK = re.compile(r"^[A-Z]\w*Hook$")


class HookAtParseTime(_ParseTimeCall):
    """A hook constructed outside a task. Hooks open connections, resolve credentials and may
    call the API of the service they wrap; at parse time that runs on the scheduler, on every
    parse.

    Create the hook inside the task (``@task`` body or the operator's ``execute``); pass the
    ``conn_id`` string around instead of the hook.
    """

    CODE = "AST003"
    NAME = "hook-at-parse-time"
    MESSAGE = "hook constructed at parse time"
    VALID = [
        Valid("from airflow.sdk import task\nfrom airflow.providers.postgres.hooks.postgres import PostgresHook\n\n"
              "@task\ndef f():\n    return PostgresHook(postgres_conn_id='pg').get_records('select 1')\n"),
    ]
    INVALID = [
        Invalid("from airflow.providers.amazon.aws.hooks.s3 import S3Hook\nKEYS = S3Hook(aws_conn_id='aws').list_keys('b')\n", line=2),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return ctx.imported_at_parse_time and any(_HOOK.match(w) and w != "BaseHook" for w in facts.words)

    def message_for(self, call: cst.Call, name: str) -> str | None:
        last = name.split(".")[-1]
        if not _HOOK.match(last) or last == "BaseHook":
            return None
        return f"{last}(...) is constructed at every parse of this file; create hooks inside the task"


_DB_CALLS = {"settings.Session", "airflow.settings.Session", "Session", "create_session", "DagRun.find",
             "DagModel.get_current", "XCom.get_one", "XCom.get_many", "DagBag", "TaskInstance.get_task_instance"}


class DatabaseAtParseTime(_ParseTimeCall):
    """A metadata database session or query outside a task (``settings.Session()``,
    ``create_session()``, ``session.query(...)``, ``DagRun.find``, ``DagBag()``).

    Parsing must not depend on the metadata database: Airflow 3 forbids direct access from DAG
    code entirely, and the DAG processor may not have credentials. Move the query into a task,
    or use the REST API / the task context (``dag_run``, ``ti``) there.
    """

    CODE = "AST004"
    NAME = "database-at-parse-time"
    MESSAGE = "metadata database access at parse time"
    VALID = [
        Valid("from airflow.sdk import task\nfrom airflow.utils.session import create_session\n\n"
              "@task\ndef f():\n    with create_session() as s:\n        return 1\n"),
    ]
    INVALID = [
        Invalid("from airflow import settings\nsession = settings.Session()\n", line=2),
        Invalid("from airflow.utils.session import create_session\nwith create_session() as session:\n"
                "    N = session.query(1).count()\n"),
    ]

    WORDS = frozenset({"Session", "create_session", "DagRun", "DagModel", "XCom", "DagBag", "TaskInstance", "query"})

    def message_for(self, call: cst.Call, name: str) -> str | None:
        last2 = ".".join(name.split(".")[-2:])
        receiver = name.rsplit(".", 1)[0].lower() if "." in name else ""
        if name in _DB_CALLS or last2 in _DB_CALLS or (name.endswith(".query") and "session" in receiver):
            return (f"{name}() touches the metadata database at every parse of this file; "
                    f"move it into a task (Airflow 3 refuses database access from DAG code)")
        return None


_HTTP_VERBS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "Session", "Client", "stream"}


class HttpAtParseTime(_ParseTimeCall):
    """An HTTP request outside a task (``requests``, ``httpx``, ``urllib``).

    The request runs at every parse of the file, on the scheduler, and a slow or failing
    endpoint makes the whole file fail to parse (``dagbag_import_timeout``). Make the request in a
    task (``HttpOperator`` or ``@task``); if DAGs are generated from the response, cache the
    response in a file that a separate task or CI job refreshes.
    """

    CODE = "AST005"
    NAME = "http-at-parse-time"
    MESSAGE = "HTTP request at parse time"
    VALID = [
        Valid("import requests\nfrom airflow.sdk import task\n\n@task\ndef f():\n    return requests.get('https://x').json()\n"),
    ]
    INVALID = [
        Invalid("import requests\nCONFIG = requests.get('https://config').json()\n", line=2),
        Invalid("from urllib.request import urlopen\nDATA = urlopen('https://x').read()\n"),
    ]

    WORDS = frozenset({"requests", "httpx", "urllib3", "urlopen", "HTTPConnection", "HTTPSConnection"})

    def message_for(self, call: cst.Call, name: str) -> str | None:
        parts = name.split(".")
        if (parts[0] in ("requests", "httpx", "urllib3") and len(parts) == 2 and parts[1] in _HTTP_VERBS) or \
                parts[-1] in ("urlopen", "HTTPConnection", "HTTPSConnection"):
            return (f"{name}() makes an HTTP request at every parse of this file; "
                    f"make it inside a task (HttpOperator or @task)")
        return None


_FILE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes"}


class FileIOAtParseTime(_ParseTimeCall):
    """File reads and writes outside a task (``open()``, ``Path.read_text()``, ``pd.read_csv``).

    Reading a file at parse time ties the DAG to the file system of whichever machine parses it
    and costs I/O on every parse. If the file is a config that ships with the project to generate
    DAGs (a documented dynamic-DAG pattern), keep it small, and suppress this line with
    ``# noqa: AST006`` or ignore AST006 for that file.
    """

    CODE = "AST006"
    NAME = "file-io-at-parse-time"
    MESSAGE = "file I/O at parse time"
    VALID = [
        Valid("from airflow.sdk import task\n\n@task\ndef f():\n    with open('/tmp/x') as fh:\n        return fh.read()\n"),
        Valid("import yaml\nCONFIG = yaml.safe_load(open('dags/config.yaml'))  # noqa: AST006\n"),
    ]
    INVALID = [
        Invalid("import yaml\nCONFIG = yaml.safe_load(open('dags/config.yaml'))\n", line=2),
        Invalid("from pathlib import Path\nSQL = Path(__file__).with_name('q.sql').read_text()\n"),
        Invalid("import pandas as pd\nDF = pd.read_csv('s3://bucket/x.csv')\n"),
    ]

    WORDS = frozenset({"open", *_FILE_METHODS})

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        if not ctx.imported_at_parse_time:
            return False
        return facts.has_any(cls.WORDS) or (facts.has_any(("pd", "pandas", "pl", "polars")) and
                                            any(w.startswith(("read_", "scan_")) for w in facts.words))

    def message_for(self, call: cst.Call, name: str) -> str | None:
        parts = name.split(".")
        if name in ("open", "io.open") or parts[-1] in _FILE_METHODS or \
                (parts[0] in ("pd", "pandas", "pl", "polars") and parts[-1].startswith(("read_", "scan_"))):
            return (f"{name}() does file I/O at every parse of this file; do it inside a task "
                    f"(or '# noqa: AST006' for a small config file shipped with the DAGs)")
        return None


_CLOUD_CLIENTS = {"BlobServiceClient", "ContainerClient", "BlobClient", "DataLakeServiceClient",
                  "S3FileSystem", "GCSFileSystem", "AzureBlobFileSystem"}


class CloudAtParseTime(_ParseTimeCall):
    """A cloud SDK client created outside a task (``boto3.client``, ``google.cloud.storage.Client``,
    Azure ``BlobServiceClient``, ``s3fs``/``gcsfs``/``fsspec``).

    Creating a client resolves credentials (network calls to metadata services) and using it is
    network I/O, all at every parse. Create the client inside the task, or use the provider's
    hook/operator there.
    """

    CODE = "AST007"
    NAME = "cloud-at-parse-time"
    MESSAGE = "cloud client at parse time"
    VALID = [
        Valid("import boto3\nfrom airflow.sdk import task\n\n@task\ndef f():\n    return boto3.client('s3').list_buckets()\n"),
    ]
    INVALID = [
        Invalid("import boto3\nS3 = boto3.client('s3')\n", line=2),
        Invalid("from google.cloud import storage\nBUCKET = storage.Client().bucket('b')\n"),
    ]

    WORDS = frozenset({"boto3", "google", "storage", "bigquery", "pubsub_v1", "secretmanager", "fsspec",
                       "BlobServiceClient", *_CLOUD_CLIENTS})

    def message_for(self, call: cst.Call, name: str) -> str | None:
        parts = name.split(".")
        hit = (parts[0] == "boto3" and parts[-1] in ("client", "resource", "Session")) or \
            (parts[0] in ("google", "storage", "bigquery", "pubsub_v1", "secretmanager") and parts[-1].endswith("Client")) or \
            parts[-1] in _CLOUD_CLIENTS or name.split(".")[-2:-1] == ["BlobServiceClient"] or \
            (parts[0] == "fsspec" and parts[-1] in ("open", "filesystem"))
        if hit:
            return (f"{name}() creates a cloud client at every parse of this file; create it inside the task "
                    f"(or use the provider's hook there)")
        return None


RULES = [VariableAtParseTime, ConnectionAtParseTime, HookAtParseTime, DatabaseAtParseTime,
         HttpAtParseTime, FileIOAtParseTime, CloudAtParseTime]
