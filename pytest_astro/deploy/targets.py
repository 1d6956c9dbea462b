"""Deploy targets: the Astro CLI and any command. (Buckets: :mod:`pytest_astro.deploy.buckets`.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_astro.deploy.settings import DEFAULT_WAIT_SECONDS

TOKEN_VARIABLE = "ASTRO_API_TOKEN"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# What the Astro CLI prints once the deploy is finalized (cloud/deploy/deploy.go, finalizeDeploy,
# since CLI 1.20): the DAG bundle's version and/or the image tag. `astro deploy` also exits 0
# *without* deploying, e.g. "Project directory has uncommitted changes, use `astro deploy
# [deployment-id] -f` to force deploy." or "Canceling deploy...": only these lines prove a deploy
# happened.
_EVIDENCE = re.compile(r"^\s*Deployed (DAG bundle|Image Tag):\s+(\S+)\s*$")
# deployment.HealthPoll: printed when --wait saw the Deployment healthy; its timeout is an error
_HEALTHY = re.compile(r"^\s*Deployment (.*) is now healthy\s*$")
_TIMED_OUT = "timed out waiting for the Deployment to enter a Healthy state"


class DeployError(Exception):
    """A deploy could not start or failed; the message says why and what to do (never a credential).
    ``detail``: what is known of the attempt (an :class:`AstroDeploy`), for the record."""

    def __init__(self, message: str, detail=None):
        super().__init__(message)
        self.detail = detail


def astro_executable(env: Mapping[str, str]) -> str:
    exe = shutil.which("astro", path=env.get("PATH", os.defpath))
    if not exe:
        raise DeployError("the Astro CLI (`astro`) is not on PATH: install it in the deploy job "
                          "(curl -sSL install.astronomer.io | sudo bash -s) or use a bucket or "
                          "--command target")
    return exe


def check_astro(env: Mapping[str, str]) -> str:
    """Preflight for an Astro deploy: the token and the CLI. Returns the CLI's path."""
    if not env.get(TOKEN_VARIABLE, "").strip():
        raise DeployError(f"{TOKEN_VARIABLE} is not set: create a Deployment (or Workspace) API "
                          "token in Astro and pass it to this job as the secret environment "
                          f"variable {TOKEN_VARIABLE}")
    return astro_executable(env)


def astro_argv(exe: str, deployment_id: str, deploy_type: str, description: str,
               extra: Sequence[str] = (), wait_seconds: int | None = None) -> list[str]:
    """``astro deploy [--dags|--image] [--wait [--wait-time=Ns]] --description=... EXTRA -- ID``.

    No ``-f``: our own checks ran (clean tree, parse, suite), and without it the CLI's check that
    the tree matches HEAD stays a second line; a deploy it skips is caught by the missing evidence.
    Values go with ``=`` and the id after ``--``, so neither can be read as an option."""
    argv = [exe, "deploy"]
    if deploy_type == "dags":
        argv.append("--dags")
    elif deploy_type == "image-only":
        argv.append("--image")
    if wait_seconds:
        argv.append("--wait")
        # --wait-time needs CLI 1.38+ (deploy-action checks it)
        if wait_seconds != DEFAULT_WAIT_SECONDS:
            argv.append(f"--wait-time={wait_seconds}s")
    return [*argv, f"--description={description}", *extra, "--", deployment_id]


def stream(argv: list[str] | str, env: Mapping[str, str], cwd: Path, echo: Callable[[str], None],
           shell: bool = False) -> tuple[int, list[str]]:
    """Run ``argv``; every output line goes to ``echo`` (which masks). Returns (status, last
    lines)."""
    tail: list[str] = []
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", shell=shell,
                                bufsize=1)
    except OSError as exc:
        raise DeployError(f"cannot run {argv if shell else argv[0]!r}: "
                          f"{exc.strerror or exc}") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        echo(line)
        tail = (tail + [line])[-5:]
    return proc.wait(), tail


@dataclass
class AstroDeploy:
    """What ``astro deploy`` proved: the deploy's identity and the Deployment's final state."""

    argv: list[str]
    exit_code: int | None = None
    dag_bundle: str | None = None  # "Deployed DAG bundle:  <version>"
    image_tag: str | None = None  # "Deployed Image Tag:  <tag>"
    state: str = "unknown"  # healthy | timed out | not waited | unknown (no deploy seen)

    @property
    def deployed(self) -> bool:
        return bool(self.dag_bundle or self.image_tag)

    def to_dict(self) -> dict:
        return asdict(self)


