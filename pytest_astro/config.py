"""One ``Settings`` object: ``[tool.pytest-astro]`` in pyproject.toml, then pytest ini, then CLI
flags.

Later sources win. Nothing here imports Airflow.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_TIMEOUT = 30.0  # Airflow's [core] dagbag_import_timeout
DEFAULT_MEMORY_LIMIT = 4 * 1024**3
#: the key of the sandbox's policy options that asks for each DAG's snapshot (policies/snapshots.py)
SNAPSHOTS_REQUEST_KEY = "__snapshots__"

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4,
          "tib": 1024**4}


class ConfigError(Exception):
    """A setting has a value we cannot use; the message names where it came from and what to do."""


def parse_size(value: Any, source: str = "memory_limit") -> int:
    """Parse ``4GiB``, ``512MB``, ``2g`` or a number of bytes; 0 means no limit."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"{source}: cannot read {value!r} as a size; write e.g. '4GiB', '512MiB' "
                          "or 0 for no limit")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_seconds(value: Any, source: str = "timeout") -> float:
    try:
        seconds = float(str(value).rstrip("s"))
    except ValueError:
        raise ConfigError(f"{source}: cannot read {value!r} as seconds; write e.g. 30 or "
                          "2.5") from None
    if seconds <= 0:
        raise ConfigError(f"{source}: must be more than 0 seconds, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Settings:
    """Everything that decides how a project is parsed. Plain data; hashed into the cache key."""

    root: Path
    dags_folder: str = "dags"
    plugins_folder: str = "plugins"
    timeout: float = DEFAULT_TIMEOUT
    memory_limit: int = DEFAULT_MEMORY_LIMIT  # resident memory a DAG file's import may add
    address_space_limit: int = 0  # opt-in RLIMIT_AS on top of the sandbox's own (0: none)
    workers: int = 0  # 0: one per core
    cache: bool = True
    safe_mode: bool = True  # Airflow's "might contain a DAG" heuristic
    # "" -> Airflow's default for the installed version (or the env var)
    ignore_file_syntax: str = ""
    preload: bool = True  # import the third-party modules DAG files use once, before forking
    missing_variables: str = "error"  # or "placeholder": serve a placeholder and warn
    isolation: str = "batch"  # or "file": a fresh fork for every file (see parse/pool.py)
    allow_network: tuple[str, ...] = ()  # hosts DAG files may reach at parse time (see netguard.py)
    # DAG010 compares DAGs with the JSON files here, if it exists
    snapshots_folder: str = "tests/dag_snapshots"
    # the whole [tool.pytest-astro]
    table: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def dags_path(self) -> Path:
        return (self.root / self.dags_folder).resolve()

    @property
    def plugins_path(self) -> Path:
        return (self.root / self.plugins_folder).resolve()

    @property
    def snapshots_path(self) -> Path:
        return (self.root / self.snapshots_folder).resolve()

    def sandbox_policy_options(self) -> dict:
        """``[tool.pytest-astro.policies]`` as the sandbox gets it: with the request for each DAG's
        snapshot when the snapshot folder exists (policies/snapshots.py)."""
        table = self.table.get("policies", {})
        if not isinstance(table, dict):  # reported by the policies' own config check
            return table
        options = dict(table)
        if self.snapshots_path.is_dir():
            options[SNAPSHOTS_REQUEST_KEY] = True
        return options

    def worker_count(self) -> int:
        if self.workers > 0:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)

    def parse_key(self) -> dict:
        """The settings that can change a parse verdict (part of the cache key)."""
        return {"dags_folder": self.dags_folder, "plugins_folder": self.plugins_folder,
                "timeout": self.timeout, "memory_limit": self.memory_limit,
                "address_space_limit": self.address_space_limit,
                "missing_variables": self.missing_variables, "isolation": self.isolation,
                "allow_network": list(self.allow_network),
                "policies": self.sandbox_policy_options()}

    def with_overrides(self, **values: Any) -> Settings:
        """Apply overrides given as raw values (ini strings, CLI flags); None means 'not given'."""
        clean = {k: v for k, v in values.items() if v is not None and v != ""}
        return replace(self, **_coerce(clean, "command line or ini"))


_KEYS = {f.name for f in fields(Settings)} - {"root", "table"}

