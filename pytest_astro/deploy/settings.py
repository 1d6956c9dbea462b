"""``[tool.pytest-astro.deploy]``: where each branch deploys, and how the gate runs.

.. code-block:: toml

    [tool.pytest-astro.deploy]
    type = "auto"                  # auto | dags | image | image-only
    suite-args = ["-x"]            # appended to: python -m pytest --astro-dags
    unmapped-branch = "skip"       # or "fail": a branch with no target is an error
    scrub-env = ["SNOWFLAKE_*"]    # more variables to keep away from the suite (and mask)
    wait = true                    # astro deploy --wait (the deploy counts once the Deployment is
    healthy)
    wait-time = "5m"               # seconds, or 10m / 1h30m
    airflowignored = "warn"        # or "refuse": shipped files .airflowignore kept from the parse
    allow-bucket-root = false      # a bucket target needs a prefix unless this is true
    plan = "pytest-astro-plan.json"

    [tool.pytest-astro.deploy.branches]   # branch -> target
    main = "clmain0000000000000000000"    # a Deployment id: the Astro CLI deploys it
    dev = { deployment = "cldev00000000000000000000" }
    "release/*" = { deployment = "clrelease000000000000000" }  # shell-style patterns, after exact
    names
    dags-bucket = { bucket = "s3://my-bucket/dags" }           # or gs://...: a bucket sync
    other = { command = "./deploy.sh" }                        # or any command

A single environment is a ``branches`` table with one entry. Each branch table may also set
``type``. Unknown keys are errors (a typo must not silently deploy elsewhere); a Deployment id must
look like one (lowercase letters and digits), so that it can never reach the CLI as an option.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from pytest_astro.config import ConfigError

TYPES = ("auto", "dags", "image", "image-only")
_TOP_KEYS = {"type", "suite", "suite-args", "unmapped-branch", "scrub-env", "branches", "record",
             "astro-args", "retries", "wait", "wait-time", "airflowignored", "allow-bucket-root",
             "plan"}
AIRFLOWIGNORED = ("warn", "refuse")
#: Astro Deployment ids are cuids: lowercase letters and digits. Anything else (``-f``, a space) is
# refused
#: before it can reach the CLI's argument parser as an option.
DEPLOYMENT_ID = re.compile(r"[a-z0-9]{1,64}")
#: ``astro deploy --wait-time`` takes a Go duration; we accept whole seconds or h/m/s parts.
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# the Astro CLI's own --wait-time default (cmd/cloud/deploy.go, deployWaitTime)
DEFAULT_WAIT_SECONDS = 300
_TARGET_KEYS = {"deployment", "bucket", "command", "type"}


@dataclass
class Target:
    """Where a deploy goes: exactly one of ``deployment``, ``bucket``, ``command``."""

    deployment: str | None = None
    bucket: str | None = None
    command: str | list[str] | None = None
    type: str | None = None  # overrides the gate-wide type for this target
    source: str = ""  # where it came from, for messages

    @property
    def kind(self) -> str:
        return "astro" if self.deployment else "bucket" if self.bucket else "command"

    def describe(self) -> str:
        if self.deployment:
            return f"Astro Deployment {self.deployment}"
        if self.bucket:
            return f"bucket {self.bucket}"
        cmd = self.command if isinstance(self.command, str) else shlex.join(self.command or [])
        return f"command `{cmd}`"

    @classmethod
    def from_dict(cls, data: dict) -> Target:
        """The target ``to_dict`` wrote (a plan's)."""
        return cls(deployment=data.get("deployment_id"), bucket=data.get("bucket"), command=data.get("command"))

    def to_dict(self) -> dict:
        out = {"kind": self.kind}
        if self.deployment:
            out["deployment_id"] = self.deployment
        if self.bucket:
            out["bucket"] = self.bucket
        if self.command:
            out["command"] = self.command
        return out


@dataclass
class DeployConfig:
    path: Path  # pyproject.toml (for messages)
    type: str = "auto"
    suite: list[str] | None = None  # None: python -m pytest --astro-dags
    suite_args: list[str] = field(default_factory=list)
    unmapped_branch: str = "skip"
    scrub_env: list[str] = field(default_factory=list)
    branches: dict[str, Target] = field(default_factory=dict)
    record: str | None = None
    astro_args: list[str] = field(default_factory=list)
    retries: int = 5
    wait: bool = True  # pass --wait: the deploy counts only once the Deployment is healthy
    wait_seconds: int = DEFAULT_WAIT_SECONDS
    # files .airflowignore hid from the parse but shipped: warn or refuse
    airflowignored: str = "warn"
    allow_bucket_root: bool = False
    plan: str | None = None

    def target_for(self, branch: str | None) -> Target | None:
        """The target of ``branch``: an exact name first, then patterns in file order; None if
        unmapped."""
        if branch is not None:
            if branch in self.branches:
                return self.branches[branch]
            for pattern, target in self.branches.items():
                if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(branch, pattern):
                    return target
        return None


def _where(path: Path, key: str) -> str:
    """``pyproject.toml:LINE [tool.pytest-astro.deploy] key`` (the line when it can be found)."""
    line = None
    try:
        text = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        text = []
    last = key.split(".")[-1]
    in_deploy = False
    for lineno, raw in enumerate(text, 1):
        stripped = raw.strip()
        if stripped.startswith("["):
            in_deploy = stripped.startswith("[tool.pytest-astro.deploy")
            if in_deploy and stripped.rstrip("]").endswith("." + last):
                line = lineno
                break
            continue
        if in_deploy and re.match(rf"""["']?{re.escape(last)}["']?\s*=""", stripped):
            line = lineno
            break
    loc = f"{path}:{line}" if line else str(path)
    return f"{loc}: [tool.pytest-astro.deploy] {key}"


def _str_list(value, path: Path, key: str) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"{_where(path, key)}: {exc} in {value!r}; balance the quotes, or "
                              "write a list of strings") from None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{_where(path, key)}: expected a list of strings (or one string), got "
                      f"{value!r}")


