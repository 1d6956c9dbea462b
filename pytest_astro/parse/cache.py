"""Parse results cached by content: an unchanged project re-checks without starting Airflow.

A result is reused only when all of these are unchanged: the DAG file's bytes, the bytes of
every project module it imported when it was parsed (so a change to ``include/helpers.py``
re-parses exactly the DAG files that import it), pytest-astro's, Airflow's and Python's
versions, the installed packages (site-packages folders' modification times), the settings
that affect parsing, and the AIRFLOW_* environment. Verdicts that depend on timing (timeouts,
crashes, memory) are never cached, nor are other failures: they are re-checked every run.
"Imported" includes every project file the DAG file read while being parsed (a YAML config of a
dynamic DAG, for example), recorded by an audit hook in the sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
import site
import sys
from collections.abc import Iterator
from pathlib import Path

from pytest_astro import __version__
from pytest_astro.parse.environment import SANDBOX_OVERRIDES
from pytest_astro.project import Project, airflow_version
from pytest_astro.results import FileResult


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        return _digest(path.read_bytes())
    except OSError:
        return None


# Project files that feed the sandbox (variables, connections, environment) or describe what is
# installed: any change to them may change a verdict, so it invalidates every cached result.
PROJECT_INPUT_FILES = ("airflow_settings.yaml", ".env", "requirements.txt", "packages.txt")
PROJECT_INPUT_TABLES = ("variables", "connections")


def project_inputs_key(project: Project) -> str:
    """Digest of the project files and ``[tool.pytest-astro]`` tables that feed the sandbox."""
    payload = {name: _file_digest(project.root / name) for name in PROJECT_INPUT_FILES}
    payload["tables"] = {t: project.settings.table.get(t) for t in PROJECT_INPUT_TABLES}
    return _digest(json.dumps(payload, sort_keys=True, default=str).encode())


def cache_dir(project: Project) -> Path:
    """Where parse results live: inside pytest's cache folder, so ``--cache-clear`` can drop them."""
    return project.root / ".pytest_cache" / "pytest-astro" / "parse"


def clear(project: Project) -> None:
    """Forget every cached parse result of ``project``, and the findings cached with them (``pytest
    --cache-clear``)."""
    import shutil

    shutil.rmtree(cache_dir(project), ignore_errors=True)
    shutil.rmtree(cache_dir(project).parent / "findings", ignore_errors=True)  # policies/findings_cache.py


# Version of the entry layout: two lines, the key (the DAG file, what its result depends on, and for
# a result without errors its outline and the digest of the next line) as JSON, then the result as
# JSON (as reports write it, so a cached result is written out without encoding it again)
ENTRY_FORMAT = 4


def _read_entry(entry: str | Path) -> tuple[dict, bytes] | None:
    """An entry's key and its result line (not decoded); None when it is unreadable."""
    try:
        with open(entry, "rb") as fh:  # bytes: a text-mode file costs ~6 µs more per entry
            key, _, body = fh.read().rstrip(b"\n").partition(b"\n")
        data = json.loads(key)
    except (OSError, ValueError):
        return None
    return (data, body) if isinstance(data, dict) else None


def recorded_imports(project: Project) -> Iterator[tuple[str, list[str]]]:
    """(DAG file, the project files its last cached parse imported or read) of every entry: what
    ``--astro-changed`` knows of dependencies that no import statement shows (a YAML config)."""
    for entry in cache_dir(project).glob("*.json"):
        read = _read_entry(entry)
        if read is not None and isinstance(read[0].get("file"), str):
            yield read[0]["file"], list(read[0].get("imported") or {})


def environment_key(project: Project) -> str:
    """What, besides the files themselves, can change a verdict."""
    site_dirs = [*site.getsitepackages(), site.getusersitepackages()] if hasattr(site, "getsitepackages") else []
    mtimes = {}
    for d in [*site_dirs, *sys.path]:
        try:
            if "site-packages" in d or "dist-packages" in d:
                mtimes[d] = os.stat(d).st_mtime_ns
        except OSError:
            continue
    # the sandbox sets these itself (and the in-process sandbox sets them to per-run temp paths)
    env = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_") and k not in SANDBOX_OVERRIDES}
    payload = {
        "pytest-astro": __version__, "airflow": airflow_version(), "python": sys.version,
        "executable": sys.executable, "settings": project.settings.parse_key(), "site": mtimes,
        "env": env, "syntax": project.ignore_file_syntax, "inputs": project_inputs_key(project),
        "format": ENTRY_FORMAT,
    }
    return _digest(json.dumps(payload, sort_keys=True).encode())


