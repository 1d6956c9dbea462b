"""The Astro project on disk: its folders and which files Airflow would parse as DAG files.

Discovery follows Airflow's own rules (``airflow.utils.file.find_dag_file_paths``): walk the dags
folder, honour ``.airflowignore`` files (glob or regexp syntax, patterns inherited by
subfolders), keep ``.py`` files and zip archives, and in safe mode keep only files whose bytes
mention ``airflow`` and ``dag`` (Airflow 3 also accepts ``asset``). No Airflow import needed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import metadata
from pathlib import Path

from pytest_astro.config import ConfigError, Settings


@lru_cache(maxsize=1)
def _glob_pattern_class():
    """pathspec's gitignore pattern, imported only for a project with an .airflowignore."""
    # pathspec >= 1.0 (GitWildMatchPattern, which Airflow uses, is this class under its old name)
    try:
        from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern
    except ImportError:  # pragma: no cover - pathspec < 1.0
        from pathspec.patterns import GitWildMatchPattern as GitIgnoreSpecPattern
    return GitIgnoreSpecPattern


IGNORE_FILE = ".airflowignore"


@lru_cache(maxsize=1)
def airflow_version() -> str | None:
    """The installed Airflow's version, read from package metadata (Airflow is not imported).

    Cached, and read from the ``Version:`` header alone: ``metadata.version()`` parses the whole
    METADATA file with the email package, and Airflow's is large."""
    for name in ("apache-airflow", "apache-airflow-core"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        headers = (dist.read_text("METADATA") or dist.read_text("PKG-INFO")
                   or "").partition("\n\n")[0]
        for line in headers.splitlines():
            if line.startswith("Version:"):
                return line[len("Version:"):].strip()
        return dist.version
    return None


def airflow_major() -> int:
    version = airflow_version() or "3"
    try:
        return int(version.split(".")[0])
    except ValueError:  # pragma: no cover
        return 3


def airflow_major_from_image(image: str | None) -> int | None:
    """Airflow major version of a Dockerfile ``FROM`` image, when it can be told from the tag.

    Astro Runtime 3.x runs Airflow 3; Runtime 4-13 (``quay.io/astronomer/astro-runtime:12.6.0``) run
    Airflow 2; ``apache/airflow:3.0.2`` says it directly.
    """
    if not image or ":" not in image.rsplit("/", 1)[-1]:
        return None
    repo, tag = image.rsplit(":", 1)
    m = re.match(r"(\d+)", tag)
    if not m:
        return None
    major = int(m.group(1))
    if repo.endswith("apache/airflow"):
        return major
    if "runtime" in repo.rsplit("/", 1)[-1]:
        return 3 if major == 3 else 2
    return None


def might_contain_dag(path: Path, major: int, data: bytes | None = None) -> bool:
    """Airflow's default "might contain a DAG" heuristic (safe mode); ``data``: the file's bytes,
    when already read."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError:
            return False
    # is_zipfile looks for the end-of-central-directory record in the last 64 KiB + 22 bytes: a
    # file without its signature there is not a zip (the check is then a substring search)
    if b"PK\x05\x06" in data[-(65536 + 22):] and zipfile.is_zipfile(io.BytesIO(data)):
        return True
    content = data.lower()
    if b"airflow" not in content:
        return False
    return b"dag" in content or (major >= 3 and b"asset" in content)


class _Rule:
    """One line of an .airflowignore file."""

    def __init__(self, pattern: str, syntax: str, base_dir: Path, ignore_file: Path):
        self.syntax = syntax
        self.base_dir = base_dir
        if syntax == "regexp":
            self.regex = re.compile(pattern)
        else:
            anchored = pattern.startswith("/") or "/" in pattern.rstrip("/")
            self.relative_to = ignore_file.parent if anchored else None
            raw = pattern.lstrip("!").rstrip()
            self.dir_only = raw != raw.rstrip("/")
            self.glob = _glob_pattern_class()(pattern)

    def verdict(self, path: Path, is_dir: bool) -> bool | None:
        """True: ignore; False: re-include (a ``!`` glob); None: the rule does not apply."""
        if self.syntax == "regexp":
            return True if self.regex.search(str(path.relative_to(self.base_dir))) else None
        if self.dir_only and not is_dir:
            return None
        rel = path.relative_to(self.relative_to).as_posix() if self.relative_to else path.name
        if is_dir:
            rel += "/"
        if self.glob.include is not None and self.glob.match_file(rel) is not None:
            return self.glob.include
        return None


def _ignored(path: Path, rules: list[_Rule], is_dir: bool) -> bool:
    matched = False
    for rule in rules:
        verdict = rule.verdict(path, is_dir)
        if verdict is not None:
            matched = verdict
            if rule.syntax == "regexp":
                return True
    return matched


def _read_rules(ignore_file: Path, syntax: str, base_dir: Path) -> list[_Rule]:
    rules = []
    for lineno, line in enumerate(ignore_file.read_text(encoding="utf-8").split("\n"), 1):
        pattern = re.sub(r"\s*#.*", "", line)
        if not pattern or (syntax == "glob" and pattern.strip() == "/"):
            continue
        try:
            rules.append(_Rule(pattern, syntax, base_dir, ignore_file))
        except re.error as exc:
            # Airflow logs a warning and skips the line; we do the same, but say where.
            import warnings

            warnings.warn(f"{ignore_file}:{lineno}: invalid regexp {pattern!r} ignored "
                          f"({exc})", stacklevel=2)
    return rules


@dataclass
class Project:
    """An Astro project (the layout ``astro dev init`` creates)."""

    settings: Settings
    # per-run memos (see real(), relative()); content_digests: SHA-256 of the DAG files read during
    # discovery, keyed by the path as found, handed once to the parse cache (take_content_digests)
    _relative: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    _real: dict[str, Path] = field(default_factory=dict, init=False, repr=False, compare=False)
    _real_folders: dict[str, str] = field(default_factory=dict, init=False, repr=False,
                                          compare=False)
    content_digests: dict[Path, str] = field(default_factory=dict, init=False, repr=False,
                                             compare=False)

    @property
    def root(self) -> Path:
        return self.settings.root

    @property
    def dags_path(self) -> Path:
        return self.settings.dags_path

    @cached_property
    def ignore_file_syntax(self) -> str:
        syntax = (self.settings.ignore_file_syntax
                  or os.environ.get("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "").strip().lower())
        if syntax:
            return syntax
        return "glob" if airflow_major() >= 3 else "regexp"

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the project root, with POSIX separators (absolute when outside)."""
        raw = os.fspath(path)
        rel = self._relative.get(raw)
        if rel is not None:
            return rel
        known = self._real.get(raw)
        real = str(known) if known is not None else self._real_str(raw)
        root = str(self.root)
        if real.startswith(root + os.sep):
            rel = real[len(root) + 1:].replace(os.sep, "/")
        elif real == root:
            rel = "."
        else:
            rel = Path(real).as_posix()
        if os.path.isabs(raw):
            self._relative[raw] = rel
        return rel

    def real(self, path: Path | str) -> Path:
        """``Path(path).resolve()``, remembered: a run resolves each DAG file path several times,
        and a resolve is a system call per path component (the folder is resolved once, here)."""
        raw = os.fspath(path)
        real = self._real.get(raw)
        if real is None:
            real = Path(self._real_str(raw))
            if os.path.isabs(raw):
                self._real[raw] = real
        return real

    def _real_str(self, raw: str) -> str:
        # relative to the cwd, or ".." after a link
        if not os.path.isabs(raw) or ".." in raw.split(os.sep):
            return os.path.realpath(raw)
        folder, name = os.path.split(os.path.normpath(raw))
        if not name:
            return os.path.realpath(raw)
        real_folder = self._real_folders.get(folder)
        if real_folder is None:
            real_folder = self._real_folders[folder] = os.path.realpath(folder)
        joined = os.path.join(real_folder, name)
        return os.path.realpath(joined) if os.path.islink(joined) else joined

    def dag_folder_files(self) -> Iterable[Path]:
        """Every file in the dags folder that no .airflowignore excludes (Airflow's walk)."""
        return (path for path, _, _ in self._folder_entries())

    def _folder_entries(self) -> Iterator[tuple[Path, os.DirEntry, bool]]:
        """(path, its directory entry, whether its folder is a real path: no symlink on the way).

        ``os.walk(followlinks=True)``'s order (a folder's files, then its subfolders in turn), from
        ``os.scandir``: a file's entry says whether it is a file or a link without a system call."""
        base = self.dags_path
        if not base.is_dir():
            return
        syntax = self.ignore_file_syntax
        seen: set[str] = set()  # resolved subfolders: a symlink loop is an error

        def visit(folder: Path, rules: list[_Rule],
                  real: bool) -> Iterator[tuple[Path, os.DirEntry, bool]]:
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                return
            dirs, files = [], []
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                (dirs if is_dir else files).append(entry)
            if any(e.name == IGNORE_FILE and e.is_file() for e in files):
                rules = rules + _read_rules(folder / IGNORE_FILE, syntax, base)
            for entry in files:
                path = folder / entry.name
                if entry.name != IGNORE_FILE and not _ignored(path, rules, False):
                    yield path, entry, real
            subdirs = [d for d in dirs if d.name != "__pycache__"
                       and not _ignored(folder / d.name, rules, True)]
            for d in subdirs:
                resolved = os.path.realpath(d.path)
                if resolved in seen:
                    raise ConfigError(f"{folder / d.name}: symlink loop in the dags folder (it "
                                      f"leads back to {resolved}, which Airflow would walk again "
                                      "and again); remove the link")
                seen.add(resolved)
            for d in subdirs:
                yield from visit(folder / d.name, rules, real and not d.is_symlink())

        yield from visit(base, [], True)

    def is_dag_candidate(self, path: Path) -> bool:
        if not (path.suffix == ".py" or zipfile.is_zipfile(path)):
            return False
        if not self.settings.safe_mode:
            return True
        try:
            data = path.read_bytes()
        except OSError:
            return False
        # read once per run: the parse cache's content hash of this file comes from the same bytes
        # (keyed by the path as found; the cache asks with resolved paths, equal unless a symlink)
        self.content_digests[path] = hashlib.sha256(data).hexdigest()
        return might_contain_dag(path, airflow_major(), data)

    def take_content_digests(self) -> dict[Path, str]:
        """The discovery's content hashes, once: a later parse in the same session (a test that
        rewrote a DAG file, then built a DagBag) hashes the files again."""
        digests = self.content_digests
        self.content_digests = {}
        return digests

    @cached_property
    def all_dag_files(self) -> list[Path]:
        """The files Airflow's DAG processor would parse, sorted."""
        found = []
        for path, entry, real_folder in self._folder_entries():
            try:
                if not entry.is_file():
                    continue
            except OSError:
                continue
            if self.is_dag_candidate(path):
                found.append(path)
                # its own real path: real() needs no call
                if real_folder and not entry.is_symlink():
                    self._real[str(path)] = path
        return found

    def dag_files(self, paths: Iterable[Path | str] | None = None) -> list[Path]:
        """DAG files under ``paths`` (files or folders; all of them when None)."""
        every = self.all_dag_files
        if paths is None:
            return list(every)
        wanted: list[Path] = []
        for raw in paths:
            p = Path(raw).resolve()
            if p.is_dir():  # as strings: Path.parents builds a Path per level, for every file
                prefix = os.path.join(str(p), "")
                wanted += [f for f in every if str(f).startswith(prefix)]
            elif p in self._dag_file_set:
                wanted.append(p)
        return sorted(set(wanted), key=str)

    @cached_property
    def _dag_file_set(self) -> frozenset[Path]:
        return frozenset(self.all_dag_files)

    def is_dag_file(self, path: Path) -> bool:
        return self.real(path) in self._dag_file_set

    def importable_roots(self) -> list[Path]:
        """What the Astro runtime puts on sys.path: the project root (AIRFLOW_HOME), dags/,
        plugins/."""
        return [self.root, self.dags_path, self.settings.plugins_path]

    @property
    def runtime_airflow_major(self) -> int | None:
        """The Airflow major version the Dockerfile's runtime image runs (None when unknown)."""
        return airflow_major_from_image(self.runtime_image)

    def runtime_mismatch(self) -> str | None:
        """A warning when the installed Airflow is not the major version the project deploys
        with."""
        wanted, installed = self.runtime_airflow_major, airflow_version()
        if wanted is None or installed is None or int(installed.split(".")[0]) == wanted:
            return None
        return (f"the Dockerfile's image {self.runtime_image} runs Airflow {wanted}, but Airflow "
                f"{installed} is installed here: verdicts may differ from the deployment's; "
                "install the Airflow version of your runtime (see the Astro Runtime release "
                "notes)")

    @cached_property
    def runtime_image(self) -> str | None:
        """The ``FROM`` image of the project's Dockerfile (e.g.
        astrocrpublic.azurecr.io/runtime:3.1-1)."""
        dockerfile = self.root / "Dockerfile"
        if not dockerfile.is_file():
            return None
        for line in dockerfile.read_text(encoding="utf-8", errors="replace").splitlines():
            m = re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)", line, re.IGNORECASE)
            if m:
                return m.group(1)
        return None
