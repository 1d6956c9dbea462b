"""DAG010 snapshot: a DAG's structure is the one recorded in the project's snapshot folder.

With the folder (``snapshots_folder``, default ``tests/dag_snapshots``), the sandbox serializes each
DAG as the DAG processor does, normalized (``adapter.snapshot``), into ``dag.checks["snapshot"]``; this
policy compares it with ``<folder>/<dag_id>.json`` and lists what changed: tasks added and removed,
dependencies, the schedule, params, other DAG and task attributes. ``pytest --astro-dags
--astro-snapshot-update`` writes the files instead (creating the folder). No folder, no snapshots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_astro.policies.api import Policy, Violation

UPDATE_OPTION = "astro_snapshot_update"
_SCHEDULE_KEYS = ("timetable", "schedule_interval", "timetable_summary")
_SHOWN = 20  # differences listed per DAG; the rest are counted


def snapshot_text(snapshot: dict) -> str:
    """The file's content: stable (sorted keys), one value per line for a readable git diff."""
    return json.dumps(snapshot, indent=2, sort_keys=True, default=str) + "\n"


def _short(value: Any, limit: int = 100) -> str:
    if isinstance(value, dict) and isinstance(value.get("__type"), str) and isinstance(value.get("__var"), dict):
        # a serialized object (a timetable): CronTriggerTimetable(expression='0 4 * * *', ...)
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(value["__var"].items()))
        text = f"{value['__type'].rsplit('.', 1)[-1]}({fields})"
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _params(value: Any) -> Any:
    """Serialized params (``[[name, {"default": ...}]]`` or a dict of them) as ``{name: default}``."""
    pairs = value.items() if isinstance(value, dict) else value if isinstance(value, list) else None
    try:
        return {str(name): (p.get("default") if isinstance(p, dict) else p) for name, p in pairs}
    except (TypeError, ValueError):
        return value


def _changed(what: str, before: Any, after: Any) -> str:
    if what == "params":
        before, after = _params(before), _params(after)
        if isinstance(before, dict) and isinstance(after, dict):
            keys = sorted(before.keys() | after.keys(), key=str)
            return "params: " + ", ".join(f"{k}: {_short(before.get(k))} -> {_short(after.get(k))}"
                                          for k in keys if before.get(k) != after.get(k))
    return f"{what}: {_short(before)} -> {_short(after)}"


def _edges(snapshot: dict) -> set[tuple[str, str]]:
    return {(task_id, down) for task_id, task in (snapshot.get("tasks") or {}).items()
            for down in task.get("downstream_task_ids") or []}


def differences(old: dict, new: dict) -> list[str]:
    """What changed from ``old`` to ``new`` (two snapshots), one readable line per change."""
    out: list[str] = []
    old_tasks, new_tasks = old.get("tasks") or {}, new.get("tasks") or {}
    out += [f"task added: {t!r}" for t in sorted(new_tasks.keys() - old_tasks.keys())]
    out += [f"task removed: {t!r}" for t in sorted(old_tasks.keys() - new_tasks.keys())]
    old_edges, new_edges = _edges(old), _edges(new)
    out += [f"dependency added: {a} >> {b}" for a, b in sorted(new_edges - old_edges)]
    out += [f"dependency removed: {a} >> {b}" for a, b in sorted(old_edges - new_edges)]
    for key in sorted((old.keys() | new.keys()) - {"tasks", "task_group", "_task_group"}):
        if old.get(key) != new.get(key):
            out.append(_changed("schedule" if key in _SCHEDULE_KEYS else key.lstrip("_"), old.get(key), new.get(key)))
    for task_id in sorted(old_tasks.keys() & new_tasks.keys()):
        before, after = old_tasks[task_id], new_tasks[task_id]
        for key in sorted((before.keys() | after.keys()) - {"downstream_task_ids"}):
            if before.get(key) == after.get(key):
                continue
            if key == "params" and _params(before.get(key)) == _params(old.get("params")) \
                    and _params(after.get(key)) == _params(new.get("params")):
                continue  # the DAG's params, already listed
            out.append(f"task {task_id!r} " + _changed(key.lstrip("_"), before.get(key), after.get(key)))
    return out


class Snapshot(Policy):
    code, name, default = "DAG010", "snapshot", True
    description = ("the DAG's structure (tasks, dependencies, schedule, params, attributes) is the one recorded in "
                   "the snapshot folder, when the project has one")
    hint = ("if the change is meant, record it: pytest --astro-dags --astro-snapshot-update, and commit the "
            "snapshot file with the change")
    example = "a task added to the DAG since its snapshot was recorded"

    def check(self, dag, context):
        snapshot = dag.checks.get("snapshot")
        if not isinstance(snapshot, dict):
            return []  # no snapshot folder (or not computed)
        settings = context.project.settings
        path = Path(settings.snapshots_path) / f"{dag.dag_id}.json"
        rel = f"{settings.snapshots_folder.rstrip('/')}/{dag.dag_id}.json"
        text = snapshot_text(snapshot)
        if context.config is not None and context.config.getoption(UPDATE_OPTION, default=False):
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            return []
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return [Violation(f"no snapshot recorded yet ({rel})")]
        except (OSError, ValueError) as exc:
            return [Violation(f"{rel} cannot be read ({exc}): record it again")]
        changes = differences(recorded, json.loads(text))
        if not changes:
            return []
        more = f"\n  ... and {len(changes) - _SHOWN} more" if len(changes) > _SHOWN else ""
        return [Violation(f"differs from {rel}:\n  " + "\n  ".join(changes[:_SHOWN]) + more)]
