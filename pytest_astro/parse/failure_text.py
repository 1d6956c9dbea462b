"""How a parse failure reads, in pytest's report and on the command line."""

from __future__ import annotations

from pytest_astro.results import FileResult, ParseError


def headline(error: ParseError) -> str:
    """``Type: message`` (with the hint in parentheses when there is one)."""
    text = (f"{error.type}: {error.message}" if error.type and error.type not in error.message
            else error.message)
    return f"{text} ({error.hint})" if error.hint and error.kind == "missing_module" else text


def location(result: FileResult, error: ParseError) -> tuple[str, int | None]:
    """Where to point the user in the DAG file itself: its own frame, else the error's place."""
    if error.file == result.file and error.line:
        return result.file, error.line
    for frame in error.frames:
        if frame.file == result.file:
            return result.file, frame.line
    return result.file, error.line if error.file == result.file else None


def one_line(result: FileResult, error: ParseError) -> str:
    """``path:line: message`` (pre-commit and editor friendly)."""
    file, line = location(result, error)
    text = headline(error)
    if error.file != result.file and error.line:
        text += f" (at {error.file}:{error.line})"
    return f"{file}:{line}: {text}" if line else f"{file}: {text}"


def long_text(result: FileResult) -> str:
    """The full report of a failed file: headline, source and caret, user frames, hint, output."""
    blocks = []
    for error in result.errors:
        lines = [one_line(result, error)]
        if error.kind == "syntax" and error.source_line:
            lines.append(f"  {error.file}:{error.line}")
            lines.append("    " + error.source_line.rstrip())
            if error.column:
                # offsets count from 1; keep the caret under the right character
                prefix = error.source_line[: error.column - 1]
                lines.append("    " + "".join(c if c.isspace() else " " for c in prefix) + "^")
        elif error.frames:
            # an internal error's traceback is ours (every frame); a user's failure shows only
            # theirs
            lines.append("Traceback (pytest-astro):" if error.kind == "internal"
                         else "Traceback (your code only):")
            for frame in error.frames:
                lines.append(f'  File "{frame.file}", line {frame.line}, in {frame.function}')
                if frame.source:
                    lines.append(f"    {frame.source}")
        if error.hint and error.kind != "missing_module":
            lines.append(f"hint: {error.hint}")
        blocks.append("\n".join(lines))
    if result.stdout.strip():
        blocks.append("----- output while importing -----\n" + result.stdout.rstrip())
    return "\n\n".join(blocks)
