"""What went wrong with a DAG file, as a ``ParseError``: from the exception its import raised, from
the text Airflow recorded about a DAG it refused, from the way its child died, or from a failure of
pytest-astro's own code (an internal error, which never reads as the user's)."""

from __future__ import annotations

import os
import re
import signal
import traceback

from pytest_astro.parse.limits import Limits, ParseTimeout, size
from pytest_astro.parse.paths import ProjectPaths, user_frames
from pytest_astro.results import INTERNAL_NOTICE, Frame, ParseError

_TIMEOUT_HINT = "find what blocks at import (a loop, a network call{}) and move it into a task; " \
                "or raise the limit with --astro-timeout / astro_timeout"


def at_file(paths: ProjectPaths, target: str) -> ParseError:
    """An error about ``target`` as a whole (no line yet): the fields each kind fills in."""
    return ParseError(kind="exception", type="", message="", file=paths.rel(target))


def from_exception(paths: ProjectPaths, target: str, exc: BaseException, limits: Limits) -> ParseError:
    """The verdict on ``target`` whose import raised ``exc``, at the user's innermost frame."""
    from pytest_astro.dbguard import HEADLINE, HINT, find_in_chain
    from pytest_astro.netguard import find_in_chain as network_refused

    frames = user_frames(paths, exc.__traceback__)
    where = frames[-1] if frames else Frame(file=paths.rel(target), line=None, function="")
    error = ParseError(kind="exception", type=type(exc).__name__, message=str(exc), file=where.file,
                       line=where.line, source_line=where.source, frames=frames)
    at = f"{where.file}:{where.line}" if where.line else ""  # where the user's code was
    lookup = _adapter_lookup_error(exc)
    if find_in_chain(exc) is not None or _looks_like_db_error(exc):
        error.kind, error.type = "metadata_db", "MetadataDatabaseAccess"
        error.message, error.hint = HEADLINE + (f" (at {at})" if at else ""), HINT
    elif (refused := network_refused(exc)) is not None:
        error.kind, error.type, error.message, error.hint = "network", "NetworkAccess", str(refused), refused.hint
    elif lookup:
        kind, name = lookup
        error.kind, error.type = f"missing_{kind}", f"Missing{kind.title()}"
        error.message = f"{kind} '{name}' is not defined" + (f" (read at {at})" if at else "")
        error.hint = _lookup_hint(kind, name)
    elif isinstance(exc, SyntaxError):
        error.kind, error.message = "syntax", exc.msg or str(exc)
        error.file = paths.rel(exc.filename) if exc.filename else error.file
        error.line, error.column, error.source_line = exc.lineno, exc.offset, (exc.text or "").rstrip("\n")
    elif isinstance(exc, ModuleNotFoundError):
        error.kind, error.hint = "missing_module", _missing_module_hint(paths, exc.name)
    elif isinstance(exc, SystemExit):
        error.kind, error.hint = "exit", "DAG files must not exit: remove the call, or move it into a task"
        error.message = f"the file called sys.exit({exc.code!r}) while being imported"
    elif isinstance(exc, ParseTimeout):
        error.kind, error.type, error.hint = "timeout", "Timeout", _TIMEOUT_HINT.format(", a sleep")
        error.message = f"importing the file took longer than {limits.timeout:g} s (stopped here)"
    elif isinstance(exc, MemoryError):  # malloc failed: the opt-in address-space limit, or the machine's
        error.kind = "memory"
        if limits.address_space:
            error.message = ("importing the file hit the address-space limit of "
                             f"{size(limits.address_space)} (address_space_limit)")
            error.hint = ("move the allocation into a task; or raise address_space_limit in "
                          "[tool.pytest-astro], or remove it to limit resident memory only")
        else:
            error.message = ("importing the file ran out of memory (the machine's, or a limit set outside "
                             "pytest-astro)")
            error.hint = "move the allocation into a task"
    return error


def from_text(paths: ProjectPaths, target: str, text: str, dag_id_lines: dict[str, int],
              line: int | None = None) -> ParseError:
    """An error Airflow recorded about a DAG it refused (a cycle, a bad schedule, a cluster policy),
    placed at ``line`` (where that DAG was made) if known, else at the line where the DAG its message
    names was made."""
    last = text.strip().splitlines()[-1] if text.strip() else text
    m = re.match(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Violation|Warning)?):\s*(.*)$", last)
    type_, message = (m.group(1).rsplit(".", 1)[-1], m.group(2)) if m else ("ImportError", last)
    if line is None:
        named = [dag_id for dag_id in dag_id_lines if re.search(rf"\b{re.escape(dag_id)}\b", message)]
        line = dag_id_lines[max(named, key=len)] if named else None
    return ParseError(kind="dag", type=type_, message=message, file=paths.rel(target), line=line)


def from_os_exit(paths: ProjectPaths, target: str, code, line: int | None) -> ParseError:
    """The verdict on ``target`` that called ``os._exit(code)`` at ``line`` while being imported."""
    rel = paths.rel(target)
    return ParseError(kind="exit", type="os._exit", file=rel, line=line,
                      message=f"the file called os._exit({code!r}) while being imported, which ends the "
                              "process that imports it (Airflow's DAG processor included)",
                      hint="DAG files must not exit: remove the call",
                      frames=[Frame(file=rel, line=line, function="<module>")] if line else [])


#: a frame as faulthandler writes it
_FAULT_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')
_DEATHS = {"SIGSEGV": "a segmentation fault", "SIGABRT": "an abort", "SIGBUS": "a bus error",
           "SIGKILL": "SIGKILL (the system's out-of-memory killer?)"}


