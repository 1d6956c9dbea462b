#!/usr/bin/env bash
# One entry point for developers and CI. It builds (once) a virtualenv with Airflow and the test
# dependencies in a cache directory outside the clone, keyed by a hash of what it installs, then:
#   bash scripts/dev.sh demo [PYTEST ARGS]   run `pytest --astro-dags` on examples/astro-project
#   bash scripts/dev.sh test [PYTEST ARGS]   run the test suite
#   bash scripts/dev.sh env                  print the virtualenv's path (build it if missing)
# Environment: PYTHON (default python3), AIRFLOW_VERSION (default 3.3.2),
#              PYTEST_ASTRO_VENVS (default ~/.cache/pytest-astro/venvs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-test}"
shift || true

python="${PYTHON:-python3}"
airflow_version="${AIRFLOW_VERSION:-3.3.2}"
case "$airflow_version" in
  2.*) airflow_reqs=("apache-airflow==$airflow_version" "apache-airflow-providers-standard") ;;
  *)   airflow_reqs=("apache-airflow==$airflow_version" "apache-airflow-providers-standard") ;;
esac

# What the venv holds: the interpreter, Airflow, and the project's declared dependencies.
key_input="$("$python" -c 'import sys; print(sys.version)')
${airflow_reqs[*]}
$(sed -n '/^dependencies = \[/,/^\]/p;/^test = \[/,/^\]/p' "$here/pyproject.toml")
venv-layout-1"
key="$(printf '%s' "$key_input" | sha256sum | cut -c1-16)"
venvs="${PYTEST_ASTRO_VENVS:-${XDG_CACHE_HOME:-$HOME/.cache}/pytest-astro/venvs}"
venv="$venvs/$key"

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
stamp="$here $(sha256sum "$here/pyproject.toml" | cut -c1-16)"
if [ "$(cat "$venv/.editable" 2>/dev/null)" != "$stamp" ]; then
  "$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" --no-deps -e "$here"
  echo "$stamp" > "$venv/.editable"
fi
flock -u 9

export PATH="$venv/bin:$PATH"
case "$cmd" in
  env)  echo "$venv" ;;
  demo)
    cd "$here/examples/astro-project"
    exec "$venv/bin/python" -m pytest --astro-dags "$@" ;;
  test)
    cd "$here"
    exec "$venv/bin/python" -m pytest "$@" ;;
  *) echo "usage: bash scripts/dev.sh demo|test|env [PYTEST ARGS]" >&2; exit 2 ;;
esac