def _result_key(env_key: str, digest: str, body_digest: str) -> str:
    """A cached result's identity (``FileResult.cache_key``): what it was parsed under, its file's
    bytes and its JSON text, which the findings of pytest-astro's policies depend on."""
    return _digest(f"{env_key} {digest} {body_digest}".encode())


class ParseCache:
    """One file per DAG file under ``<project>/.pytest_cache/pytest-astro/parse/``."""

    def __init__(self, project: Project, extra_key: str = ""):
        self.project = project
        self.dir = cache_dir(project)
        # extra_key: e.g. the digest of the variables and connections served to the sandbox
        self.env_key = _digest((environment_key(project) + extra_key).encode())
        # Each file is hashed once per run, before it is parsed: a shared include/ module is read
        # once, not once per importer; and a file edited while the sandbox runs is stored under the
        # digest of the content seen before (so the next run parses it again, never the reverse).
        self._digests: dict[Path, str | None] = dict(project.take_content_digests())
        self._by_rel: dict[str, str | None] = {}  # the same, for the project files results name
        self._dir = str(self.dir) + os.sep
        self._made = False  # the cache folder exists

    def _digest_of(self, path: Path) -> str | None:
        try:
            return self._digests[path]
        except KeyError:
            digest = self._digests[path] = _file_digest(path)
            return digest

    def _digest_of_rel(self, rel: str) -> str | None:
        try:
            return self._by_rel[rel]
        except KeyError:
            digest = self._by_rel[rel] = self._digest_of(self.project.root / rel)
            return digest

    def _entry(self, path: Path) -> str:
        return self._dir + _digest(self.project.relative(path).encode())[:32] + ".json"

    def get(self, path: Path) -> FileResult | None:
        read = _read_entry(self._entry(path))
        if read is None:
            return None
        data, body = read
        if data.get("env") != self.env_key or data.get("digest") != self._digest_of(path):
            return None
        for rel, digest in data.get("imported", {}).items():
            if self._digest_of_rel(rel) != digest:
                return None
        outline = data.get("outline")
        try:
            if outline is not None:
                # decoded when first used, so checked whole now (a file cut short, a partial restore)
                if _digest(body) != data.get("body"):
                    return None
                result = FileResult.from_cache(body.decode(), data["file"], list(data["imported"]), outline)
                result.keep_cache_key(_result_key(self.env_key, data["digest"], data["body"]))
                return result
            result = FileResult.from_json(body.decode())
        except (KeyError, TypeError, ValueError):  # UnicodeDecodeError is a ValueError
            return None
        return result if result.cached else None

    def put(self, path: Path, result: FileResult) -> None:
        # Failures are re-checked every run (a missing module may have been installed, a missing
        # project file created since); only syntax errors in the file itself are final.
        if not result.ok and any(e.kind != "syntax" or e.file != result.file for e in result.errors):
            return
        digest = self._digest_of(path)
        if digest is None:
            return
        imported = {rel: self._digest_of_rel(rel) for rel in result.imported}
        body = json.dumps({**result.to_dict(), "cached": True})
        key = {"env": self.env_key, "file": result.file, "digest": digest, "imported": imported}
        outline = result.outline()
        if outline is not None:
            key.update(outline=outline, body=_digest(body.encode()))
            result.keep_cache_key(_result_key(self.env_key, digest, key["body"]))
        text = json.dumps(key) + "\n" + body + "\n"
        try:
            if not self._made:
                self.dir.mkdir(parents=True, exist_ok=True)
                gitignore = self.project.root / ".pytest_cache" / ".gitignore"
                if not gitignore.exists():
                    gitignore.write_text("# Created by pytest-astro automatically.\n*\n")
                self._made = True
            entry = self._entry(path)
            tmp = f"{entry}.{os.getpid()}.tmp"  # two processes (xdist workers) never share one
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, entry)
        except OSError:
            pass  # a read-only checkout still works, just without a cache
