"""``pytest-astro deploy [check|apply]``: two phases, the token only in the second.

- **check** (:func:`run_check`, no credential; :mod:`.check_phase`): resolve the target -> decide
  the type -> refuse a tree that differs from HEAD -> hash the files the deploy would ship -> run
  the suite -> hash them again (the suite must not have changed them) -> write the plan
  (:mod:`.plan`).
- **apply** (:func:`run_apply`, holds the token, runs no project code; :mod:`.apply_phase`): read
  the plan -> the tree is still HEAD and the files still have the plan's hashes -> deploy -> confirm
  from the CLI's output -> wait -> record.
- ``pytest-astro deploy`` alone (:func:`run_gate`) does both in one process, for local use: it hides
  the credentials from its own ``/proc/PID/environ`` first and refuses when an ancestor was started
  with one (:mod:`.exposure`).

What both phases share (the options, the run's output, masking and record) is :mod:`.context`.

Exit status: 0 deployed, plan allowed, nothing to deploy for this branch, or ``--dry-run``; 1
refused (suite, parse, tree, plan) or the deploy failed; 2 a configuration or usage error; 130
interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pytest_astro.deploy import apply_phase, check_phase, context, exposure
from pytest_astro.deploy import plan as plans
from pytest_astro.deploy.context import DEFAULT_RECORD, GateOptions, Refused, Run
from pytest_astro.user_errors import user_message

__all__ = ["DEFAULT_RECORD", "GateOptions", "run_apply", "run_check", "run_gate"]


def run_check(opts: GateOptions, out: Callable[[str], None] = print,
              env: dict | None = None) -> int:
    """``pytest-astro deploy check``: exit 0 plan written and the deploy allowed, 1 refused, 2
    error."""
    run = Run(opts, dict(os.environ if env is None else env), out)
    held = exposure.credential_names(run.env)
    found = [e.describe() for e in exposure.exposed()] if env is None else []
    if held or found:
        what = "; ".join(found) or f"{', '.join(held)} in this process's environment"
        run.say(user_message(
            "deploy check: a deploy credential is within reach of the project code this phase "
            f"runs ({what}): any process of this user can read a process's starting environment "
            "from /proc/PID/environ",
            fix="run the check in a CI step that does not have it; only `pytest-astro deploy "
                "apply` needs the token"))
        return 2
    code = context.load(run)
    if code is not None:
        return code
    plan: dict = {}
    try:
        code, plan = check_phase.check(run, with_deploy=False)
    except Refused as exc:
        code = exc.code
        context.say_refusal(run, exc)
        plan = {**{k: run.rec.get(k)
                   for k in ("branch", "commit", "target", "deploy_type", "decision")},
                "project": str(run.root), "allowed": False, "outcome": exc.outcome,
                "reason": exc.reason,
                "files": {}, "suite": run.rec.get("suite")}
        if exc.outcome == "dry-run" or exc.code == 2:
            return code
    plans.write(plan, run.plan_path, run.masker)
    run.say(f"pytest-astro deploy check: plan written to {run.plan_path}"
            + (" (deploy allowed: run `pytest-astro deploy apply` with the "
               "token)" if plan.get("allowed") else ""))
    return code


def run_apply(opts: GateOptions, out: Callable[[str], None] = print,
              env: dict | None = None) -> int:
    """``pytest-astro deploy apply``: verify the tree against the plan, deploy, confirm, wait,
    record. Runs no project code: no suite, no conftest.py, no import of the project's modules."""
    run = Run(opts, dict(os.environ if env is None else env), out)
    code = context.load(run)
    if code is not None:
        return code
    try:
        plan = plans.read(run.plan_path)
    except plans.PlanError as exc:
        run.say(user_message(f"deploy apply: {exc}"))
        return run.finish("failed", 2, str(exc))
    try:
        apply_phase.verify(run, plan)
    except Refused as exc:
        run.rec.update(target=plan.get("target"), deploy_type=plan.get("deploy_type"),
                       commit=plan.get("commit"))
        context.say_refusal(run, exc)
        return run.finish(exc.outcome, exc.code, exc.reason)
    return apply_phase.deploy(run, plan)


def run_gate(opts: GateOptions, out: Callable[[str], None] = print, env: dict | None = None) -> int:
    """``pytest-astro deploy``: check, then apply, in this process (for local use).

    The suite never gets a credential (its environment is scrubbed). Before it starts, the
    credentials' values are also overwritten where ``/proc/self/environ`` shows them, so the suite
    cannot read them from its parent; this process keeps them for the apply phase. An ancestor
    started with a credential cannot be helped: then it refuses, and says to run two steps."""
    run = Run(opts, dict(os.environ if env is None else env), out)
    held = exposure.credential_names(run.env)
    hidden = {}
    if env is None and held and not opts.dry_run:
        hidden = {k: os.environ[k] for k in held if k in os.environ}
        exposure.hide_own(held)
        found = exposure.exposed(include_self=False)
        if found:
            run.say(user_message(
                "; ".join(e.describe() for e in found)
                + ": project code run by the suite could read it from /proc/PID/environ",
                fix="run `pytest-astro deploy check` in a step (or shell) without the credential, "
                    "then `pytest-astro deploy apply` with it"))
            return 2
    code = context.load(run)
    if code is not None:
        return code
    try:
        code, plan = check_phase.check(run, with_deploy=True)
        plans.write(plan, run.plan_path, run.masker)
        apply_phase.verify(run, plan)
    except Refused as exc:
        context.say_refusal(run, exc)
        return run.finish(exc.outcome, exc.code, exc.reason)
    except KeyboardInterrupt:
        run.say("pytest-astro deploy: INTERRUPTED before the deploy; nothing was deployed")
        return run.finish("interrupted", 130, "interrupted (Ctrl-C) before the deploy")
    except OSError as exc:
        run.say(user_message(f"cannot write the plan: {exc.strerror or exc}", file=run.plan_path,
                             fix="give --plan a path in a writable folder"))
        return run.finish("failed", 1, str(exc))
    os.environ.update(hidden)  # the suite is over: the SDKs read their credentials from here
    return apply_phase.deploy(run, plan)
