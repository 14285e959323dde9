#!/bin/sh
# The test suite on the other supported Pythons and Sphinx majors (tox):
# Sphinx 7.4 on Python 3.12 and Sphinx 8.2 on 3.13 (Sphinx 9 on 3.11 is
# .venv's, run by make test): each Python and each Sphinx major once.  tox
# finds each Python on PATH: the one there if it runs, else pyenv's newest,
# put first.  Where a Python is nowhere, that is said, and its Sphinx major
# runs on 3.11 instead.
set -eu
PY=${PY:-.venv/bin/python}
envs=""
for triple in 3.12:py312:sphinx7 3.13:py313:sphinx8; do
    version=${triple%%:*}
    rest=${triple#*:}
    python=${rest%%:*}
    sphinx=${rest#*:}
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
        envs="$envs,$python-$sphinx"
    else
        echo "SKIPPED $python-$sphinx: no python$version on PATH nor under ~/.pyenv/versions;" \
            "running py311-$sphinx instead" >&2
        envs="$envs,py311-$sphinx"
    fi
done
export PATH
envs=${envs#,}
echo "tox environments: $envs"
exec "$PY" -m tox run -e "$envs" -- -q -p no:cacheprovider
