"""Checks that need the real DAG object; run inside the parse sandbox, one DAG at a time.

``prepare`` runs in the forked child right before the DAG file is imported: it records the
arguments each DAG was constructed with (what was *explicit*: ``catchup=``, ``schedule=``, the raw
``start_date``) and loads the project's own cluster policies (``airflow_local_settings.py``) so that
their verdicts are recorded instead of dropping the DAG. ``inspect_dag`` then runs once per parsed
DAG and returns plain JSON data that lands in ``DagSummary.checks``.

Both must be cheap and must never raise: a failure here is recorded under ``checks["errors"]``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from datetime import datetime
from typing import Any

from pytest_astro.config import SNAPSHOTS_REQUEST_KEY
from pytest_astro.policies.builtin import static_start_date

# id(dag) -> what its constructor was given; filled by the DAG.__init__ wrapper of ``prepare``
_CONSTRUCTED: dict[int, dict[str, Any]] = {}
# dag_id -> cluster policy outcomes recorded while Airflow bagged the DAG
_POLICY_VIOLATIONS: dict[str, list[dict[str, Any]]] = {}
_STATE: dict[str, Any] = {"policies": None, "error": None, "prepared": False}

LOCAL_SETTINGS = "airflow_local_settings.py"
# where an Astro project keeps airflow_local_settings.py, relative to the project root
LOCAL_SETTINGS_PLACES = ("plugins", "include", "config", ".")


def _find_local_settings(root: str) -> str | None:
    """The project's airflow_local_settings.py: the module Airflow itself imported (plugins/ and the
    config folder are on its path), else the first of plugins/, include/, config/, the root."""
    loaded = sys.modules.get("airflow_local_settings")
    path = getattr(loaded, "__file__", None)
    if path and os.path.realpath(path).startswith(os.path.realpath(root) + os.sep):
        return path
    for place in LOCAL_SETTINGS_PLACES:
        candidate = os.path.join(root, place, LOCAL_SETTINGS)
        if os.path.isfile(candidate):
            return candidate
    return None


def _load_policies(path: str) -> dict[str, Any]:
    """Import the local settings file afresh in this child (so it is a cache dependency of the DAG
    file, and an edit to it re-checks every DAG) and return its policy functions."""
    spec = importlib.util.spec_from_file_location("_pytest_astro_local_settings", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return {name: fn for name in ("dag_policy", "task_policy") if callable(fn := getattr(module, name, None))}


def _record(dag_id: str, task_id: str | None, exc: BaseException, policy: str) -> None:
    _POLICY_VIOLATIONS.setdefault(dag_id, []).append({
        "policy": policy, "task_id": task_id, "type": type(exc).__name__, "message": str(exc)})


def reset_records() -> None:
    """Forget what the previous file's DAGs recorded (a child parses several files in turn)."""
    _CONSTRUCTED.clear()
    _POLICY_VIOLATIONS.clear()
    _STATE.pop("parsed_at", None)


def prepare(adapter: Any, options: dict, root: str | None = None) -> None:
    """Install the recorders before the DAG file is imported (called once per child)."""
    if _STATE["prepared"]:
        return
    _STATE["prepared"] = True
    _STATE["root"] = os.path.realpath(root) if root else None
    try:
        real_init = adapter.DAG.__init__

        def recording_init(self, *args, **kwargs):
            default_args = kwargs.get("default_args") or {}
            raw_start = kwargs.get("start_date", default_args.get("start_date") if isinstance(default_args, dict) else None)
            _CONSTRUCTED.setdefault(id(self), {
                "kwargs": sorted(kwargs) + (["dag_id"] if args else []),
                "default_args": sorted(default_args) if isinstance(default_args, dict) else [],
                "start_date": raw_start, "at": time.time()})
            return real_init(self, *args, **kwargs)

        adapter.DAG.__init__ = recording_init
    except Exception as exc:  # never break the parse for a policy
        _STATE["error"] = f"{type(exc).__name__}: {exc}"

    try:
        path = _find_local_settings(root or os.getcwd())
        if path is None:
            return
        _STATE["policies"] = {"source": os.path.relpath(path, root or os.getcwd()).replace(os.sep, "/"),
                              "functions": {}, "load_error": None}
        try:
            functions = _load_policies(path)
        except BaseException as exc:  # a broken local settings file fails every cluster_policy item
            _STATE["policies"]["load_error"] = f"{type(exc).__name__}: {exc}"
            functions = {}
        _STATE["policies"]["functions"] = sorted(functions)

        # Airflow's DagBag calls these while bagging each DAG; record a violation instead of letting it
        # drop the DAG, so the parse item stays about importing and cluster_policy reports the policy.
        def dag_policy(dag):
            if "dag_policy" in functions:
                try:
                    functions["dag_policy"](dag)
                except Exception as exc:
                    _record(dag.dag_id, None, exc, "dag_policy")

        def task_policy(task):
            if "task_policy" in functions:
                try:
                    functions["task_policy"](task)
                except Exception as exc:
                    dag = getattr(task, "dag", None)
                    _record(getattr(dag, "dag_id", "?"), task.task_id, exc, "task_policy")

        adapter.set_cluster_policies(dag_policy, task_policy)
    except Exception as exc:
        _STATE["error"] = f"{type(exc).__name__}: {exc}"


