"""Airflow variables, connections and pools a project defines, read without Airflow.

Sources, later wins (the order the Astro CLI and Airflow apply them): ``airflow_settings.yaml`` (the
Astro format), the project's ``.env`` file, ``[tool.pytest-astro.variables]`` and
``[tool.pytest-astro.connections]`` in pyproject.toml, then ``AIRFLOW_VAR_*`` / ``AIRFLOW_CONN_*``
environment variables. Fixtures override per test on top of that (``astro_variables``...).

Values are never printed: only names appear in messages.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_astro.config import ConfigError, Settings

# airflow_settings.yaml connection field -> Airflow's JSON connection field
_CONN_FIELDS = {"conn_type": "conn_type", "conn_host": "host", "conn_schema": "schema",
                "conn_login": "login",
                "conn_password": "password", "conn_port": "port", "conn_extra": "extra",
                "conn_description": "description"}


@dataclass
class ProjectValues:
    variables: dict[str, str] = field(default_factory=dict)
    # conn_id -> URI or JSON (Airflow's formats)
    connections: dict[str, str] = field(default_factory=dict)
    pools: set[str] = field(default_factory=lambda: {"default_pool"})
    sources: dict[str, str] = field(default_factory=dict)  # "variable:NAME" -> where it was defined

    def digest(self) -> str:
        """Changes whenever any value changes (for the parse cache), without exposing values."""
        payload = json.dumps([self.variables, self.connections, sorted(self.pools)], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _conn_json(entry: dict, where: str) -> str:
    data: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "conn_id" or value in (None, ""):
            continue
        if key not in _CONN_FIELDS:
            raise ConfigError(f"{where}: unknown connection field {key!r}; "
                              f"use one of {', '.join(sorted(_CONN_FIELDS))}")
        target = _CONN_FIELDS[key]
        if target == "extra" and not isinstance(value, str):
            value = json.dumps(value)
        if target == "port":
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: conn_port must be a number, got {value!r}") from None
        data[target] = value
    if "conn_type" not in data:
        raise ConfigError(f"{where}: a connection needs conn_type (e.g. postgres, http, aws)")
    return json.dumps(data)


def read_airflow_settings(path: Path, values: ProjectValues) -> None:
    if not path.is_file():
        return
    import yaml  # only for a project with an airflow_settings.yaml (~10 ms)

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the "
                          "syntax") from None
    section = doc.get("airflow") or {} if isinstance(doc, dict) else {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'airflow' must be a mapping with variables, connections and "
                          "pools")
    for i, entry in enumerate(section.get("variables") or []):
        where = f"{path}: airflow.variables[{i}]"
        if not isinstance(entry, dict) or not entry.get("variable_name"):
            raise ConfigError(f"{where}: each variable needs variable_name (and variable_value)")
        value = entry.get("variable_value")
        name = str(entry["variable_name"])
        values.variables[name] = "" if value is None else (value if isinstance(value, str)
                                                           else json.dumps(value))
        values.sources[f"variable:{name}"] = str(path.name)
    for i, entry in enumerate(section.get("connections") or []):
        where = f"{path}: airflow.connections[{i}]"
        if not isinstance(entry, dict) or not entry.get("conn_id"):
            raise ConfigError(f"{where}: each connection needs conn_id and conn_type")
        values.connections[str(entry["conn_id"])] = _conn_json(entry, where)
        values.sources[f"connection:{entry['conn_id']}"] = str(path.name)
    for entry in section.get("pools") or []:
        if isinstance(entry, dict) and entry.get("pool_name"):
            values.pools.add(str(entry["pool_name"]))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a docker-compose style .env file (what `astro dev start` passes on)."""
    found: dict[str, str] = {}
    if not path.is_file():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key.strip()] = value
    return found


def _apply_env(env: dict[str, str], values: ProjectValues, source: str) -> None:
    for key, value in env.items():
        if key.startswith("AIRFLOW_VAR_"):
            name = key[len("AIRFLOW_VAR_"):].lower()
            values.variables[name] = value
            values.sources[f"variable:{name}"] = source
        elif key.startswith("AIRFLOW_CONN_"):
            name = key[len("AIRFLOW_CONN_"):].lower()
            values.connections[name] = value
            values.sources[f"connection:{name}"] = source


def load_values(settings: Settings, environ: dict[str, str] | None = None) -> ProjectValues:
    """Everything the project defines, in Airflow's precedence (later wins)."""
    values = ProjectValues()
    root = settings.root
    read_airflow_settings(root / "airflow_settings.yaml", values)
    _apply_env(read_env_file(root / ".env"), values, ".env")
    pyproject = root / "pyproject.toml"
    for name, value in (settings.table.get("variables") or {}).items():
        values.variables[str(name)] = value if isinstance(value, str) else json.dumps(value)
        values.sources[f"variable:{name}"] = "pyproject.toml"
    for conn_id, value in (settings.table.get("connections") or {}).items():
        where = f"{pyproject}: [tool.pytest-astro.connections] {conn_id}"
        if isinstance(value, str):
            values.connections[str(conn_id)] = value
        elif isinstance(value, dict):
            fields = {k if k.startswith("conn_") else f"conn_{k}": v for k, v in value.items()}
            values.connections[str(conn_id)] = _conn_json(fields, where)
        else:
            raise ConfigError(f"{where}: give a URI string or a table with conn_type, host, ...")
        values.sources[f"connection:{conn_id}"] = "pyproject.toml"
    _apply_env(dict(os.environ if environ is None else environ), values, "environment")
    return values
