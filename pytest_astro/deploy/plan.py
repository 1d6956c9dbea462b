"""The plan: what the check phase checked and what the apply phase may ship.

``pytest-astro deploy check`` writes it (``pytest-astro-plan.json``): the target, the deploy type,
the commit, the exact files that the deploy will ship with their SHA-256, the suite's counts, and
whether the deploy is allowed. ``pytest-astro deploy apply`` reads it, lists the same files again
and refuses when anything differs, naming the files.

Which files a deploy ships (:func:`shipped_files`):

- ``dags`` (``astro deploy --dags``) and the DAG part of an image deploy: the Astro CLI tars the
  whole DAG folder (everything but ``.git/``, whatever ``.gitignore`` or ``.airflowignore`` say),
  storing symbolic links as links;
- ``image``: also every file of the project git tracks (the Docker build context; an untracked file
  outside the DAG folder is not listed: keep such files out of the image with ``.dockerignore``);
- ``bucket``: every file of the DAG folder that git does not ignore, links followed (the sync
  uploads their content). ``.airflowignore`` decides what Airflow parses, not what the DAGs need: a
  helper folder it names is uploaded too;
- ``command``: the DAG folder, as for ``dags``.

A symbolic link that leaves the project is refused: it would publish a file from outside the
repository (or ship a link that points at nothing on the Deployment).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pytest_astro.deploy.ci_env import git

PLAN_VERSION = 1
DEFAULT_PLAN = "pytest-astro-plan.json"


class PlanError(Exception):
    """The plan cannot be used (missing, damaged, refused, stale); the message says what to do."""


@dataclass
class Manifest:
    """project-relative POSIX path -> ``sha256:<hex>`` (a file) or ``link:<target>`` (a link kept as
    a link)."""

    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # links leaving the project, unreadable files

    def differences(self, other: Manifest) -> list[str]:
        """``path (what)`` for every file that differs from ``other`` (the reference)."""
        out = [f"{p} (changed)" for p in sorted(self.files) if p in other.files
               and other.files[p] != self.files[p]]
        out += [f"{p} (new)" for p in sorted(set(self.files) - set(other.files))]
        out += [f"{p} (removed)" for p in sorted(set(other.files) - set(self.files))]
        return out


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _git_visible(root: Path, under: Path, untracked: bool = True) -> set[str] | None:
    """Files under ``under`` that git tracks (and, with ``untracked``, the untracked ones it does
    not ignore), relative to ``root``; None when ``root`` is not in a git work tree."""
    top = git(["rev-parse", "--show-toplevel"], root)
    if top is None:
        return None
    which = ["--cached", "--others", "--exclude-standard"] if untracked else ["--cached"]
    out = git(["-c", "core.quotepath=off", "ls-files", "-z", *which, "--", str(under)], root)
    if out is None:
        return None
    found = set()
    for name in out.split("\0"):
        if name:
            path = Path(top, name)
            if _inside(path.absolute(), root.absolute()):
                found.add(path.absolute().relative_to(root.absolute()).as_posix())
    return found


def _walk(root: Path, folder: Path, follow: bool, manifest: Manifest, skip: set[str]) -> None:
    """Every file under ``folder`` into ``manifest`` (``follow``: links are read through, as an
    upload does; else kept as links, as a tar does). Links leaving ``root`` are problems."""
    real_root = root.resolve()
    seen: set[Path] = set()

    def visit(current: Path) -> None:
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            manifest.problems.append(f"{current}: cannot be read ({exc.strerror or exc})")
            return
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            if entry.name == ".git" or rel in skip:
                continue
            if entry.is_symlink():
                target = path.resolve()
                if not _inside(target, real_root):
                    manifest.problems.append(f"{rel} is a symbolic link to {target}, outside the "
                                             f"project {root}: replace it with the file itself, or "
                                             "remove it")
                    continue
                if not follow:
                    manifest.files[rel] = "link:" + os.readlink(path)
                    continue
            if entry.is_dir():
                real = path.resolve()
                if real in seen:
                    manifest.problems.append(f"{rel}: symlink loop (leads back to {real}); remove "
                                             "the link")
                    continue
                seen.add(real)
                visit(path)
            elif entry.is_file():
                try:
                    manifest.files[rel] = sha256_bytes(path.read_bytes())
                except OSError as exc:
                    manifest.problems.append(f"{rel}: cannot be read ({exc.strerror or exc})")

    seen.add(folder.resolve())
    visit(folder)


def shipped_files(root: Path, dags_path: Path, kind: str, skip: set[str] = frozenset()) -> Manifest:
    """The files a deploy of ``kind`` (dags, image, image-only, bucket, command) ships, hashed."""
    root = root.absolute()
    dags_path = dags_path.absolute()
    manifest = Manifest()
    if not dags_path.is_dir():
        return manifest
    follow = kind == "bucket"
    _walk(root, dags_path, follow, manifest, set(skip))
    if kind == "bucket":
        visible = _git_visible(root, dags_path)
        if visible is not None:
            manifest.files = {p: h for p, h in manifest.files.items() if p in visible
                              or _under_link(root, p)}
        else:  # not a git repository: leave out the bytecode caches git would ignore
            manifest.files = {p: h for p, h in manifest.files.items() if "__pycache__/" not in p}
    if kind in ("image", "image-only"):
        # tracked files only: the tree is verified against HEAD, so the commit says what they hold;
        # untracked files outside the DAG folder would enter the image too (keep them out with
        # .dockerignore)
        for rel in sorted(_git_visible(root, root, untracked=False) or ()):
            path = root / rel
            if rel in manifest.files or rel in skip or not path.is_file() or path.is_symlink():
                continue
            try:
                manifest.files[rel] = sha256_bytes(path.read_bytes())
            except OSError as exc:
                manifest.problems.append(f"{rel}: cannot be read ({exc.strerror or exc})")
    manifest.files = dict(sorted(manifest.files.items()))
    return manifest


def _under_link(root: Path, rel: str) -> bool:
    """Whether ``rel`` lies behind a linked folder (git lists the link, not what is behind it)."""
    path = root
    for part in rel.split("/")[:-1]:
        path = path / part
        if path.is_symlink():
            return True
    return False


def dirty_files(root: Path) -> list[str] | None:
    """Tracked files that differ from HEAD (staged or not), as ``git diff HEAD`` sees them from
    ``root``, which is the check the Astro CLI makes; None outside a git work tree."""
    if git(["rev-parse", "--is-inside-work-tree"], root) != "true":
        return None
    out = git(["-c", "core.quotepath=off", "diff", "--name-only", "-z", "HEAD", "--"], root)
    return [] if out is None else [n for n in out.split("\0") if n]


def write(plan: dict, path: Path, mask) -> None:
    text = json.dumps(mask.data({"version": PLAN_VERSION, **plan}), indent=2, sort_keys=True,
                      default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mask(text) + "\n", encoding="utf-8")


def read(path: Path) -> dict:
    """The plan at ``path``; PlanError when it is missing, damaged or of another version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: no plan: run `pytest-astro deploy check` first (without the "
                        "token), then `pytest-astro deploy apply` in the same checkout") from None
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable plan ({exc}); run `pytest-astro deploy check` "
                        "again") from None
    if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
        raise PlanError(f"{path}: not a plan of this pytest-astro (version {PLAN_VERSION}); "
                        "run `pytest-astro deploy check` again with the same pytest-astro")
    for key in ("allowed", "target", "deploy_type", "files", "project"):
        if key not in data:
            raise PlanError(f"{path}: the plan has no {key!r}; run `pytest-astro deploy check` "
                            "again")
    return data