#: What each ``[tool.pytest-astro]`` key does: the configuration reference is generated from this
#: (docs/configuration.md), and a test keeps it complete.
SETTINGS_HELP = {
    "dags_folder": "the DAG folder, relative to the project root",
    "plugins_folder": "the plugins folder, importable while DAG files are parsed (as in the Astro "
                      "runtime)",
    "timeout": "seconds one DAG file may take to import (Airflow's `dagbag_import_timeout`)",
    "memory_limit": "resident memory one DAG file may use while it is imported (`4GiB`, `512MiB`; "
                    "0: no limit); the parent samples each child's resident size and stops it "
                    "past the limit",
    "address_space_limit": "opt-in address-space limit (`RLIMIT_AS`) on top of the sandbox's own "
                           "size (`16GiB`; 0: none); counts reserved, not used, memory",
    "workers": "DAG files parsed at once (0: one per core)",
    "cache": "reuse the results of unchanged DAG files (`.pytest_cache/pytest-astro/`)",
    "safe_mode": "skip files that mention neither `airflow` nor `dag`, as Airflow's safe mode does",
    "ignore_file_syntax": "`.airflowignore` syntax, `glob` or `regexp` (default: the installed "
                          "Airflow's, or `AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX`)",
    "preload": "import the DAG files' third-party imports once in the sandbox, before forking",
    "missing_variables": "`error`: reading an undefined variable fails the file; `placeholder`: "
                         "serve a placeholder and warn",
    "allow_network": "hosts DAG files may reach while being imported (`host`, `host:port`, globs, "
                     "IP networks; `*`: no network guard); loopback is always allowed",
    "snapshots_folder": "where DAG010 keeps one JSON snapshot per DAG (on only when the folder "
                        "exists; `--astro-snapshot-update` writes them)",
    "isolation": "`batch`: a forked child parses several files, state reset between them, failures "
                 "re-checked alone; `file`: a fresh fork for every file",
}


def _coerce(values: dict, source: str) -> dict:
    out: dict[str, Any] = {}
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in _KEYS:
            continue
        where = f"{source}: {key}"
        if key == "timeout":
            out[key] = parse_seconds(value, where)
        elif key in ("memory_limit", "address_space_limit"):
            out[key] = parse_size(value, where)
        elif key == "workers":
            try:
                out[key] = int(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
        elif key in ("cache", "safe_mode", "preload"):
            out[key] = value if isinstance(value, bool) else str(value).lower() in ("1", "true",
                                                                                    "yes", "on")
        elif key == "missing_variables":
            if value not in ("error", "placeholder"):
                raise ConfigError(f"{where}: expected 'error' or 'placeholder', got {value!r}")
            out[key] = value
        elif key == "isolation":
            if value not in ("batch", "file"):
                raise ConfigError(f"{where}: expected 'batch' or 'file', got {value!r}")
            out[key] = value
        elif key == "allow_network":
            from pytest_astro.netguard import AllowListError, parse_allow_list

            try:
                parse_allow_list(value, where)
            except AllowListError as exc:
                raise ConfigError(str(exc)) from None
            out[key] = tuple(str(v).strip() for v in value)
        elif key == "ignore_file_syntax":
            if value not in ("glob", "regexp"):
                raise ConfigError(f"{where}: expected 'glob' or 'regexp', got {value!r}")
            out[key] = value
        else:
            out[key] = str(value)
    return out


def read_pyproject_table(root: Path) -> dict:
    """``[tool.pytest-astro]`` of ``root/pyproject.toml`` ({} when absent)."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax") from None
    table = data.get("tool", {}).get("pytest-astro", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.pytest-astro] must be a table")
    return table


def find_project_root(start: Path) -> Path:
    """The Astro project containing ``start``: the nearest directory with ``.astro/``, a
    ``[tool.pytest-astro]`` table or a ``dags/`` folder; ``start`` itself when none is found."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".astro").is_dir() or (candidate / "dags").is_dir():
            return candidate
        if read_pyproject_table(candidate):
            return candidate
    return start


def load_settings(root: Path, **overrides: Any) -> Settings:
    """Settings for the project at ``root``: pyproject first, then ``overrides`` (ini, CLI)."""
    root = root.resolve()
    table = read_pyproject_table(root)
    settings = Settings(root=root, table=table, **_coerce(table, f"{root / 'pyproject.toml'} "
                                                                 "[tool.pytest-astro]"))
    return settings.with_overrides(**overrides)
