# Every target sets itself up: the first run creates .venv and installs what it needs.
PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
SPHINXOPTS ?=
BUILDDIR   ?= _build
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv inventories doctest html test pytest versions bench lint clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,docs,lint]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project with its test, docs and lint extras

inventories:  ## install Debian's Python, gevent and PyMongo inventories where apt-get can
	@sh .ci/inventories.sh

doctest: $(STAMP)  ## build and doctest the docs, every example in its own process
	$(PY) -m sphinx -b doctest -c . docs $(BUILDDIR)/doctest $(SPHINXOPTS)

html: $(STAMP)  ## build the HTML docs; any warning, including a broken reference, fails
	$(PY) -m sphinx -b html -n -W --keep-going -c . docs $(BUILDDIR)/html $(SPHINXOPTS)

pytest: $(STAMP) inventories  ## the test suite alone
	$(PY) -m pytest $(PYTEST_ARGS)

versions: $(STAMP) inventories  ## the test suite on Python 3.12 with Sphinx 7.4, 3.13 with 8.2 (tox)
	$(PY) -m pip install -q 'tox>=4'
	PY=$(PY) sh .ci/versions.sh

lint: $(STAMP)  ## ruff and mypy (strict)
	$(VENV)/bin/ruff check sphinxext tests bench conf.py
	$(VENV)/bin/mypy

test: pytest lint html doctest  ## everything that must pass: tests, lint, types, docs

bench: $(STAMP)  ## the benchmarks: side-by-side timings and ratios
	$(PY) bench/run.py

clean:  ## remove build output and caches (keeps .venv)
	rm -rf $(BUILDDIR) .pytest_cache .mypy_cache .ruff_cache bench/_corpus
