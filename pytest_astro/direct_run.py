"""The run protocol of the checks that run none of the user's code (a DAG file's parse verdict).

pytest runs each test through three hooks, ``pytest_runtest_setup``, ``_call`` and ``_teardown``,
and its own plugins wrap each phase: output capture is resumed and suspended, log handlers are
added and removed, thread and unraisable exceptions are collected, skip and xfail marks are
evaluated, ``PYTEST_CURRENT_TEST`` is set. For a test of the user's code that is the point. A
parse item only turns a verdict, computed in the sandbox during collection, into an outcome: there
is nothing to capture (what the wrappers cost a run is measured in docs/performance.md).

So when those three hooks have no implementation but pytest's own for the item's folder (no
conftest.py or plugin hooks them), the run protocol has no implementation but pytest's and ours
(wrappers aside), and the item has no marks, the item's setup, ``runtest`` and teardown run
directly, as pytest's runner would run them. Everything else is pytest's: each phase's report is
made by ``pytest_runtest_makereport`` and logged by ``pytest_runtest_logreport`` (terminal,
JUnit XML, ``--lf``, ``-x``, xdist's workers), ``logstart`` / ``logfinish`` fire, ``--pdb``
interacts, and the protocol's wrappers (warnings, faulthandler, the database marker) still wrap it.
Anything else gets pytest's own protocol.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

try:  # pytest's runner, as its own plugins and pytest-xdist use it (pytest >= 7)
    from _pytest.outcomes import Exit
    from _pytest.runner import CallInfo, check_interactive_exception
except ImportError:  # pragma: no cover - a pytest that moved them: its own protocol for every item
    CallInfo = None

PHASES = ("pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown")


#: Implementations known to do nothing for our nodes, so they do not switch the direct paths off:
#: hypothesis' ``pytest_runtest_call`` wrapper acts only on items with a test function
# (``item.obj``),
#: its ``pytest_ignore_collect`` only on ``.hypothesis`` folders (which Airflow's discovery skips
# too).
INERT = {("_hypothesis_pytestplugin", "pytest_runtest_call"), ("_hypothesis_pytestplugin",
                                                               "pytest_ignore_collect")}


def only_implemented_by(ihook: Any, hook: str, modules: tuple[str, ...], *,
                        but_wrappers: bool = False) -> bool:
    """Whether every implementation of ``hook`` that ``ihook`` (a node's hook proxy) calls comes
    from a module named by, or under, one of ``modules`` (or is one of ``INERT``); with
    ``but_wrappers``, wrappers from anywhere are fine (they wrap ours as they wrap pytest's)."""
    for impl in getattr(ihook, hook).get_hookimpls():
        if but_wrappers and (getattr(impl, "wrapper", False)
                             or getattr(impl, "hookwrapper", False)):
            continue
        module = getattr(impl.function, "__module__", None) or ""
        if not module.startswith(modules) and (module, hook) not in INERT:
            return False
    return True


def _only_pytests_phases(ihook: Any) -> bool:
    """True when nothing but pytest itself handles the phases, and nothing but its runner (or we)
    runs the protocol: pytest-rerunfailures, say, runs the item its own way."""
    return (all(only_implemented_by(ihook, name, ("_pytest.",)) for name in PHASES)
            and only_implemented_by(ihook, "pytest_runtest_protocol", ("_pytest.runner", __name__),
                                    but_wrappers=True))


class DirectRun:
    """The plugin: decides, per item, whether it may run directly, and runs it."""

    def __init__(self, config: pytest.Config):
        self.enabled = CallInfo is not None and not (
            config.getoption("setuponly", False) or config.getoption("setupshow", False))
        # as pytest's runner: with --pdb a KeyboardInterrupt is reported, not raised
        self.reraise = (Exit,) if config.getoption("usepdb", False) else (Exit, KeyboardInterrupt)
        self._verdicts: dict[Any, bool] = {}  # hook proxy -> only pytest's own phase hooks

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item,
                                nextitem: pytest.Item | None) -> bool | None:
        return self.run(item, nextitem) if self.applies(item) else None

    def applies(self, item: pytest.Item) -> bool:
        if not self.enabled or getattr(item, "runs_user_code", True):
            return False
        ihook = item.ihook
        verdict = self._verdicts.get(ihook)
        if verdict is None:
            verdict = self._verdicts[ihook] = _only_pytests_phases(ihook)
        return verdict and next(item.iter_markers(), None) is None

    def run(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        state = item.session._setupstate
        if self._phase(item, ihook, "setup", partial(state.setup, item)).passed:
            self._phase(item, ihook, "call", item.runtest)
        if item.session.shouldfail or item.session.shouldstop:
            nextitem = None  # as pytest: tear everything down before the session stops
        self._phase(item, ihook, "teardown", partial(state.teardown_exact, nextitem))
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _phase(self, item: pytest.Item, ihook: Any, when: str, func) -> pytest.TestReport:
        call = CallInfo.from_call(func, when=when, reraise=self.reraise)
        report = ihook.pytest_runtest_makereport(item=item, call=call)
        ihook.pytest_runtest_logreport(report=report)
        if check_interactive_exception(call, report):
            ihook.pytest_exception_interact(node=item, call=call, report=report)
        return report
