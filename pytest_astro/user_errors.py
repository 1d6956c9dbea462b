"""The one format of an error the user can fix: ``pytest-astro: <file>:<line>: <what> (<what to
do>)``.

``usage_error`` is for pytest (a ``pytest.UsageError``: pytest prints ``ERROR: <text>`` and exits
4); ``fail`` is for the commands (the text on stderr, and the exit status to return). ``file`` and
``line`` are the user's (their pyproject.toml, a DAG file, a command-line option), ``what`` says
what is wrong and ``fix`` what to do about it. A ``ConfigError`` (or any exception whose text
already names where, as every ``ConfigError`` does) is passed as ``what`` alone.

Bugs of ours are not user errors: they say "internal error" and name our component
(``results.INTERNAL_NOTICE``). Importing this module imports neither pytest nor Airflow.
"""

from __future__ import annotations

import sys
from os import PathLike
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import pytest

PREFIX = "pytest-astro"
#: the exit status of a command given something it cannot use (argparse's own)
USAGE_STATUS = 2


def user_message(what: object, *, file: str | PathLike | None = None, line: int | None = None,
                 fix: str | None = None) -> str:
    """``pytest-astro: <file>:<line>: <what> (<fix>)``; the parts not given are left out."""
    where = (f"{file}:{line}: " if file is not None and line else f"{file}: " if file is not None
             else "")
    text = f"{PREFIX}: {where}{what}"
    return f"{text} ({fix})" if fix else text


def usage_error(what: object, *, file: str | PathLike | None = None, line: int | None = None,
                fix: str | None = None) -> pytest.UsageError:
    """The ``pytest.UsageError`` to raise (``raise usage_error(...) from None``)."""
    import pytest

    return pytest.UsageError(user_message(what, file=file, line=line, fix=fix))


def fail(what: object, *, file: str | PathLike | None = None, line: int | None = None,
         fix: str | None = None, status: int = USAGE_STATUS, stream: TextIO | None = None) -> int:
    """Print the message (on stderr unless ``stream`` says otherwise); return ``status`` for the
    command."""
    sys.stdout.flush()  # what the command printed before stays before the error
    print(user_message(what, file=file, line=line, fix=fix), file=stream or sys.stderr)
    return status
