"""astro-project: the Astro project's own files are valid before they reach a deploy.

Checks ``.astro/config.yaml`` (YAML, types), ``airflow_settings.yaml`` (YAML, the connections /
pools / variables shapes and types, duplicate ``conn_id``/pool/variable names), the Dockerfile's
``FROM`` line (an Astro Runtime or Airflow image with a pinned version), every ``.airflowignore``
in the dags folder (each pattern compiles in the syntax the runtime uses: glob on Airflow 3,
regexp on 2) and ``requirements.txt`` (each line parses; no duplicates; Airflow not pinned).
Prints ``path:line: message``; warnings say ``warning:`` and do not fail the hook.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import yaml

from pytest_astro.config import ConfigError, find_project_root, load_settings
from pytest_astro.lint.config import airflow_major_from_image
from pytest_astro.precommit.requirements import parse_requirements
from pytest_astro.user_errors import fail

_CONN_KEYS = {"conn_id": str, "conn_type": str, "conn_host": str, "conn_schema": str,
              "conn_login": str,
              "conn_password": str, "conn_port": int, "conn_extra": (dict, str), "conn_uri": str,
              "conn_description": str}
_POOL_KEYS = {"pool_name": str, "pool_slot": int, "pool_description": str, "include_deferred": bool}
_VAR_KEYS = {"variable_name": str, "variable_value": (str, int, float, bool, dict, list),
             "variable_description": str}
_SECTIONS = {"connections": ("conn_id", _CONN_KEYS, ("conn_id",)),
             "pools": ("pool_name", _POOL_KEYS, ("pool_name",)),
             "variables": ("variable_name", _VAR_KEYS, ("variable_name",))}


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: Path, line: int, message: str) -> None:
        self.errors.append(f"{_rel(path)}:{line}: {message}")

    def warn(self, path: Path, line: int, message: str) -> None:
        self.warnings.append(f"{_rel(path)}:{line}: warning: {message}")


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _compose(path: Path, report: Report) -> yaml.Node | None:
    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        report.error(path, line, f"invalid YAML: {exc.problem or exc.context}; fix the syntax")
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        report.error(path, 1, f"cannot read YAML: {exc}")
    return None


def _scalar(node: yaml.Node):
    """The Python value of a node (SafeLoader semantics)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _type_name(expected) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    names = {str: "a string", int: "a whole number", dict: "a mapping", bool: "true/false",
             float: "a number",
             list: "a list"}
    return " or ".join(names[t] for t in types)


def _check_type(path: Path, report: Report, where: str, node: yaml.Node, expected) -> None:
    value = _scalar(node)
    if value is None:
        return
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        report.error(path, _line(node), f"{where} must be {_type_name(expected)}, got {value!r}")


def check_airflow_settings(path: Path, report: Report) -> None:
    root = _compose(path, report)
    if root is None:
        return
    if not isinstance(root, yaml.MappingNode):
        report.error(path, _line(root), "must be a mapping with an 'airflow:' key")
        return
    airflow = next((v for k, v in root.value if k.value == "airflow"), None)
    if airflow is None or (isinstance(airflow, yaml.ScalarNode)
                           and airflow.value in ("", "~", "null")):
        return
    if not isinstance(airflow, yaml.MappingNode):
        report.error(path, _line(airflow), "'airflow:' must be a mapping of connections, pools "
                                           "and variables")
        return
    for key_node, section in airflow.value:
        name = key_node.value
        if name not in _SECTIONS:
            report.error(path, _line(key_node), f"unknown section {name!r}; expected connections, "
                                                "pools or variables")
            continue
        id_key, keys, required = _SECTIONS[name]
        if isinstance(section, yaml.ScalarNode) and section.value in ("", "~", "null"):
            continue
        if not isinstance(section, yaml.SequenceNode):
            report.error(path, _line(section), f"{name} must be a list of mappings")
            continue
        seen: dict[str, int] = {}
        for item in section.value:
            if not isinstance(item, yaml.MappingNode):
                report.error(path, _line(item), f"each entry of {name} must be a mapping")
                continue
            fields = {k.value: (k, v) for k, v in item.value}
            for req in required:
                if req not in fields or _scalar(fields[req][1]) in (None, ""):
                    report.error(path, _line(item), f"{name} entry without {req}")
            for key, (knode, vnode) in fields.items():
                if key not in keys:
                    report.error(path, _line(knode), f"unknown key {key!r} in {name}; expected one "
                                                     f"of {', '.join(sorted(keys))}")
                    continue
                _check_type(path, report, key, vnode, keys[key])
                if key == "conn_extra" and isinstance(_scalar(vnode),
                                                      str) and _scalar(vnode).strip():
                    try:
                        json.loads(_scalar(vnode))
                    except ValueError:
                        report.error(path, _line(vnode), "conn_extra must be a mapping or a JSON "
                                                         "object string")
            if id_key in fields:
                ident = str(_scalar(fields[id_key][1]))
                line = _line(fields[id_key][0])
                if ident in seen:
                    report.error(path, line, f"duplicate {id_key} {ident!r} (first on line "
                                             f"{seen[ident]}); the later one silently replaces it")
                else:
                    seen[ident] = line


