"""The findings of pytest-astro's own policies, cached per DAG file: an unchanged project re-checks
without running them again.

A file's cached findings are reused only when everything they depend on is unchanged:

- the file's parse result and source, as the parse cache keeps them (``parse.cache``: the digest of
  the file's bytes and of the result's JSON text, which holds every DAG summary and what the sandbox
  recorded; ``FileResult.cache_key``). A result that did not come through the parse cache (a
  failure, ``--astro-no-cache``, a measured run) is checked afresh;
- the run's policy setup (``RunKey``): the selected policies and their merged options, the
  exemptions of ``pyproject.toml`` (with the lines they are reported at), every known code (what an
  inline exemption may name), the pools and connections the project defines, whether the snapshot
  folder exists, pytest-astro's version and the source of the modules that implement the policies;
- the cross-file input of DAG004: where else each of the file's dag_ids is defined (recomputed every
  run from every result's outline, which is cheap).

Teams' policies (from plugins or a ``conftest.py``) are never cached: their code and inputs cannot
be keyed; they run on every run. Nor is anything cached while a ``pytest_astro_check_dag`` hook is
registered (it may add violations to any policy), nor DAG010 when there is a snapshot folder (it
reads, or with ``--astro-snapshot-update`` writes, the snapshot files). Findings with a component
error are not stored.

One JSON index per project (``.pytest_cache/pytest-astro/findings/index.json``), read once and
written once per run when it changed, by an atomic rename (two xdist workers may each write theirs:
the last one wins, and the other's files are checked again next time: never a stale finding).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from pytest_astro import __version__

#: the layout of the index; a different one is ignored
INDEX_FORMAT = 1

#: modules whose code decides what a finding of ours says (besides each policy's own module)
_MACHINERY = ("pytest_astro.policies.items", "pytest_astro.policies.options", "pytest_astro.policies.api",
              "pytest_astro.policies.findings_cache")


def index_path(root: Path) -> Path:
    return root / ".pytest_cache" / "pytest-astro" / "findings" / "index.json"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def code_digest(modules: list[str]) -> str:
    """Digest of the source files of ``modules`` (their code decides the findings)."""
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        path = getattr(sys.modules.get(name), "__file__", None)
        h.update(name.encode() + b"\0")
        try:
            with open(path, "rb") as fh:  # type: ignore[arg-type]
                h.update(fh.read())
        except (OSError, TypeError):
            h.update(b"?")  # unknown code: the key still differs from a known one's
    return h.hexdigest()


def run_key(policy_config: Any, cached_codes: list[str], known: set[str], pools: set[str],
            connections: set[str], snapshots: bool, modules: list[str]) -> str:
    """What every cached file's findings depend on besides the file itself (see the module doc)."""
    payload = {
        "format": INDEX_FORMAT, "version": __version__, "code": code_digest([*modules, *_MACHINERY]),
        "selected": [p.code for p in policy_config.selected], "cached": cached_codes,
        "options": {code: policy_config.options.get(code, {}) for code in cached_codes},
        "exemptions": [[e.codes, e.reason, e.where, e.dags, e.files] for e in policy_config.exemptions],
        "known": sorted(known), "pools": sorted(pools), "connections": sorted(connections), "snapshots": snapshots,
    }
    return _digest(json.dumps(payload, sort_keys=True, default=repr))


class FindingsCache:
    """The index of one project: ``get`` and ``put`` a file's stored findings by its key; ``save``."""

    def __init__(self, root: Path, key: str):
        self.path = index_path(root)
        self.key = key
        self.files: dict[str, list] = {}  # rel -> [file key, stored findings]
        self.changed = False
        try:
            with open(self.path, "rb") as fh:
                data = json.loads(fh.read())
            if isinstance(data, dict) and data.get("key") == key and isinstance(data.get("files"), dict):
                self.files = data["files"]
        except (OSError, ValueError):
            pass

    def get(self, rel: str, file_key: str) -> list | None:
        entry = self.files.get(rel)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == file_key and isinstance(entry[1], list):
            return entry[1]
        return None

    def put(self, rel: str, file_key: str, stored: list) -> None:
        self.files[rel] = [file_key, stored]
        self.changed = True

    def save(self) -> None:
        """Write the index if anything changed (a read-only checkout just goes without)."""
        if not self.changed:
            return
        self.changed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{self.path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": self.key, "files": self.files}))
            os.replace(tmp, self.path)
        except OSError:
            pass


def file_key(cache_key: str, duplicates: list) -> str:
    """A file's key: its parse-cache identity and where else its dag_ids are defined."""
    return _digest(json.dumps([cache_key, duplicates])) if duplicates else cache_key
