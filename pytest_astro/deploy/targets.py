"""Deploy targets: the Astro CLI and any command. (Buckets: :mod:`pytest_astro.deploy.buckets`.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

TOKEN_VARIABLE = "ASTRO_API_TOKEN"


class DeployError(Exception):
    """A deploy could not start or failed; the message says why and what to do (never a credential)."""


def astro_executable(env: Mapping[str, str]) -> str:
    exe = shutil.which("astro", path=env.get("PATH", os.defpath))
    if not exe:
        raise DeployError("the Astro CLI (`astro`) is not on PATH: install it in the deploy job "
                          "(curl -sSL install.astronomer.io | sudo bash -s) or use a bucket or --command target")
    return exe


def check_astro(env: Mapping[str, str]) -> str:
    """Preflight for an Astro deploy: the token and the CLI. Returns the CLI's path."""
    if not env.get(TOKEN_VARIABLE, "").strip():
        raise DeployError(f"{TOKEN_VARIABLE} is not set: create a Deployment (or Workspace) API token in Astro "
                          f"and pass it to this job as the secret environment variable {TOKEN_VARIABLE}")
    return astro_executable(env)


def astro_argv(exe: str, deployment_id: str, deploy_type: str, description: str,
               extra: Sequence[str] = ()) -> list[str]:
    argv = [exe, "deploy", deployment_id]
    if deploy_type == "dags":
        argv.append("--dags")
    elif deploy_type == "image-only":
        argv.append("--image")
    return [*argv, "--description", description, *extra]


def stream(argv: list[str] | str, env: Mapping[str, str], cwd: Path, echo: Callable[[str], None],
           shell: bool = False) -> tuple[int, list[str]]:
    """Run ``argv``; every output line goes to ``echo`` (which masks). Returns (status, last lines)."""
    tail: list[str] = []
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", shell=shell, bufsize=1)
    except OSError as exc:
        raise DeployError(f"cannot run {argv if shell else argv[0]!r}: {exc.strerror or exc}") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        echo(line)
        tail = (tail + [line])[-5:]
    return proc.wait(), tail


def astro_deploy(deployment_id: str, deploy_type: str, description: str, env: Mapping[str, str],
                 cwd: Path, echo: Callable[[str], None], extra: Sequence[str] = ()) -> list[str]:
    """``astro deploy <id> [--dags|--image] --description ...``; returns the argv it ran."""
    argv = astro_argv(check_astro(env), deployment_id, deploy_type, description, extra)
    code, tail = stream(argv, env, cwd, echo)
    if code != 0:
        raise DeployError(f"`astro deploy` exited with status {code}; its last output is above. Check that "
                          f"the token is valid for Deployment {deployment_id} and that "
                          + ("DAG-only deploys are enabled on it" if deploy_type == "dags" else "Docker is available"))
    return argv


def astro_version(env: Mapping[str, str]) -> str | None:
    try:
        proc = subprocess.run([astro_executable(env), "version"], env=dict(env), capture_output=True,
                              text=True, timeout=60, check=False)
    except (DeployError, OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else None


def run_command(command: str | list[str], env: Mapping[str, str], cwd: Path, echo: Callable[[str], None]) -> None:
    """Any deploy command: a string runs in the shell, a list runs as is."""
    code, _ = stream(command, env, cwd, echo, shell=isinstance(command, str))
    if code != 0:
        raise DeployError(f"the deploy command exited with status {code}; its output is above")
