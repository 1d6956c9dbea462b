"""DAG source as Python reads it: the one place pytest-astro reads a DAG file's text.

Airflow imports a DAG file with Python's own rules, so a file it accepts may be saved in latin-1
with a PEP 263 coding cookie, start with a UTF-8 byte-order mark, or end its lines with CRLF.
Reading it as UTF-8 (``Path.read_text``) fails or shifts lines on such files; ``tokenize.open``
decodes it exactly as the interpreter does and turns every line ending into ``\\n``.
"""

from __future__ import annotations

import os
import tokenize


def read_source(path: str | os.PathLike[str]) -> str:
    """The text of the Python file at ``path``, decoded as the interpreter decodes it.

    Raises ``OSError`` when the file cannot be read and ``SyntaxError`` (or ``UnicodeDecodeError``)
    when its bytes are not valid in the encoding it declares: Python refuses such a file too.
    """
    with tokenize.open(os.fspath(path)) as fh:
        return fh.read()


def source_lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of ``read_source(path)`` (line ``n`` at index ``n - 1``); [] when unreadable.

    Split on ``\\n`` only, as Python numbers lines: ``str.splitlines`` would also split on a form
    feed or U+2028 inside a string or comment and shift every line after it."""
    try:
        return read_source(path).split("\n")
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