def check_astro_config(path: Path, report: Report) -> None:
    root = _compose(path, report)
    if root is None:
        return
    if isinstance(root, yaml.ScalarNode) and root.value in ("", "~", "null"):
        return
    if not isinstance(root, yaml.MappingNode):
        report.error(path, _line(root), "must be a mapping (e.g. 'project: {name: my-project}')")
        return

    def walk(node: yaml.Node, trail: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for knode, vnode in node.value:
            key = f"{trail}.{knode.value}" if trail else knode.value
            if knode.value == "port":
                value = _scalar(vnode)
                try:
                    port = int(value)
                except (TypeError, ValueError):
                    port = -1
                if not 0 < port < 65536:
                    report.error(path, _line(vnode), f"{key} must be a port number (1-65535), got "
                                                     f"{value!r}")
            elif key == "project.name" and not isinstance(_scalar(vnode), str):
                report.error(path, _line(vnode), "project.name must be a string, got "
                                                 f"{_scalar(vnode)!r}")
            elif isinstance(vnode, yaml.MappingNode):
                walk(vnode, key)
            elif trail == "" and not isinstance(vnode, yaml.MappingNode):
                report.error(path, _line(vnode), f"{key} must be a mapping of settings")

    walk(root, "")


_ASTRO_RUNTIME = re.compile(r"^(?:.*/)?(?:astro-runtime|runtime)$")
_TAG = re.compile(r"^\d+\.\d+(?:[.-]\d+)*(?:-[\w.-]+)?$")


def check_dockerfile(path: Path, report: Report) -> int | None:
    """Check the FROM line; return the Airflow major version it implies (None: unknown)."""
    if not path.is_file():
        report.error(path, 1, "no Dockerfile: an Astro project needs one with 'FROM <Astro "
                              "Runtime image>'")
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines, 1):
        m = re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)", line, re.IGNORECASE)
        if not m:
            continue
        image = m.group(1)
        name = image.partition("@")[0]
        repo, _, tag = name.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
        if "$" in image:
            report.warn(path, lineno, f"FROM {image} uses a build argument; the runtime version "
                                      "cannot be checked")
            return None
        if not tag or tag == "latest":
            report.error(path, lineno, f"FROM {image}: pin the runtime version (e.g. "
                                       "astrocrpublic.azurecr.io/runtime:3.1-1), not "
                                       f"{'latest' if tag else 'no tag'}")
            return None
        if _ASTRO_RUNTIME.match(repo) or repo.endswith("apache/airflow"):
            if not _TAG.match(tag):
                report.error(path, lineno, f"FROM {image}: {tag!r} is not a runtime version tag "
                                           f"(e.g. 3.1-1 or 12.6.0)")
            return airflow_major_from_image(image)
        report.warn(path, lineno, f"FROM {image} is not an Astro Runtime image; pytest-astro "
                                  "assumes Airflow 3")
        return None
    report.error(path, 1, "no FROM line; write e.g. 'FROM astrocrpublic.azurecr.io/runtime:3.1-1'")
    return None


_LOOKS_REGEXP = re.compile(r"\.\*|\^|\$|\\[.dws]|\.\+")


def check_airflowignore(path: Path, syntax: str, report: Report) -> None:
    from pathspec.patterns import GitWildMatchPattern

    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n"),
                                  1):
        pattern = re.sub(r"\s*#.*", "", line).strip()
        if not pattern:
            continue
        if syntax == "regexp":
            try:
                re.compile(pattern)
            except re.error as exc:
                report.error(path, lineno, f"invalid regexp {pattern!r} ({exc}); Airflow skips "
                                           "this line")
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # newer pathspec renamed it
                    GitWildMatchPattern(pattern)
            except Exception as exc:  # pathspec raises several types for bad globs
                report.error(path, lineno, f"invalid glob {pattern!r} ({exc})")
                continue
            if _LOOKS_REGEXP.search(pattern):
                report.warn(path, lineno, f"{pattern!r} looks like a regexp, but this project's "
                                          ".airflowignore syntax is glob (Airflow 3's default); "
                                          "write a glob such as 'scratch/' or set "
                                          "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=regexp")


def check_requirements(path: Path, report: Report) -> None:
    reqs, errors = parse_requirements(path)
    for line, message in errors:
        report.error(path, line, message)
    seen: dict[str, int] = {}
    for req in reqs:
        if req.name in seen:
            report.error(path, req.line, f"{req.name} is listed twice (first on line "
                                         f"{seen[req.name]}); keep one")
        seen.setdefault(req.name, req.line)
        if req.name in ("apache-airflow", "apache-airflow-core"):
            report.warn(path, req.line, f"{req.text!r}: the runtime image provides Airflow; a "
                                        "requirement on it can make pip replace the image's "
                                        "Airflow. Change the runtime version instead")


def check_project(root: Path) -> Report:
    report = Report()
    settings = load_settings(root)
    major = check_dockerfile(root / "Dockerfile", report)
    for rel in (".astro/config.yaml", "airflow_settings.yaml"):
        path = root / rel
        if path.is_file():
            (check_astro_config if rel.startswith(".astro") else check_airflow_settings)(path,
                                                                                         report)
    syntax = (settings.ignore_file_syntax
              or os.environ.get("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "").lower()
              or ("regexp" if major == 2 else "glob"))
    if settings.dags_path.is_dir():
        for ignore in sorted(settings.dags_path.rglob(".airflowignore")):
            check_airflowignore(ignore, syntax, report)
    if (root / "requirements.txt").is_file():
        check_requirements(root / "requirements.txt", report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-astro-project",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("filenames", nargs="*", help="ignored: the whole project is checked "
                                                     "(pre-commit may pass them)")
    parser.add_argument("--project", metavar="DIR", help="project root (default: found from the "
                                                         "current folder)")
    args = parser.parse_args(argv)
    try:
        root = Path(args.project).resolve() if args.project else find_project_root(Path.cwd())
        report = check_project(root)
    except ConfigError as exc:
        return fail(exc)
    for line in report.errors + report.warnings:
        print(line)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
