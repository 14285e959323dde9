#!/bin/sh
# The test suite on the other supported Pythons and Sphinx majors (tox):
# Sphinx 7.4 on Python 3.11, Sphinx 8.2 on 3.12, Sphinx 9 on 3.13 (Sphinx 9 on
# 3.11 is .venv's, run by make test).  tox finds each Python on PATH: the
# one there if it runs, else pyenv's newest, put first.  One that is nowhere
# is skipped, and said so.
set -eu
PY=${PY:-.venv/bin/python}
envs="py311-sphinx7"
for pair in 3.12:py312-sphinx8 3.13:py313-sphinx9; do
    version=${pair%%:*}
    env=${pair#*:}
    found=""
    # One on PATH (a pyenv shim there may run nothing), else the newest
    # patch release pyenv has.
    for candidate in $(command -v "python$version" 2>/dev/null) \
        $(ls -d "$HOME"/.pyenv/versions/"$version".*/bin/"python$version" 2>/dev/null \
          | sort -rV); do
        if "$candidate" -c "" >/dev/null 2>&1; then
            found=$candidate
            break
        fi
    done
    if [ -n "$found" ]; then
        PATH="$(dirname "$found"):$PATH"
        envs="$envs,$env"
    else
        echo "SKIPPED $env: no python$version on PATH nor under ~/.pyenv/versions" >&2
    fi
done
export PATH
echo "tox environments: $envs"
exec "$PY" -m tox run -e "$envs" -- -q -p no:cacheprovider
