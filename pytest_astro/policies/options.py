"""``[tool.pytest-astro.policies]``: which policies run, their options, and exemptions.

```toml
[tool.pytest-astro.policies]
select = ["DAG0", "DAG900"]          # codes or prefixes; default: the policies that are on by default
extend-select = ["DAG101", "TEAM"]   # added to the selection
ignore = ["DAG008"]                  # removed from it

[tool.pytest-astro.policies.retries]  # options, by name or code ([tool.pytest-astro.policies.DAG003])
min = 3

[[tool.pytest-astro.policies.exempt]]
dags = ["legacy_*"]                  # dag_id globs, and/or
files = ["dags/legacy/*.py"]         # file globs (relative to the project)
codes = ["DAG002", "DAG003"]         # or ["*"]
reason = "migrated by team X in Q3"  # required
```

Inline, on the DAG's line (or the comment line right above it, or its ``@dag`` decorator line):
``# pytest-astro: ignore[DAG002,DAG003] the reason``. An exemption without a reason is an error.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_astro.config import ConfigError

_RESERVED = {"select", "extend-select", "extend_select", "ignore", "exempt"}
INLINE = re.compile(r"#\s*pytest-astro:\s*ignore\[([^\]]*)\]\s*(.*)$")


@dataclass
class Exemption:
    codes: list[str]
    reason: str
    where: str  # "pyproject.toml:12" or "dags/etl.py:16"
    dags: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def covers(self, code: str, dag_id: str, file: str) -> bool:
        if not any(c == "*" or code.startswith(c) for c in self.codes):
            return False
        if self.dags and not any(fnmatch.fnmatchcase(dag_id, g) for g in self.dags):
            return False
        return not self.files or any(fnmatch.fnmatchcase(file, g) for g in self.files)


def _codes(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of codes, e.g. [\"DAG002\", \"DAG1\"]")
    out = []
    for item in value:
        for code in str(item).split(","):
            code = code.strip().upper()
            if code:
                if code != "*" and code != "ALL" and not re.fullmatch(r"[A-Z]+[0-9]*", code):
                    raise ConfigError(f"{where}: {code!r} is not a policy code or prefix; write e.g. DAG002 or DAG1")
                out.append("" if code in ("ALL", "*") else code)
    return out


def _line_of(text: str, pattern: str, nth: int) -> int | None:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if re.match(pattern, line.strip())]
    return hits[nth] if nth < len(hits) else (hits[-1] if hits else None)


@dataclass
class PolicyConfig:
    """The parsed ``[tool.pytest-astro.policies]`` table, checked against the known policies."""

    selected: list[Any]  # policy objects, in code order
    options: dict[str, dict[str, Any]]  # code -> merged options
    exemptions: list[Exemption]

    @classmethod
    def load(cls, table: dict, policies: list[Any], pyproject: Path) -> PolicyConfig:
        where = f"{pyproject} [tool.pytest-astro.policies]"
        try:
            text = pyproject.read_text(encoding="utf-8")
        except OSError:
            text = ""
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        by_code = {p.code: p for p in policies}
        by_name = {p.name: p for p in policies}
        known = ", ".join(sorted(by_code))

        def expand(codes: list[str], key: str) -> set[str]:
            out: set[str] = set()
            for code in codes:
                matched = {c for c in by_code if c.startswith(code)}
                if not matched:
                    raise ConfigError(f"{where} {key}: no policy has the code {code!r}; known codes: {known}")
                out |= matched
            return out

        if "select" in table:
            chosen = expand(_codes(table["select"], f"{where} select"), "select")
        else:
            chosen = {p.code for p in policies if getattr(p, "default", False)}
        for key in ("extend-select", "extend_select"):
            chosen |= expand(_codes(table.get(key), f"{where} {key}"), key)
        chosen -= expand(_codes(table.get("ignore"), f"{where} ignore"), "ignore")

        options: dict[str, dict[str, Any]] = {p.code: dict(getattr(p, "options", {}) or {}) for p in policies}
        for key, value in table.items():
            if key in _RESERVED or key in ("inspect",):
                continue
            policy = by_code.get(key.upper()) or by_name.get(key.replace("-", "_"))
            if policy is None:
                raise ConfigError(f"{where}: unknown key {key!r}; options go in a table named after a "
                                  f"policy's code or name (known codes: {known})")
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a table of options")
            for opt, v in value.items():
                name = opt.replace("-", "_")
                if name not in options[policy.code]:
                    accepted = ", ".join(sorted(options[policy.code])) or "none"
                    raise ConfigError(f"{where}.{key}: {policy.code} has no option {opt!r} (options: {accepted})")
                options[policy.code][name] = v

        exemptions = []
        raw = table.get("exempt") or []
        if isinstance(raw, dict):
            raw = [raw]
        for i, entry in enumerate(raw):
            line = _line_of(text, r"^\[\[tool\.pytest-astro\.policies\.exempt\]\]", i) or _line_of(text, r"^exempt\s*=", 0)
            at = f"{pyproject}:{line}" if line else f"{where} exempt[{i}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{at}: an exemption is a table with codes, dags and/or files, and reason")
            reason = str(entry.get("reason") or "").strip()
            if not reason:
                raise ConfigError(f"{at}: exemption without a reason; add reason = \"why these DAGs may break "
                                  "the policy\" (an exemption must say why)")
            codes = _codes(entry.get("codes", ["*"]), f"{at} codes") or ["*"]
            codes = ["*" if c == "" else c for c in codes]
            for code in codes:
                if code != "*" and not any(c.startswith(code) for c in by_code):
                    raise ConfigError(f"{at}: no policy has the code {code!r}; known codes: {known}")
            dags, files = entry.get("dags") or [], entry.get("files") or []
            if isinstance(dags, str):
                dags = [dags]
            if isinstance(files, str):
                files = [files]
            if not dags and not files:
                raise ConfigError(f"{at}: say which DAGs the exemption is for: dags = [\"dag_id glob\"] "
                                  "and/or files = [\"dags/path/*.py\"]")
            exemptions.append(Exemption(codes=codes, reason=reason, where=at, dags=list(dags), files=list(files)))
        selected = sorted((by_code[c] for c in chosen), key=lambda p: p.code)
        return cls(selected=selected, options=options, exemptions=exemptions)


@dataclass
class InlineExemption:
    codes: list[str]
    reason: str
    line: int
    error: str = ""


def inline_exemptions(lines: list[str], dag_line: int | None, extra_lines: list[int] = ()) -> list[InlineExemption]:
    """``# pytest-astro: ignore[...]`` comments that apply to the DAG created on ``dag_line``: on that
    line, on comment lines right above it, and on ``extra_lines`` (the ``@dag`` decorator)."""
    if not dag_line or not 1 <= dag_line <= len(lines):  # no line, or one the source does not have
        return []
    candidates = [dag_line, *extra_lines]
    above = dag_line - 1
    while above >= 1 and lines[above - 1].lstrip().startswith("#"):
        candidates.append(above)
        above -= 1
    out = []
    for n in candidates:
        if not 1 <= n <= len(lines):
            continue
        m = INLINE.search(lines[n - 1])
        if not m:
            continue
        codes = [c.strip().upper() for c in m.group(1).split(",") if c.strip()]
        reason = m.group(2).strip()
        error = ""
        if not codes:
            error = "names no code; write `# pytest-astro: ignore[DAG002] <reason>`"
        elif not reason:
            error = (f"has no reason; write `# pytest-astro: ignore[{','.join(codes)}] <why this DAG may "
                     "break the policy>`")
        out.append(InlineExemption(codes=codes, reason=reason, line=n, error=error))
    return out