def read_output(result: AstroDeploy, line: str, waited: bool) -> None:
    """Take what ``line`` of the CLI's output proves into ``result``."""
    line = _ANSI.sub("", line)
    evidence = _EVIDENCE.match(line)
    if evidence:
        if evidence.group(1) == "DAG bundle":
            result.dag_bundle = evidence.group(2)
        else:
            result.image_tag = evidence.group(2)
        if result.state == "unknown":
            result.state = "waiting" if waited else "not waited"
    elif _HEALTHY.match(line):
        result.state = "healthy"
    elif _TIMED_OUT in line:
        result.state = "timed out"


def astro_deploy(deployment_id: str, deploy_type: str, description: str, env: Mapping[str, str],
                 cwd: Path, echo: Callable[[str], None], extra: Sequence[str] = (),
                 wait_seconds: int | None = None) -> AstroDeploy:
    """Run ``astro deploy`` and judge it by what it printed, not only by its status: DeployError
    unless it printed the deploy's bundle version or image tag (the type's own) and, with
    ``wait_seconds``, that the Deployment became healthy."""
    argv = astro_argv(check_astro(env), deployment_id, deploy_type, description, extra,
                      wait_seconds)
    result = AstroDeploy(argv=argv)

    def watch(line: str) -> None:
        read_output(result, line, bool(wait_seconds))
        echo(line)

    result.exit_code, _ = stream(argv, env, cwd, watch)
    needed = result.dag_bundle if deploy_type == "dags" else result.image_tag
    if result.exit_code == 0 and needed and (not wait_seconds or result.state == "healthy"):
        return result
    if result.deployed and result.state in ("timed out", "waiting"):
        raise DeployError(f"the deploy was made ({_identity(result)}) but Deployment "
                          f"{deployment_id} did not become healthy within {wait_seconds} s: see it "
                          "in the Astro UI; raise wait-time in [tool.pytest-astro.deploy] if it "
                          "is only slow", result)
    if result.exit_code != 0:
        raise DeployError(f"`astro deploy` exited with status {result.exit_code}; its last output "
                          f"is above. Check that the token is valid for Deployment {deployment_id} "
                          "and that "
                          + ("DAG-only deploys are enabled on it" if deploy_type == "dags"
                             else "Docker is available"),
                          result)
    raise DeployError("`astro deploy` exited 0 but printed no "
                      + ("\"Deployed DAG bundle:\"" if deploy_type == "dags"
                         else "\"Deployed Image Tag:\"")
                      + " line, so nothing proves a deploy happened (the CLI exits 0 without "
                        "deploying when the project has uncommitted changes or a prompt is "
                        "declined); its output is above", result)


def _identity(result: AstroDeploy) -> str:
    parts = [f"DAG bundle {result.dag_bundle}" if result.dag_bundle else "",
             f"image tag {result.image_tag}" if result.image_tag else ""]
    return ", ".join(p for p in parts if p)


def astro_version(env: Mapping[str, str]) -> str | None:
    try:
        proc = subprocess.run([astro_executable(env), "version"], env=dict(env),
                              capture_output=True,
                              text=True, timeout=60, check=False)
    except (DeployError, OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip()
            else None)


def check_command(command: str | list[str], env: Mapping[str, str], cwd: Path) -> str | None:
    """Why ``command`` cannot run (a shell string that does not parse: ``sh -n``), or None; so a
    broken command fails before the suite, not after it."""
    if not isinstance(command, str):
        return None if shutil.which(command[0],
                                    path=env.get("PATH", os.defpath)) or os.sep in command[0] \
            else f"the deploy command {command[0]!r} is not on PATH"
    proc = subprocess.run(["sh", "-n", "-c", command], cwd=cwd, env=dict(env), capture_output=True,
                          text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["syntax error"])[-1]
        return f"the deploy command does not parse as a shell command ({why}): fix its quotes"
    return None


def run_command(command: str | list[str], env: Mapping[str, str], cwd: Path,
                echo: Callable[[str], None]) -> None:
    """Any deploy command: a string runs in the shell, a list runs as is."""
    code, _ = stream(command, env, cwd, echo, shell=isinstance(command, str))
    if code != 0:
        raise DeployError(f"the deploy command exited with status {code}; its output is above")