def _type(value, path: Path, key: str) -> str:
    if value not in TYPES:
        raise ConfigError(f"{_where(path, key)}: expected one of {', '.join(TYPES)}, got {value!r}")
    return value


def _target(value, path: Path, key: str) -> Target:
    if isinstance(value, str):
        return Target(deployment=check_deployment_id(value, _where(path, key)), source=key)
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(path, key)}: expected a Deployment id or a table with one of "
                          f"deployment, bucket, command; got {value!r}")
    unknown = set(value) - _TARGET_KEYS
    if unknown:
        raise ConfigError(f"{_where(path, key)}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"a target takes {', '.join(sorted(_TARGET_KEYS))}")
    chosen = [k for k in ("deployment", "bucket", "command") if k in value]
    if len(chosen) != 1:
        raise ConfigError(f"{_where(path, key)}: set exactly one of deployment, bucket, command "
                          f"(found {', '.join(chosen) or 'none'})")
    target = Target(source=key,
                    type=_type(value["type"], path, f"{key}.type") if "type" in value else None)
    if "deployment" in value:
        target.deployment = check_deployment_id(value["deployment"],
                                                _where(path, key + ".deployment"))
    elif "bucket" in value:
        target.bucket = check_bucket_url(value["bucket"], _where(path, key + ".bucket"))
    else:
        command = value["command"]
        target.command = command if isinstance(command, str) else _str_list(command, path,
                                                                            key + ".command")
        if not (command.strip() if isinstance(command, str) else target.command):
            raise ConfigError(f"{_where(path, key + '.command')}: the command is empty")
    return target


def check_deployment_id(value, where: str) -> str:
    """``value`` if it is an Astro Deployment id (lowercase letters and digits), else a
    ConfigError."""
    if isinstance(value, str) and DEPLOYMENT_ID.fullmatch(value.strip()):
        return value.strip()
    raise ConfigError(f"{where}: expected an Astro Deployment id (lowercase letters and digits, as "
                      f"`astro deployment list` shows it), got {value!r}")


def wait_seconds(value, where: str) -> int:
    """Whole seconds from an int or a duration such as ``"10m"``, ``"1h30m"``, ``"300s"`` (at least
    1)."""
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip():
        match = _DURATION.fullmatch(value.strip())
        if match and any(match.groups()):
            h, m, s = (int(g or 0) for g in match.groups())
            seconds = h * 3600 + m * 60 + s
        elif value.strip().isdigit():
            seconds = int(value.strip())
    if seconds is None or seconds < 1:
        raise ConfigError(f"{where}: expected a wait time in seconds or as 10m / 1h30m / 300s, got "
                          f"{value!r}")
    return seconds


def check_bucket_url(url, where: str) -> str:
    if not isinstance(url, str) or not re.fullmatch(r"(s3|gs)://[a-z0-9][a-z0-9._-]{1,220}(/.*)?",
                                                    url):
        raise ConfigError(f"{where}: expected s3://BUCKET[/PREFIX] or gs://BUCKET[/PREFIX], got "
                          f"{url!r}")
    return url


def _flag(raw: dict, key: str, pyproject: Path) -> bool:
    if not isinstance(raw[key], bool):
        raise ConfigError(f"{_where(pyproject, key)}: expected true or false")
    return raw[key]


def _gate_settings(cfg: DeployConfig, raw: dict, pyproject: Path) -> None:
    """wait, wait-time, airflowignored, allow-bucket-root, plan."""
    if "wait" in raw:
        cfg.wait = _flag(raw, "wait", pyproject)
    if "wait-time" in raw:
        cfg.wait_seconds = wait_seconds(raw["wait-time"], _where(pyproject, "wait-time"))
    if "airflowignored" in raw:
        if raw["airflowignored"] not in AIRFLOWIGNORED:
            raise ConfigError(f"{_where(pyproject, 'airflowignored')}: expected 'warn' or "
                              f"'refuse', got {raw['airflowignored']!r}")
        cfg.airflowignored = raw["airflowignored"]
    if "allow-bucket-root" in raw:
        cfg.allow_bucket_root = _flag(raw, "allow-bucket-root", pyproject)
    if "plan" in raw:
        if not isinstance(raw["plan"], str) or not raw["plan"].strip():
            raise ConfigError(f"{_where(pyproject, 'plan')}: expected a file path")
        cfg.plan = raw["plan"]


def load(table: dict, pyproject: Path) -> DeployConfig:
    """Read ``[tool.pytest-astro.deploy]`` (``table`` is the whole ``[tool.pytest-astro]``)."""
    raw = table.get("deploy", {})
    cfg = DeployConfig(path=pyproject)
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(pyproject, 'deploy')}: must be a table")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        name = sorted(unknown)[0]
        hint = (f"; to map the branch {name!r} to a Deployment write it under "
                f"[tool.pytest-astro.deploy.branches]: {name} = {raw[name]!r}"
                if isinstance(raw[name], (str, dict)) else "")
        raise ConfigError(f"{_where(pyproject, name)}: unknown key (known: "
                          f"{', '.join(sorted(_TOP_KEYS))}){hint}")
    if "type" in raw:
        cfg.type = _type(raw["type"], pyproject, "type")
    if "suite" in raw:
        cfg.suite = _str_list(raw["suite"], pyproject, "suite")
        if not cfg.suite:
            raise ConfigError(f"{_where(pyproject, 'suite')}: the suite command is empty")
    if "suite-args" in raw:
        cfg.suite_args = _str_list(raw["suite-args"], pyproject, "suite-args")
    if "unmapped-branch" in raw:
        if raw["unmapped-branch"] not in ("skip", "fail"):
            raise ConfigError(f"{_where(pyproject, 'unmapped-branch')}: expected 'skip' or 'fail', "
                              f"got {raw['unmapped-branch']!r}")
        cfg.unmapped_branch = raw["unmapped-branch"]
    if "scrub-env" in raw:
        cfg.scrub_env = _str_list(raw["scrub-env"], pyproject, "scrub-env")
    if "astro-args" in raw:
        cfg.astro_args = _str_list(raw["astro-args"], pyproject, "astro-args")
    if "record" in raw:
        if not isinstance(raw["record"], str):
            raise ConfigError(f"{_where(pyproject, 'record')}: expected a file path")
        cfg.record = raw["record"]
    _gate_settings(cfg, raw, pyproject)
    if "retries" in raw:
        if not isinstance(raw["retries"], int) or isinstance(raw["retries"],
                                                             bool) or raw["retries"] < 0:
            raise ConfigError(f"{_where(pyproject, 'retries')}: expected a whole number >= 0")
        cfg.retries = raw["retries"]
    branches = raw.get("branches", {})
    if not isinstance(branches, dict):
        raise ConfigError(f"{_where(pyproject, 'branches')}: must be a table of branch = "
                          "Deployment id")
    for name, value in branches.items():
        cfg.branches[name] = _target(value, pyproject, f"branches.{name}")
    return cfg