def from_death(paths: ProjectPaths, target: str, status: int, limits: Limits, *, peak: int, killed: bool,
               over_memory: bool, fault: str, ours: dict | None) -> ParseError:
    """The verdict on ``target``, whose child ended (wait ``status``) before reporting it.

    ``fault``: what faulthandler wrote (the stack where it died or was stopped); ``killed``: the
    pool killed it at the deadline; ``over_memory``: it was killed past the memory limit, ``peak``
    bytes resident; ``ours``: the failure of our own child code that ended it (``failure_of_ours``).
    """
    if ours is not None:
        return internal(paths, target, ours)
    error = at_file(paths, target)
    frames = [Frame(file=paths.rel(f), line=int(n), function=fn)
              for f, n, fn in _FAULT_FRAME.findall(fault) if paths.in_project(f)]
    if frames:
        error.frames, error.file, error.line = list(reversed(frames)), frames[0].file, frames[0].line
    if over_memory:
        return limits.memory_error(peak, error)
    if killed:
        error.kind, error.type, error.hint = "timeout", "Timeout", _TIMEOUT_HINT.format("")
        error.message = f"importing the file did not finish within {limits.timeout:g} s and was killed"
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        error.kind, error.type = "crash", name
        error.message = f"the process importing the file died of {_DEATHS.get(name, name)}"
        error.hint = "usually a C extension misbehaving at import time; import it inside a task"
    else:
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
        error.kind, error.type = "exit", "exit"
        error.message = f"the process importing the file exited with status {code} before reporting"
        error.hint = "DAG files must not end the process (os._exit, os.abort, a C library exit)"
    return error


# --------------------------------------------------------------------------------------------
# Failures of our own code


#: pytest-astro's own package folder: frames there are ours
_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _our_name(filename: str) -> str:
    """``pytest_astro/parse/adapter.py`` for a file of ours; other paths as they are."""
    if filename.startswith(_OURS):
        return "pytest_astro/" + filename[len(_OURS):].replace(os.sep, "/")
    return filename


def failure_of_ours(exc: BaseException) -> dict:
    """What to say about an exception raised by pytest-astro's own code, as JSON data: the component
    (our innermost frame), the exception, and the whole traceback (Airflow's frames too: a bug report
    needs them)."""
    entries = traceback.extract_tb(exc.__traceback__)
    ours = [fs for fs in entries if fs.filename.startswith(_OURS)]
    return {"component": f"{_our_name(ours[-1].filename)} ({ours[-1].name})" if ours else "parse sandbox",
            "exception": f"{type(exc).__name__}: {exc}",
            "frames": [{"file": _our_name(fs.filename), "line": fs.lineno or 0, "function": fs.name,
                        "source": (fs.line or "").strip()} for fs in entries]}


def internal(paths: ProjectPaths, target: str, failure: dict, dag_id: str | None = None) -> ParseError:
    """An internal error for ``failure`` (``failure_of_ours``) while checking ``target``: names the
    component and the DAG, and says that it is our bug, not the user's."""
    what = f"DAG {dag_id!r} of {paths.rel(target)}" if dag_id else paths.rel(target)
    error = at_file(paths, target)
    error.kind, error.type = "internal", "InternalError"
    error.message = (f"pytest-astro's {failure['component']} failed on {what}: {failure['exception']}; "
                     f"{INTERNAL_NOTICE}")
    error.frames = [Frame(**f) for f in failure["frames"]]
    return error


def unreported(paths: ProjectPaths, target: str) -> ParseError:
    """The internal error for a file a child stopped at without reporting it (a bug of ours)."""
    error = at_file(paths, target)
    error.kind, error.type = "internal", "InternalError"
    error.message = (f"the parse sandbox's child stopped without a verdict on {paths.rel(target)}; "
                     f"{INTERNAL_NOTICE}")
    return error


# --------------------------------------------------------------------------------------------
# Hints


def _missing_module_hint(paths: ProjectPaths, name: str | None) -> str:
    if not name:
        return ""
    top = name.split(".")[0]
    for base in (paths.root, os.path.join(paths.root, "dags"), os.path.join(paths.root, "plugins")):
        if os.path.isdir(os.path.join(base, top)) or os.path.isfile(os.path.join(base, top + ".py")):
            return (f"'{top}' is part of the project, but '{name}' was not found in it: "
                    "check the module path and that the file exists")
    return (f"is the package that provides '{top}' missing from requirements.txt? "
            "Add it there and install it where these tests run")


def _lookup_hint(kind: str, name: str) -> str:
    if kind == "variable":
        return (f"define it in airflow_settings.yaml (airflow.variables: - variable_name: {name}), or as "
                f"AIRFLOW_VAR_{name.upper()} in .env; or give Variable.get a default; or move the read into "
                f"a task (a Jinja template {{{{ var.value.{name} }}}} reads it at run time)")
    return (f"define it in airflow_settings.yaml (airflow.connections: - conn_id: {name}), or as "
            f"AIRFLOW_CONN_{name.upper()} in .env; or move the lookup into a task, where hooks resolve "
            "their connection at run time")


def _adapter_lookup_error(exc: BaseException):
    try:
        from pytest_astro.parse.adapter import adapter

        return adapter().lookup_error(exc)
    except Exception:
        return None


def _looks_like_db_error(exc: BaseException) -> bool:
    """A SQLAlchemy error about the (deliberately unusable) metadata database URL."""
    return type(exc).__module__.startswith("sqlalchemy") and "unable to open database file" in str(exc)
