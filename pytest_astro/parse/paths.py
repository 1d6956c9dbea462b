"""Paths as the user reads them in a verdict: relative to the project, the user's own frames only;
and the output a DAG file printed, from the file the child pointed its stdout at."""

from __future__ import annotations

import os
import traceback

from pytest_astro.results import Frame

#: characters of a file's captured output kept in its result
OUTPUT_LIMIT = 4000


class ProjectPaths:
    """The project root, and which files are the user's (memoized: a child asks about the same few
    paths for every file)."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)
        self.prefix = self.root + os.sep
        self._in_project: dict[str, bool] = {}
        self._real: dict[str, str] = {}

    def real(self, filename: str) -> str:
        try:
            return self._real[filename]
        except KeyError:
            real = self._real[filename] = os.path.realpath(filename)
            return real

    def in_project(self, filename: str) -> bool:
        """Whether ``filename`` is the user's code: in the project, not in a virtualenv inside
        it."""
        try:
            return self._in_project[filename]
        except KeyError:
            found = self._in_project[filename] = self._find_in_project(filename)
            return found

    def _find_in_project(self, filename: str) -> bool:
        if not filename or filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
            return False
        real = self.real(filename)
        if not real.startswith(self.prefix):
            return False
        rel = real[len(self.prefix):]
        # a virtualenv inside the project is not the user's code
        return "site-packages" not in rel and not rel.startswith((".venv", "venv"))

    def rel(self, filename: str) -> str:
        """``filename`` relative to the project root with POSIX separators; outside it, as it is."""
        real = self.real(filename)
        return real[len(self.prefix):].replace(os.sep,
                                               "/") if real.startswith(self.prefix) else real


def user_frames(paths: ProjectPaths, tb) -> list[Frame]:
    """The frames of traceback ``tb`` that run the user's code, outermost first."""
    return [Frame(file=paths.rel(fs.filename), line=fs.lineno or 0, function=fs.name,
                  source=(fs.line or "").strip())
            for fs in traceback.extract_tb(tb) if paths.in_project(fs.filename)]


def stack_line_in(path: str, start_frame) -> int | None:
    """Line of the innermost frame, from ``start_frame`` outwards, that runs code of ``path``."""
    frame = start_frame
    while frame is not None:
        if frame.f_code.co_filename == path:
            return frame.f_lineno
        frame = frame.f_back
    return None


def read_tail(path: str) -> str:
    """What a file printed while being imported: the end of its output file (``OUTPUT_LIMIT``)."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 4 * OUTPUT_LIMIT))
            return fh.read().decode(errors="replace")[-OUTPUT_LIMIT:]
    except OSError:
        return ""
