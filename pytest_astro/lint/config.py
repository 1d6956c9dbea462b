"""Lint settings: ``[tool.pytest-astro.lint]`` in pyproject.toml, then ``--select``/``--ignore``.

```toml
[tool.pytest-astro.lint]
select = ["AST"]                 # codes or prefixes (default: every rule)
ignore = ["AST006"]
extend-heavy-imports = ["great_expectations"]   # or heavy-imports = [...] to replace the list
target-airflow = 3               # default: from the Dockerfile's FROM image (Astro Runtime 3.x -> 3)
per-file-ignores = { "include/legacy/*.py" = ["AST101"] }
exclude = ["dags/vendored/*"]
```
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_astro.project import airflow_major_from_image  # noqa: F401 (re-exported)
from pytest_astro.config import ConfigError
from pytest_astro.lint.core import Rule
from pytest_astro.lint.rules import ALL_RULES
from pytest_astro.lint.rules.dag import DEFAULT_HEAVY_IMPORTS

_CODE = re.compile(r"^[A-Z]+[0-9]*$")


def split_codes(values: Iterable[str] | str | None, source: str) -> tuple[str, ...]:
    """``["AST001,AST1", "AST3"]`` -> ``("AST001", "AST1", "AST3")``; rejects what is not a code."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        for code in str(value).split(","):
            code = code.strip()
            if not code:
                continue
            code = code.upper()
            if code == "ALL":
                code = "AST"
            if not _CODE.match(code):
                raise ConfigError(f"{source}: {code!r} is not a rule code or prefix; write e.g. AST001 or AST3")
            out.append(code)
    return tuple(out)


@dataclass(frozen=True)
class LintConfig:
    select: tuple[str, ...] = ("AST",)
    ignore: tuple[str, ...] = ()
    heavy_imports: frozenset[str] = DEFAULT_HEAVY_IMPORTS
    target_airflow: int | None = None
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = ()
    explicit: tuple[str, ...] = field(default=())  # select entries given on the command line

    def rules(self, relpath: str = "") -> list[type[Rule]]:
        """The rules that run on the file at ``relpath`` (relative to the project root)."""
        ignore = list(self.ignore)
        for pattern, codes in self.per_file_ignores:
            if fnmatch.fnmatch(relpath, pattern):
                ignore += codes
        return [rule for rule in ALL_RULES if self.enabled(rule, ignore)]

    def enabled(self, rule: type[Rule], ignore: Iterable[str] | None = None) -> bool:
        code = rule.CODE
        selected = [p for p in self.select if code.startswith(p)]
        if not selected:
            return False
        best = max(len(p) for p in selected)
        ignored = [p for p in (self.ignore if ignore is None else ignore) if code.startswith(p)]
        if ignored and max(len(p) for p in ignored) >= best:
            return False
        if rule.AIRFLOW3 and self.target_airflow != 3:
            # The target version wins over any selection (AST, AST3 and AST302 alike): the
            # migration rules' advice is only true on Airflow 3. `--target-airflow 3` asks for it.
            return False
        return True

    def is_excluded(self, relpath: str) -> bool:
        return any(fnmatch.fnmatch(relpath, pattern) for pattern in self.exclude)

    def fingerprint(self, relpath: str) -> str:
        """What, besides the source, decides this file's findings (part of the cache key)."""
        codes = ",".join(r.CODE for r in self.rules(relpath))
        return f"{codes}|{','.join(sorted(self.heavy_imports))}|{self.target_airflow}"


def _list(table: Mapping, key: str, where: str) -> list[str] | None:
    value = table.get(key, table.get(key.replace("-", "_")))
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, got {value!r}")
    return value


def load_lint_config(table: Mapping, runtime_image: str | None, where: str,
                     select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
                     target_airflow: int | None = None) -> LintConfig:
    """Build the config from the ``lint`` table, the project's runtime image and CLI flags
    (``target_airflow``: ``--target-airflow``, which wins over both)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [tool.pytest-astro.lint] must be a table")
    cli_select = split_codes(list(select or ()), "--select")
    cfg_select = split_codes(_list(table, "select", where), f"{where}: select") or ("AST",)
    cfg_ignore = split_codes(_list(table, "ignore", where), f"{where}: ignore")
    heavy = _list(table, "heavy-imports", where)
    heavy_set = frozenset(heavy) if heavy is not None else DEFAULT_HEAVY_IMPORTS
    heavy_set |= frozenset(_list(table, "extend-heavy-imports", where) or ())
    target = target_airflow if target_airflow is not None else table.get("target-airflow", table.get("target_airflow"))
    if target is None:
        target = airflow_major_from_image(runtime_image)
    elif target not in (2, 3, "2", "3"):
        raise ConfigError(f"{where}: target-airflow must be 2 or 3, got {target!r}")
    pfi = table.get("per-file-ignores", table.get("per_file_ignores", {}))
    if not isinstance(pfi, Mapping):
        raise ConfigError(f"{where}: per-file-ignores must be a table of glob = [codes]")
    per_file = tuple((str(glob), split_codes(codes, f"{where}: per-file-ignores {glob!r}")) for glob, codes in pfi.items())
    return LintConfig(
        select=cli_select or cfg_select,
        ignore=cfg_ignore + split_codes(list(ignore or ()), "--ignore"),
        heavy_imports=heavy_set,
        target_airflow=int(target) if target is not None else None,
        per_file_ignores=per_file,
        exclude=tuple(_list(table, "exclude", where) or ()),
        explicit=cli_select,
    )


def project_lint_config(root: Path, select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
                        target_airflow: int | None = None) -> tuple[LintConfig, object]:
    """(LintConfig, Settings) of the project at ``root``."""
    from pytest_astro.config import load_settings
    from pytest_astro.project import Project

    settings = load_settings(root)
    image = Project(settings).runtime_image
    config = load_lint_config(settings.table.get("lint", {}), image,
                              f"{root / 'pyproject.toml'} [tool.pytest-astro.lint]", select, ignore, target_airflow)
    return config, settings
