"""Regenerate pytest_astro/lint/rules/airflow3_names.py (not a test module; run it by hand).

    python tests/lint_names_gen.py AIRFLOW2_SITE_PACKAGES AIRFLOW3_PYTHON RUFF

1. Lists every public top-level name of every module of the Airflow 2 wheel (and the names of its
   deprecated-module maps), and writes one candidate file per module that imports and uses each.
2. Runs ``ruff check --select AIR301,AIR302,AIR311,AIR312 --preview`` on them: the names ruff
   says Airflow 3 removed or moved, and the replacement its fix title names.
3. Imports each name, and each replacement, with AIRFLOW3_PYTHON (Airflow 3 and the standard
   provider installed): a name that still imports is "moved" (deprecated), one that fails is
   "removed"; a replacement that does not import there (and whose provider is installed there)
   is dropped, so no fix ever writes an import that does not exist.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "pytest_astro" / "lint" / "rules" / "airflow3_names.py"
_SKIP = {"tests", "migrations", "example_dags", "www", "api_connexion", "cli", "_vendor", "providers"}

_CHECK = r'''
import importlib, json, os, sys, tempfile, warnings
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp()
warnings.simplefilter("ignore")
def ok(q):
    mod, _, name = q.rpartition(".")
    try:
        return hasattr(importlib.import_module(mod), name)
    except BaseException:
        return False
print(json.dumps({q: ok(q) for q in json.load(sys.stdin)}))
'''


def _names(path: Path) -> set:
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return set()
    names: set = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):  # __deprecated_classes = {"submodule": {"Name": "new.path"}}
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                isinstance(t, ast.Name) and "deprecat" in t.id.lower() for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Dict):
                    names |= {("sub", key.value, k.value) for k in value.keys if isinstance(k, ast.Constant)}
    return names


def candidates(site: Path, folder: Path) -> None:
    for i, path in enumerate(sorted((site / "airflow").rglob("*.py"))):
        parts = list(path.relative_to(site).with_suffix("").parts)
        if _SKIP & set(parts):
            continue
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        lines = []
        for j, entry in enumerate(sorted(_names(path), key=str)):
            mod, name = (f"{module}.{entry[1]}", entry[2]) if isinstance(entry, tuple) else (module, entry)
            if name.isidentifier() and not name.startswith("_"):
                lines.append(f"from {mod} import {name} as _a{j}\n_a{j}\n")
        if lines:
            (folder / f"c{i}.py").write_text("import airflow\n" + "".join(lines))


def ruff_rows(ruff: str, folder: Path) -> dict[str, tuple[str, tuple | None]]:
    proc = subprocess.run([ruff, "check", "--select", "AIR301,AIR302,AIR311,AIR312", "--preview", "--isolated",
                           "--no-cache", "--output-format", "json", str(folder)], capture_output=True, text=True)
    rows = {}
    for diag in json.loads(proc.stdout):
        qualified = re.findall(r"`([^`]*)`", diag["message"])[0]
        title = (diag.get("fix") or {}).get("message") or ""
        ticks = re.findall(r"`([^`]*)`", title)
        replacement = None
        if title.startswith("Install"):
            provider = ticks[0].replace("apache-airflow-providers-", "").split(">=")[0]
            replacement = (ticks[2], ticks[1], provider)
        elif title.startswith("Use") or "has been moved to" in title:
            replacement = (ticks[1], ticks[0], "")
        rows[qualified] = (diag["code"], replacement)
    return rows


def imports_on_airflow3(python: str, names: list[str]) -> dict[str, bool]:
    proc = subprocess.run([python, "-c", _CHECK], input=json.dumps(names), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(site: str, python3: str, ruff: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        candidates(Path(site), Path(tmp))
        rows = ruff_rows(ruff, Path(tmp))
    targets = sorted({f"{r[0]}.{r[1]}" for _, r in rows.values() if r})
    works = imports_on_airflow3(python3, sorted(rows) + targets)
    # what AIRFLOW3_PYTHON has (Airflow 3 requires these providers): a replacement there must import
    installed = {"", "standard", "common-sql", "common-io", "common-compat", "smtp"}
    removed, moved = {}, {}
    for qualified, (_, replacement) in sorted(rows.items()):
        module, _, name = qualified.rpartition(".")
        if replacement and replacement[2] in installed and not works[f"{replacement[0]}.{replacement[1]}"]:
            replacement = None
        (moved if works[qualified] else removed)[(module, name)] = replacement
    body = "\n".join(f"    ({m!r}, {n!r}): {r!r}," for (m, n), r in sorted(removed.items()))
    body2 = "\n".join(f"    ({m!r}, {n!r}): {r!r}," for (m, n), r in sorted(moved.items()))
    OUT.write_text(HEADER + "\nREMOVED: dict[tuple[str, str], tuple[str, str, str] | None] = {\n" + body
                   + "\n}\n\nMOVED: dict[tuple[str, str], tuple[str, str, str] | None] = {\n" + body2 + "\n}\n")
    print(f"{OUT}: {len(removed)} removed, {len(moved)} moved")


HEADER = '''"""Airflow 2 import paths that Airflow 3 removed or moved: data for AST301/AST302.

A data module, not code: its length is the number of names (about 750), so the house limit on
module size does not apply to it; the rules that read it are in airflow3.py.

Generated by ``python tests/lint_names_gen.py`` from the Airflow 2.11 wheel, ruff's AIR301/AIR302/
AIR311/AIR312 rules and imports on Airflow 3.3 (see that script); edit the script, not this file.
``REMOVED``: the import fails on Airflow 3.3. ``MOVED``: it still imports there, deprecated.
Each entry: (module, name) -> (new module, new name, provider package or "" for Airflow itself and
the Task SDK), or None when there is no replacement we could check.
"""
'''

if __name__ == "__main__":
    main(*sys.argv[1:4])