def _start_date(constructed: dict[str, Any] | None) -> dict[str, Any]:
    raw = (constructed or {}).get("start_date")
    if not isinstance(raw, datetime):
        return {"set": raw is not None, "naive": None, "dynamic": None}
    naive = raw.tzinfo is None or raw.tzinfo.utcoffset(raw) is None
    now = datetime.fromtimestamp(constructed["at"], tz=raw.tzinfo) if not naive else datetime.fromtimestamp(constructed["at"])
    dynamic = None
    if raw.microsecond:
        dynamic = f"{raw.isoformat()} has microseconds, as a value computed from now() has"
    elif abs((raw - now).total_seconds()) < 36 * 3600:
        dynamic = f"{raw.isoformat()} is within a day and a half of the moment the file was parsed"
    return {"set": True, "naive": naive, "dynamic": dynamic}


def _conn_ids(dag: Any) -> dict[str, list[str]]:
    """Connection ids the tasks use: every string attribute whose name ends in ``conn_id``."""
    found: dict[str, list[str]] = {}
    for task in dag.tasks:
        ids = set()
        for name, value in vars(task).items():
            if name.endswith("conn_id") and isinstance(value, str) and value and "{{" not in value:
                ids.add(value)
        if ids:
            found[task.task_id] = sorted(ids)
    return found


def may_select(options: dict, code: str, name: str) -> bool:
    """Whether the policy ``code`` (``name``) can be selected by this ``[tool.pytest-astro.policies]``
    table: what only one policy reads is computed only then (the serialization round trip of DAG006
    is the costliest check)."""
    def codes(key: str) -> list[str]:
        value = options.get(key) or []
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def matches(prefixes: list[str]) -> bool:
        return any(p == "ALL" or code.startswith(p) or p == name for p in prefixes)

    if not isinstance(options, dict):
        return True
    selected = matches(codes("select")) if "select" in options else True
    selected = selected or matches(codes("extend-select") + codes("extend_select"))
    return selected and not matches(codes("ignore"))


def _parse_time() -> datetime:
    """The moment the DAG file was parsed (the start of the horizon DAG009 looks ahead from)."""
    from datetime import timezone

    return datetime.fromtimestamp(_STATE.setdefault("parsed_at", time.time()), tz=timezone.utc)


def inspect_dag(dag: Any, adapter: Any, options: dict, source: tuple[str, int | None] | None = None) -> dict[str, Any]:
    """Plain data about ``dag`` for the policies in the pytest process (never raises). ``source``:
    the DAG file's path and the DAG's line, for what is read from the source."""
    checks: dict[str, Any] = {}
    errors: list[str] = []
    if _STATE["error"]:
        errors.append(_STATE["error"])
    constructed = _CONSTRUCTED.get(id(dag))
    if constructed is not None:
        checks["kwargs"] = constructed["kwargs"]
        checks["default_args"] = constructed["default_args"]
    wanted = {"serialize": may_select(options, "DAG006", "serializes"),
              "next_run": may_select(options, "DAG009", "next_run"),
              "mapped": may_select(options, "DAG112", "unbounded_mapping"),
              "snapshot": bool(options.get(SNAPSHOTS_REQUEST_KEY)) and may_select(options, "DAG010", "snapshot"),
              "start_date_static": source is not None and may_select(options, "DAG007", "start_date")}
    scheduled: list[Any] = [None]  # the DAG as the serialization round trip gave it back

    def serialize() -> dict[str, Any]:
        verdict, scheduled[0] = adapter.round_trip(dag)
        return verdict

    for key, compute in (("start_date", lambda: _start_date(constructed)),
                         ("conn_ids", lambda: _conn_ids(dag)),
                         ("task_pools", lambda: {t.task_id: str(t.pool) for t in dag.tasks if getattr(t, "pool", None)}),
                         ("serialize", serialize),
                         ("start_date_static", lambda: static_start_date(*source)),
                         ("next_run", lambda: {**adapter.next_run(dag, _parse_time(), scheduled[0]),
                                               "after": _parse_time().isoformat()}),
                         ("mapped", lambda: adapter.mapped_tasks(dag)),
                         ("snapshot", lambda: adapter.snapshot(dag, _STATE.get("root") or os.getcwd()))):
        if not wanted.get(key, True):
            continue
        try:
            checks[key] = compute()
        except Exception as exc:
            errors.append(f"{key}: {type(exc).__name__}: {exc}")
    if _STATE["policies"] is not None:
        checks["cluster_policy"] = {**_STATE["policies"],
                                    "violations": _POLICY_VIOLATIONS.get(dag.dag_id, [])}
    if errors:
        checks["errors"] = errors
    return checks
