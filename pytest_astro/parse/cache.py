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
import time
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


# Version of the entry layout: one line per entry, the DAG file (a JSON string), the key (what its
# result depends on, and for a result without errors its outline and the digest of the result's
# text) as JSON, then the result as JSON (as reports write it, so a cached result is written out
# without encoding it again), separated by tabs (JSON text holds no raw tab or newline). The key is
# decoded when the file's result is asked for, not when the pack is read.
ENTRY_FORMAT = 5

#: Entries live in packs, ``pack-<time>-<pid>.jsonl``, one per run that parsed something: creating
#: a file costs more than parsing a small DAG file on some file systems (~0.5 ms on a CI VM), and a
#: warm run reads one file instead of one per DAG file. Later packs win; each run that writes folds
#: the entries it read into its own pack, after its own (below ``CARRIED``), and removes the packs
#: it read; an entry carried on never replaces one stored by a run, which may have written its pack
#: while this one ran (an xdist worker). A pack is written as
#: ``tmp-<name>`` and renamed when complete: another process (an xdist worker) never reads, nor
#: removes, a pack still being written.
PACK_PREFIX, PACK_SUFFIX, TMP_PREFIX = "pack-", ".jsonl", "tmp-"
CARRIED = b"# carried on"
#: a pack left unfinished this long ago (a run that was killed) is removed by the next that writes
STALE_TMP_SECONDS = 3600


#: an entry as read: the pack's bytes, and where in them its line starts, its key starts, its
#: result's text starts and its line ends (sliced and decoded when the entry is used: reading a pack
#: allocates no object per entry but its index, which keeps the garbage collector out of the run)
Entry = tuple[bytes, int, int, int, int]


def _file_text(rel: str) -> bytes:
    """A DAG file as an entry names it."""
    return json.dumps(rel).encode()


def _read_packs(folder: Path) -> tuple[dict[bytes, Entry], list[str]]:
    """Every entry under ``folder`` by DAG file (as ``_file_text`` writes it), the last one stored
    winning (one carried on never replaces one stored); and the packs read. A line without its three
    parts (cut short) is skipped; one with a damaged key or result is a miss when it is used."""
    entries: dict[bytes, Entry] = {}
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith(PACK_PREFIX) and n.endswith(PACK_SUFFIX))
    except OSError:
        return entries, []
    read = []
    stored: set[bytes] = set()  # the DAG files with an entry a run stored (not carried on)
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as fh:
                data = fh.read()
        except OSError:  # removed by another run that folded it into its own pack
            continue
        read.append(name)
        carried = False
        start, size = 0, len(data)
        while start < size:
            end = data.find(b"\n", start)
            end = size if end < 0 else end
            first = data.find(b"\t", start, end)
            second = data.find(b"\t", first + 1, end) if first >= 0 else -1
            if second < 0:
                carried = carried or data[start:end] == CARRIED
            else:
                file = data[start:first]
                if not (carried and file in stored):
                    entries[file] = (data, start, first + 1, second + 1, end)
                if not carried:
                    stored.add(file)
            start = end + 1
    return entries, read


def _key(entry: Entry) -> dict | None:
    data, _, key_start, body_start, _ = entry
    try:
        key = json.loads(data[key_start:body_start - 1])
    except ValueError:
        return None
    return key if isinstance(key, dict) else None


def recorded_imports(project: Project) -> Iterator[tuple[str, list[str]]]:
    """(DAG file, the project files its last cached parse imported or read) of every entry: what
    ``--astro-changed`` knows of dependencies that no import statement shows (a YAML config)."""
    entries, _ = _read_packs(cache_dir(project))
    for entry in entries.values():
        key = _key(entry)
        if key is not None and isinstance(key.get("file"), str):
            yield key["file"], list(key.get("imported") or {})


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
    """The cached results of one project, in packs under ``<project>/.pytest_cache/pytest-astro/parse/``.

    ``put`` appends to this instance's own pack; ``close`` (or leaving ``with``) completes it with
    the entries read that it did not replace and removes the packs they came from."""

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
        self._entries: dict[bytes, Entry] | None = None  # read on first use
        self._read: list[str] = []  # the packs they came from
        self._out = None  # this instance's pack, once something is put
        self._out_path = ""
        self._put: set[bytes] = set()  # the DAG files put (``_file_text``)

    def __enter__(self) -> ParseCache:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

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

    def _loaded(self) -> dict[bytes, Entry]:
        if self._entries is None:
            self._entries, self._read = _read_packs(self.dir)
        return self._entries

    def get(self, path: Path) -> FileResult | None:
        rel = self.project.relative(path)
        entry = self._loaded().get(_file_text(rel))
        data = _key(entry) if entry is not None else None
        if data is None or data.get("file") != rel:
            return None
        pack, _, _, body_start, end = entry
        body = pack[body_start:end]
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
        file = _file_text(result.file)
        self._write(file + ("\t" + json.dumps(key) + "\t" + body + "\n").encode())
        self._put.add(file)

    def _write(self, line: bytes) -> None:
        if self._out is None:
            self._loaded()  # what this pack will replace: the packs as they were before it
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                gitignore = self.project.root / ".pytest_cache" / ".gitignore"
                if not gitignore.exists():
                    gitignore.write_text("# Created by pytest-astro automatically.\n*\n")
                name = f"{PACK_PREFIX}{time.time_ns():020d}-{os.getpid()}{PACK_SUFFIX}"
                self._out_path = str(self.dir / name)
                self._out = open(self._tmp_path(), "xb")
            except OSError:
                self._out = False  # a read-only checkout still works, just without a cache
        if self._out:
            try:
                self._out.write(line)
            except OSError:
                pass

    def _exists(self, file: bytes) -> bool:
        try:
            return (self.project.root / json.loads(file)).is_file()
        except (ValueError, TypeError):
            return False

    def _tmp_path(self) -> str:
        folder, name = os.path.split(self._out_path)
        return os.path.join(folder, TMP_PREFIX + name)

    def close(self) -> None:
        """Complete this instance's pack (if anything was put): the entries read that were not put
        again follow, for DAG files that still exist; then the packs read (and entries of the layout
        before packs) are removed. Nothing put: nothing changes."""
        out, self._out = self._out, None
        if not out:
            return
        try:
            carried = [pack[start:end] for file, (pack, start, _, _, end) in (self._entries or {}).items()
                       if file not in self._put and self._exists(file)]
            if carried:
                out.write(CARRIED + b"\n" + b"\n".join(carried) + b"\n")
            out.close()
            os.replace(self._tmp_path(), self._out_path)
        except OSError:  # a full disk: no pack this time, and no half of one left behind
            out.close()
            try:
                os.unlink(self._tmp_path())
            except OSError:
                pass
            return
        stale = time.time() - STALE_TMP_SECONDS
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in names:
            path = os.path.join(self.dir, name)
            try:
                # the packs read (now in this one); one file per DAG file, the layout before packs;
                # a pack a killed run left unfinished
                if (name in self._read or name.endswith(".json")
                        or (name.startswith(TMP_PREFIX) and os.stat(path).st_mtime < stale)):
                    os.unlink(path)
            except OSError:
                pass
