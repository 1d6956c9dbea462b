"""One format for every error a user can fix: ``pytest-astro: <file>:<line>: <what> (<what to do>)``.

The format once (``user_errors``), then one real path through each kind of caller: a pytest run
(``pytest.UsageError``), the ``pytest-astro`` subcommands and a pre-commit hook's command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_astro.cli import main
from pytest_astro.user_errors import fail, usage_error, user_message


def test_the_format() -> None:
    assert user_message("no tags", file="dags/etl.py", line=12, fix="add tags=[...]") == \
        "pytest-astro: dags/etl.py:12: no tags (add tags=[...])"
    assert user_message("cannot read it", file=Path("pyproject.toml")) == "pytest-astro: pyproject.toml: cannot read it"
    assert user_message("--shards 0: too few", fix="give 1 to 64") == "pytest-astro: --shards 0: too few (give 1 to 64)"
    # a ConfigError already names where: it is the message as it is
    assert user_message(ValueError("pyproject.toml:3: bad")) == "pytest-astro: pyproject.toml:3: bad"
    # a line without a file says nothing: there is nothing to point at
    assert user_message("x", line=3) == "pytest-astro: x"


def test_usage_error_and_fail(capsys) -> None:
    error = usage_error("bad", file="pyproject.toml", line=2, fix="fix it")
    assert isinstance(error, pytest.UsageError) and str(error) == "pytest-astro: pyproject.toml:2: bad (fix it)"
    print("before")
    assert fail("bad", fix="fix it") == 2
    assert fail("exists", status=1) == 1
    out, err = capsys.readouterr()
    assert out == "before\n"
    assert err == "pytest-astro: bad (fix it)\npytest-astro: exists\n"


def test_a_pytest_run_says_it_in_the_format(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.pytest-astro]\ntimeout = "soon"\n')
    (pytester.path / "dags").mkdir()
    result = pytester.runpytest("--astro-dags")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-astro: *timeout*cannot read 'soon' as seconds*"])


def test_the_commands_say_it_in_the_format(tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["ci", "init", "--provider", "github", "--strategy", "single", "--branches", "main,dev",
                 "--output", "-"]) == 2
    assert capsys.readouterr().err == "pytest-astro: --strategy single takes one branch (use --strategy multi)\n"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.pytest-astro\n")
    assert main(["parse"]) == 2
    assert capsys.readouterr().err.startswith(f"pytest-astro: {tmp_path / 'pyproject.toml'}: ")
    # the deploy gate's whole log is on stdout, its errors too
    assert main(["deploy", "check", "--suite-args", "'unbalanced"]) == 2
    assert capsys.readouterr().out == ("pytest-astro: --suite-args: No closing quotation in \"'unbalanced\" "
                                       "(balance the quotes)\n")
