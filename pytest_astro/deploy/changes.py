"""DAG-only or image deploy: what changed in the pushed range.

The range, in order of preference:

1. ``--base REV`` given on the command line;
2. the CI's pushed range (GitHub's push ``before``, GitLab's ``CI_COMMIT_BEFORE_SHA``, Jenkins'
   ``GIT_PREVIOUS_SUCCESSFUL_COMMIT``) up to HEAD: a push of several commits is judged whole;
3. for a pull request, the merge-base of HEAD with its target branch;
4. the last commit (HEAD's first parent; for a merge commit that is the whole merged branch).

When the range cannot be known (a new branch: the before-SHA is all zeros; a manual or scheduled
run; a shallow clone without the base commit; the repository's first commit) the answer is an
image deploy, with the reason. Only files under the configured DAG folder make a DAG-only deploy;
a deleted or renamed file counts on both sides (``--no-renames``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_astro.deploy import ci_env
from pytest_astro.deploy.ci_env import CIContext, git

DAGS, IMAGE, IMAGE_ONLY = "dags", "image", "image-only"
_SHOWN = 5


@dataclass
class Decision:
    type: str  # dags | image | image-only
    reason: str
    base: str | None = None  # the commit the range starts from (None: unknown or forced)
    changed: list[str] = field(default_factory=list)  # project-relative paths that changed
    # of those, the ones outside the DAG folder
    outside_dags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _commit_exists(sha: str, cwd: Path) -> bool:
    return git(["cat-file", "-e", f"{sha}^{{commit}}"], cwd) is not None


def _shallow(cwd: Path) -> bool:
    return git(["rev-parse", "--is-shallow-repository"], cwd) == "true"


def _shallow_hint(cwd: Path) -> str:
    return (" (this is a shallow clone: fetch the history, e.g. `fetch-depth: 0` in "
            "actions/checkout or `GIT_DEPTH: 0` on GitLab)") if _shallow(cwd) else ""


def find_base(cwd: Path, ctx: CIContext, base: str | None = None) -> tuple[str | None, str]:
    """``(base commit, how it was found)``; base None means unknown, and the text says why."""
    if base:
        sha = git(["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd)
        if not sha:
            return None, f"--base {base} is not a commit in this clone{_shallow_hint(cwd)}"
        return sha, f"changes since --base {base}"
    if ctx.before:
        if ci_env.is_null_sha(ctx.before):
            return (None,
                    "a new branch (the CI's before-SHA is all zeros), so the pushed range is "
                    "unknown")
        if not _commit_exists(ctx.before, cwd):
            return None, (f"the pushed range starts at {ctx.before[:12]}, which is not in this "
                          f"clone{_shallow_hint(cwd) or ' (force-push or shallow clone)'}")
        return ctx.before, f"the pushed range {ctx.before[:12]}..HEAD ({ctx.provider})"
    if ctx.event in (ci_env.MANUAL, ci_env.SCHEDULE):
        return (None,
                f"a {ctx.event} run ({ctx.provider}): nothing was pushed, so there is no range to "
                "judge")
    if ctx.event == ci_env.PULL_REQUEST and ctx.target_branch:
        for ref in (f"origin/{ctx.target_branch}", ctx.target_branch):
            if git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd):
                merge_base = git(["merge-base", "HEAD", ref], cwd)
                if merge_base:
                    return merge_base, f"changes since the merge-base with {ref}"
        return None, (f"the target branch {ctx.target_branch} is not in this "
                      f"clone{_shallow_hint(cwd)}")
    if git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], cwd) is None:
        return None, "no commit checked out"
    parent = git(["rev-parse", "--verify", "--quiet", "HEAD^1^{commit}"], cwd)
    if parent:
        merge = git(["rev-parse", "--verify", "--quiet", "HEAD^2"], cwd) is not None
        how = "the last commit (a merge: the whole merged branch)" if merge else "the last commit"
        origin = f" ({ctx.provider} gives no pushed range)" if ctx.provider else ""
        return parent, f"{how}{origin}"
    if _shallow(cwd):
        return None, "the last commit's parent is not in this clone" + _shallow_hint(cwd)
    return None, "the repository's first commit"


def changed_files(cwd: Path, base: str) -> list[Path]:
    """Absolute paths changed between ``base`` and the working tree (deletions and both sides of
    renames)."""
    top = git(["rev-parse", "--show-toplevel"], cwd)
    out = git(["-c", "core.quotepath=off", "diff", "--name-only", "--no-renames", "-z", base, "--"],
              cwd)
    if top is None or out is None:
        return []
    return [Path(top, name).resolve() for name in out.split("\0") if name]


def decide(root: Path, dags_path: Path, ctx: CIContext, forced: str = "auto",
           base: str | None = None) -> Decision:
    """The deploy type for the project at ``root`` (``forced``: auto, dags, image or image-only)."""
    root, dags_path = root.resolve(), dags_path.resolve()
    if forced != "auto":
        return Decision(forced, f"{forced} deploy requested (--type/--{forced} or pyproject)")
    if git(["rev-parse", "--git-dir"], root) is None:
        return Decision(IMAGE, f"{root} is not in a git repository, so nothing tells what changed: "
                               "image deploy")
    sha, how = find_base(root, ctx, base)
    if sha is None:
        return Decision(IMAGE, f"{how}: image deploy to be safe")
    changed, outside = [], []
    for path in changed_files(root, sha):
        if path != root and root not in path.parents:
            continue  # outside the Astro project: not part of any deploy
        rel = path.relative_to(root).as_posix()
        changed.append(rel)
        if dags_path not in path.parents:
            outside.append(rel)
    decision = Decision(IMAGE, "", base=sha, changed=changed, outside_dags=outside)
    dags_rel = _rel(dags_path, root)
    if not changed:
        decision.reason = f"no project file changed in {how}: image deploy to be safe"
    elif outside:
        shown = ", ".join(outside[:_SHOWN]) + (f" and {len(outside) - _SHOWN} more"
                                               if len(outside) > _SHOWN else "")
        decision.reason = f"{how} changes files outside {dags_rel}/ ({shown}): image deploy"
    else:
        decision.type = DAGS
        decision.reason = (f"{how} changes only files in {dags_rel}/ ({len(changed)}): DAG-only "
                           "deploy")
    return decision


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
