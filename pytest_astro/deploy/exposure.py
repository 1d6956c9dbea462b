"""Where project code could read a deploy credential from, and closing what can be closed.

Removing a variable from a child's environment is not enough: ``/proc/PID/environ`` shows the
environment every process was *started* with, and any process of the same user can read it. Project
code run by the suite (a ``conftest.py``, a DAG file) can therefore read the token from the
environment its parent or grandparent was started with. So:

- the check phase refuses to start when a deploy credential is readable from its own or an
  ancestor's ``/proc/PID/environ`` (:func:`exposed`): in CI, the token belongs to the apply step
  only;
- the one-command ``pytest-astro deploy`` overwrites the credentials' values in the memory that
  backs its own ``/proc/PID/environ`` (:func:`hide_own`) before the suite starts, keeps them for the
  apply phase only, and still refuses when an ancestor was started with one.

Linux only (``/proc``); elsewhere only the process's own environment is judged.
"""

from __future__ import annotations

import ctypes
import fnmatch
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: The credentials a deploy uses: their presence is what the check phase refuses. (CI runtime tokens
#: such as ACTIONS_ID_TOKEN_REQUEST_TOKEN are in every step of a job; they are scrubbed from the
# suite,
#: see :data:`pytest_astro.deploy.mask.CREDENTIAL_VARIABLES`, but do not stop the check.)
DEPLOY_CREDENTIALS: tuple[str, ...] = (
    "ASTRO_API_TOKEN", "ASTRO_*TOKEN*", "ASTRONOMER_KEY_ID", "ASTRONOMER_KEY_SECRET",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_CREDENTIALS",
    "CLOUDSDK_AUTH_ACCESS_TOKEN", "AZURE_CLIENT_SECRET", "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
)
_PROC = Path("/proc")


@dataclass
class Exposure:
    pid: int
    name: str  # the process's command name
    variables: list[str]

    def describe(self) -> str:
        who = ("this process" if self.pid == os.getpid()
               else f"ancestor process {self.pid} ({self.name})")
        return f"{', '.join(self.variables)} in the environment {who} was started with"


def credential_names(env: Mapping[str, str]) -> list[str]:
    """The deploy credentials set (non-empty) in ``env``."""
    return sorted(k for k, v in env.items() if v.strip()
                  and any(fnmatch.fnmatchcase(k, p) for p in DEPLOY_CREDENTIALS))


def _read_environ(pid: int) -> dict[str, str] | None:
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    out = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            out[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace").strip("*")
    return out


def _parent_and_name(pid: int) -> tuple[int, str]:
    try:
        text = (_PROC / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0, "?"
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return int(fields.get("PPid", "0").strip() or 0), fields.get("Name", "?").strip()


def ancestors(pid: int | None = None) -> list[tuple[int, str]]:
    """(pid, name) of ``pid`` (default: this process) and each of its ancestors, up to pid 1."""
    out, pid, seen = [], pid or os.getpid(), set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        parent, name = _parent_and_name(pid)
        out.append((pid, name))
        pid = parent
    return out


def exposed(include_self: bool = True) -> list[Exposure]:
    """Processes from this one up whose ``/proc/PID/environ`` holds a deploy credential (names
    only).

    Values this process has hidden (overwritten with ``*``) do not count. Processes whose
    environment cannot be read (another user's) are skipped: project code running as us cannot read
    them either."""
    found = []
    for pid, name in ancestors():
        if pid == os.getpid() and not include_self:
            continue
        env = _read_environ(pid)
        if env is None:
            continue
        names = credential_names(env)
        if names:
            found.append(Exposure(pid, name, names))
    return found


def hide_own(names: Iterable[str]) -> bool:
    """Overwrite the values of ``names`` in the memory behind this process's ``/proc/self/environ``
    with ``*``, and remove them from ``os.environ``. True when ``/proc/self/environ`` no longer
    shows them (False where there is no /proc: nothing is shown there anyway, or it could not be
    done)."""
    names = list(names)
    for name in names:
        os.environ.pop(name, None)
    try:
        stat = (_PROC / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        # fields 50 and 51 of proc(5) (env_start, env_end); index 0 here is field 3
        start, end = int(stat[47]), int(stat[48])
    except (OSError, IndexError, ValueError):
        return False
    if not start or end <= start:
        return False
    data = ctypes.string_at(start, end - start)
    offset = 0
    for item in data.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and name.decode("utf-8", "replace") in names and value:
            ctypes.memset(start + offset + len(name) + 1, ord("*"), len(value))
        offset += len(item) + 1
    left = _read_environ(os.getpid()) or {}
    return not any(left.get(n) for n in names)
