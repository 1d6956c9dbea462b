"""What one DAG file's import may take (time, resident memory, opt-in address space), and how the
sandbox measures a process's memory. Standard library only: no Airflow."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

from pytest_astro.results import ParseError


class ParseTimeout(BaseException):
    """Raised inside a child by SIGALRM when a file takes longer than the timeout."""


def size(n: int) -> str:
    """``n`` bytes for a reader: ``4 GiB``, ``1.5 MiB``, ``12 bytes``."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


@dataclass
class Limits:
    """What one DAG file may take: ``timeout`` seconds, ``memory`` bytes of resident memory on top
    of ``baseline`` (the sandbox's own, which a forked child starts with), and, only when the
    project opts in, ``address_space`` bytes of address space (RLIMIT_AS; 0: none)."""

    timeout: float
    memory: int = 0
    address_space: int = 0
    baseline: int = 0

    def over(self, peak: int) -> bool:
        """Whether a process whose resident memory reached ``peak`` bytes went past the limit."""
        return self.memory > 0 and peak - self.baseline > self.memory

    def memory_error(self, peak: int, at: ParseError) -> ParseError:
        """The verdict on a file whose import went past the memory limit (``peak`` bytes resident),
        placed where ``at`` is (the file, or the line it was running when it was stopped)."""
        return replace(at, kind="memory", type="MemoryError",
                       message=f"used {size(peak - self.baseline)} at import, "
                               f"over the {size(self.memory)} limit",
                       hint="move the allocation into a task; or raise the limit with "
                            "--astro-memory-limit / astro_memory_limit")


def maxrss(usage) -> int:
    """Peak resident memory in bytes from a ``getrusage``/``wait4`` result (Linux counts KiB, macOS
    bytes). A forked child's peak starts at its parent's: compare peaks, not one peak with a
    limit."""
    return usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def address_space() -> int | None:
    """This process's address space (virtual size) in bytes, None where /proc cannot tell."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def resident(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes, None where /proc cannot tell (macOS, a reaped
    pid)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None
