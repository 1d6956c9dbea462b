"""Policies about how a DAG will run: its schedule yields a next run (DAG009), mapped tasks are bounded (DAG112).

What they read is computed in the parse sandbox from the real DAG (``policies/sandbox.py`` via the
adapter) and cached with the file's result: ``dag.checks["next_run"]`` and ``dag.checks["mapped"]``.
A result without them (parsed before they existed) passes: nothing is known.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pytest_astro.policies.api import Policy, Violation


class NextRun(Policy):
    code, name, default = "DAG009", "next_run", True
    description = ("a DAG with a time-based schedule gets a next run from its timetable, within the horizon "
                   "(default 366 days after the parse)")
    hint = ("fix the schedule (a cron that never or rarely matches, a past end_date, a timetable that raises), "
            "or raise horizon-days in [tool.pytest-astro.policies.next_run]")
    options = {"horizon_days": 366}
    example = "schedule='0 0 30 2 *'  # February 30th: never"

    def check(self, dag, context):
        info = dag.checks.get("next_run")
        if not isinstance(info, dict) or not info.get("periodic"):
            return []  # manual, once, asset-triggered, or not computed
        schedule = f"schedule {dag.schedule!r}" if dag.schedule else "the timetable"
        if info.get("error"):
            return [Violation(f"{schedule}: computing the next run, the timetable raised {info['error']}")]
        if info.get("next") is None:
            if info.get("end_date"):
                return [Violation(f"{schedule}: no next run, end_date {info['end_date']} has passed")]
            return [Violation(f"{schedule}: the timetable gives no next run")]
        horizon = timedelta(days=float(context.options["horizon_days"]))
        after, upcoming = datetime.fromisoformat(info["after"]), datetime.fromisoformat(info["next"])
        if upcoming - after > horizon:
            return [Violation(f"{schedule}: the next run is due {upcoming.date().isoformat()}, more than "
                              f"{context.options['horizon_days']} days after {after.date().isoformat()}")]
        return []


class UnboundedMapping(Policy):
    code, name = "DAG112", "unbounded_mapping"
    description = ("a task mapped over an upstream task's output (.expand()/.expand_kwargs()) limits how many "
                   "of its instances run at once")
    hint = ("set max_active_tis_per_dagrun=N on the mapped task (.partial() or @task(...)): each element of "
            "the upstream list becomes a task instance, up to [core] max_map_length")
    example = "load.expand(file=list_files())  # 50,000 files: 50,000 task instances at once"

    def check(self, dag, context):
        out = []
        for mapped in dag.checks.get("mapped") or []:
            if not mapped.get("over") or any(v for v in (mapped.get("limits") or {}).values()):
                continue
            over = ", ".join(f"{argument}= from {' and '.join(repr(t) for t in upstream)}"
                             for argument, upstream in sorted(mapped["over"].items()))
            out.append(Violation(f"mapped over upstream output ({over}) with no limit on its instances",
                                 task_id=mapped["task_id"]))
        return out
