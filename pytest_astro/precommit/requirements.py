"""astro-requirements: every third-party import in dags/, include/ and plugins/ is provided.

An import is provided by the standard library, by the project itself (its folders are on
``sys.path`` in the Astro Runtime), by Airflow and its dependencies, by the providers the Astro
Runtime image ships, or by a requirement in ``requirements.txt``. Anything else fails the deploy
with ``ModuleNotFoundError``: it is reported as ``path:line: message``. A requirement that no file
imports is a warning (some are used indirectly, e.g. a database driver a provider loads).

Which import names a requirement provides is read from the installed distributions' metadata
(``importlib.metadata.packages_distributions``) when the package is installed where the hook
runs, else from a table of well-known names and the conventions of namespace packages
(``google-cloud-storage`` -> ``google.cloud.storage``, ``apache-airflow-providers-amazon`` ->
``airflow.providers.amazon``), else from the normalized name (``my-lib`` -> ``my_lib``).

Settings, in ``[tool.pytest-astro.requirements]``: ``provided = ["corp_lib"]`` (import names
the image provides some other way), ``ignore-unused = ["psycopg2-binary"]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pytest_astro.config import ConfigError, find_project_root, load_settings
from pytest_astro.lint.config import airflow_major_from_image
from pytest_astro.user_errors import fail

# Import names of Airflow 3 and its dependency closure (`apache-airflow` 3.x without extras),
# plus the Airflow 2 web stack; the Astro Runtime image has all of them.
AIRFLOW_CORE = frozenset("""
a2wsgi aiosmtplib aiosqlite airflow alembic annotated_doc annotated_types anyio argcomplete arrow
asgiref
attr attrs babel cachetools cadwyn certifi cffi charset_normalizer click colorlog cron_descriptor
croniter
cryptography daemon dateutil deprecated dill fastapi fsspec google.protobuf google.api google.rpc
greenback greenlet grpc h11 httpcore httpx idna importlib_metadata isoduration itsdangerous jinja2
jsonschema jsonschema_specifications jwt lazy_object_proxy linkify_it lockfile mako markdown_it
markupsafe
mdurl methodtools more_itertools msgspec natsort opentelemetry outcome packaging pathlib_abc
pathspec
pendulum pluggy psutil pycparser pydantic pydantic_core pygments pygtrie referencing requests rich
rich_argparse rpds setproctitle six slugify sniffio sqlalchemy sqlparse starlette structlog svcs
tabulate
tenacity termcolor text_unidecode typing_extensions typing_inspection tzdata upath urllib3 uuid6
uvicorn
wirerope wrapt yaml zipp
flask flask_appbuilder flask_login flask_session flask_wtf flask_caching flask_limiter werkzeug
wtforms
marshmallow marshmallow_sqlalchemy gunicorn connexion sqlalchemy_jsonfield sqlalchemy_utils
""".split())

# Providers in the Astro Runtime image (docs: "Astro Runtime provider package reference").
RUNTIME3_PROVIDERS = frozenset({"celery", "common.compat", "common.io", "common.sql",
                                "elasticsearch",
                                "openlineage", "smtp", "standard"})
# Airflow 2 pre-installs these with apache-airflow itself; Runtime 4-13 add the rest.
RUNTIME2_PROVIDERS = RUNTIME3_PROVIDERS | {"fab", "ftp", "http", "imap", "sqlite",
                                           "cncf.kubernetes", "datadog",
                                           "microsoft.azure", "postgres", "redis", "amazon",
                                           "google"}

# Distribution -> import names, where they differ from the distribution's name.
KNOWN = {
    "scikit-learn": ["sklearn"], "pyyaml": ["yaml"], "pillow": ["PIL"], "opencv-python": ["cv2"],
    "opencv-python-headless": ["cv2"], "beautifulsoup4": ["bs4"], "python-dateutil": ["dateutil"],
    "pyjwt": ["jwt"], "python-dotenv": ["dotenv"], "psycopg2-binary": ["psycopg2"],
    "psycopg-binary": ["psycopg"],
    "psycopg2": ["psycopg2"], "mysqlclient": ["MySQLdb"], "pymysql": ["pymysql"],
    "snowflake-connector-python": ["snowflake.connector"],
    "snowflake-snowpark-python": ["snowflake.snowpark"],
    "protobuf": ["google.protobuf"], "pymongo": ["pymongo", "bson", "gridfs"],
    "attrs": ["attr", "attrs"],
    "python-slugify": ["slugify"], "pycryptodome": ["Crypto"], "sentry-sdk": ["sentry_sdk"],
    "slack-sdk": ["slack_sdk"], "databricks-sdk": ["databricks.sdk"],
    "databricks-sql-connector": ["databricks.sql"],
    "apache-beam": ["apache_beam"], "google-api-python-client": ["googleapiclient"],
    "google-auth": ["google.auth", "google.oauth2"], "astronomer-cosmos": ["cosmos"],
    "dbt-core": ["dbt"],
    "great-expectations": ["great_expectations"], "msal": ["msal"], "pyarrow": ["pyarrow"],
    "typing-extensions": ["typing_extensions"], "ruamel.yaml": ["ruamel.yaml"],
    "pywin32": ["win32api"],
    "tensorflow-cpu": ["tensorflow"], "torch": ["torch"], "faiss-cpu": ["faiss"],
    "pyspark": ["pyspark"],
    "delta-spark": ["delta"], "azure-identity": ["azure.identity"], "jaydebeapi": ["jaydebeapi"],
}
_NAMESPACES = ("google-cloud-", "azure-", "google-ads", "opentelemetry-")


@dataclass(frozen=True)
class Req:
    line: int
    name: str  # canonical
    text: str


class RequirementsError(Exception):
    pass


def parse_requirements(path: Path) -> tuple[list[Req], list[tuple[int, str]]]:
    """Requirements of a requirements.txt and its syntax errors as (line, message)."""
    reqs: list[Req] = []
    errors: list[tuple[int, str]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return [], [(1, "not valid UTF-8; save it as UTF-8")]
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = lineno
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        logical.append((start, pending + raw))
        pending = ""
    if pending:
        logical.append((start, pending))
    for lineno, line in logical:
        stripped = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("-"):
            continue  # pip options (-r, -c, --index-url, -e ...): not requirements we can map
        if "://" in stripped and "@" not in stripped:
            errors.append((lineno, f"{stripped!r}: a bare URL has no package name; write 'name @ "
                                   f"{stripped}'"))
            continue
        spec = stripped.split(" --hash", 1)[0].strip()
        try:
            req = Requirement(spec)
        except InvalidRequirement as exc:
            errors.append((lineno, f"invalid requirement {spec!r}: {str(exc).splitlines()[0]}"))
            continue
        reqs.append(Req(lineno, canonicalize_name(req.name), spec))
    return reqs, errors


@lru_cache(maxsize=1)
def _installed_import_names() -> dict[str, list[str]]:
    """canonical distribution -> top-level import names, for what is installed where we run."""
    out: dict[str, list[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        for dist in dists:
            out.setdefault(canonicalize_name(dist), []).append(module)
    return out


def import_names(dist: str) -> list[str]:
    """Dotted import prefixes that the distribution ``dist`` (canonical name) provides."""
    if dist.startswith("apache-airflow-providers-"):
        return ["airflow.providers." + dist[len("apache-airflow-providers-"):].replace("-", ".")]
    if dist in KNOWN:
        return KNOWN[dist]
    names = list(_installed_import_names().get(dist, []))
    if dist.startswith(_NAMESPACES):
        names.append(dist.replace("-", "."))
    names.append(dist.replace("-", "_").replace(".", "_"))
    return names


def _covers(prefix: str, module: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@dataclass
class ImportSite:
    path: Path
    line: int
    module: str


def read_imports(path: Path) -> list[ImportSite]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []  # astro-dag-lint / astro-dag-parse report broken files
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            sites += [ImportSite(path, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            sites.append(ImportSite(path, node.lineno, node.module))
    return sites


def local_names(root: Path, folders: Iterable[Path]) -> set[str]:
    """Top-level module names the project itself provides (its root, dags/ and plugins/ are on
    sys.path)."""
    names: set[str] = set()
    for folder in (root, *folders):
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if child.is_dir() and not child.name.startswith("."):
                names.add(child.name)
            elif child.suffix == ".py":
                names.add(child.stem)
    return names


def _project_files(folders: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            files += [p for p in sorted(folder.rglob("*.py")) if "__pycache__" not in p.parts]
    return files


def check_project(root: Path, only: set[Path] | None,
                  requirements: Path | None = None) -> tuple[list[str], list[str], int]:
    """(errors, warnings, exit status) for the project at ``root``.

    ``only``: report missing imports only in these files (None: every file, and unused
    requirements).
    """
    settings = load_settings(root)
    table = settings.table.get("requirements", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{root / 'pyproject.toml'}: [tool.pytest-astro.requirements] must be a "
                          "table")
    from pytest_astro.project import Project

    major = airflow_major_from_image(Project(settings).runtime_image) or 3
    folders = [settings.dags_path, root / "include", settings.plugins_path]
    req_path = requirements or root / "requirements.txt"
    reqs, syntax = parse_requirements(req_path) if req_path.is_file() else ([], [])
    rel_req = _rel(req_path)
    errors = [f"{rel_req}:{line}: {message}" for line, message in syntax]
    provided_by: dict[str, Req] = {}
    for req in reqs:
        for name in import_names(req.name):
            provided_by.setdefault(name, req)
    extra = set(table.get("provided", []))
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    local = local_names(root, [settings.dags_path, settings.plugins_path])
    providers = RUNTIME3_PROVIDERS if major >= 3 else RUNTIME2_PROVIDERS
    used: set[Req] = set()
    for path in _project_files(folders):
        for site in read_imports(path):
            module, top = site.module, site.module.split(".")[0]
            if top in stdlib or top in local or any(_covers(p, module) for p in extra):
                continue
            req = next((r for prefix, r in provided_by.items() if _covers(prefix, module)), None)
            if req is not None:
                used.add(req)
                continue
            if module.startswith("airflow.providers."):
                parts = module.split(".")
                if any(_covers("airflow.providers." + p, module)
                       for p in providers) or len(parts) < 3:
                    continue
                dist = _provider_dist(module)
                hint = f"add {dist} to {rel_req} (the Astro Runtime image does not include it)"
            elif any(_covers(p, module) for p in AIRFLOW_CORE):
                continue
            else:
                hint = f"add the package that provides it to {rel_req}"
            if only is None or path.resolve() in only:
                errors.append(f"{_rel(path)}:{site.line}: '{module}' is imported but nothing "
                              f"provides it (requirements, Airflow, the runtime image); {hint}")
    warnings: list[str] = []
    if only is None:
        ignore_unused = {canonicalize_name(n) for n in table.get("ignore-unused", [])}
        for req in reqs:
            if (req not in used and req.name not in ignore_unused
                and req.name not in ("apache-airflow",)):
                warnings.append(f"{rel_req}:{req.line}: warning: {req.text!r} is not imported by "
                                "any file in dags/, include/ or plugins/ (fine if a provider or "
                                "tool uses it; else remove it, or list it in ignore-unused)")
    return errors, warnings, 1 if errors else 0


def _provider_dist(module: str) -> str:
    parts = module.split(".")[2:]
    # common.sql, microsoft.azure, cncf.kubernetes, apache.spark: two-part provider ids
    two_part = (["common"], ["microsoft"], ["cncf"], ["apache"], ["dbt"], ["atlassian"])
    parts = parts[:2] if parts[:1] in two_part else parts[:1]
    return "apache-airflow-providers-" + "-".join(parts)


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-astro-requirements",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("filenames", nargs="*", help="changed files (pre-commit passes them)")
    parser.add_argument("--requirements", metavar="PATH", help="requirements file (default: "
                                                               "requirements.txt of the project)")
    args = parser.parse_args(argv)
    files = [Path(f) for f in args.filenames]
    req_changed = not files or any(f.name == "requirements.txt" or f.name == "pyproject.toml"
                                   for f in files)
    roots: dict[Path, set[Path]] = {}
    for f in files or [Path.cwd()]:
        try:
            root = find_project_root(f.resolve().parent if f.is_file() or not f.exists() else f)
        except ConfigError as exc:  # a pyproject.toml on the way up that is not TOML
            return fail(exc)
        roots.setdefault(root, set()).add(f.resolve())
    status = 0
    for root, given in sorted(roots.items()):
        try:
            errors, warnings, code = check_project(
                root, None if req_changed else given,
                Path(args.requirements) if args.requirements else None)
        except ConfigError as exc:
            return fail(exc)
        for line in errors + warnings:
            print(line)
        status = max(status, code)
    return status


if __name__ == "__main__":
    sys.exit(main())
